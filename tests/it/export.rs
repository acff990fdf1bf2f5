//! `regkit export` to OCI layouts and docker archives, read back by the real
//! skopeo, umoci and containerd.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::common::*;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn is_oci(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == OCI_INDEX
}

fn index_entries(layout: &Path) -> Vec<Value> {
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    index["manifests"].as_array().unwrap().clone()
}

fn entry<'a>(entries: &'a [Value], name: &str) -> &'a Value {
    entries
        .iter()
        .find(|e| e["annotations"]["io.containerd.image.name"] == name)
        .unwrap_or_else(|| panic!("no index.json entry named {name}"))
}

fn layout_blob(layout: &Path, digest: &str) -> std::path::PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// Every digest a sidecar node needs stored: itself, its config, its
/// non-foreign layers and its children's, recursively.
fn needed(node: &Value, out: &mut Vec<String>) {
    out.push(node["digest"].as_str().unwrap().to_string());
    if let Some(c) = node["config"].as_object() {
        out.push(c["digest"].as_str().unwrap().to_string());
    }
    for l in node["layers"].as_array().into_iter().flatten() {
        if l["foreign"] != true {
            out.push(l["digest"].as_str().unwrap().to_string());
        }
    }
    for c in node["children"].as_array().into_iter().flatten() {
        needed(c, out);
    }
}

#[test]
fn export_oci_layout_is_whole_with_exact_digests_and_skopeo_reads_every_oci_entry() {
    let f = sample();
    let t = tempdir();
    let out = t.path().join("layout");
    let before = Snapshot::take(&f.root);
    regkit([
        "-q",
        "export",
        f.root.to_str().unwrap(),
        out.to_str().unwrap(),
        "--format",
        "oci",
        "--ref-name",
        "name",
    ])
    .ok();
    assert_eq!(Snapshot::take(&f.root), before, "ROOT changed");
    assert_eq!(
        fs::read_to_string(out.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let entries = index_entries(&out);
    assert_eq!(entries.len(), f.images().len());
    for (r, digest, copyable) in f.images() {
        let img = f.image(&r);
        let e = entry(&entries, &r);
        // The top manifest's exact descriptor, the tag and the full name.
        assert_eq!(e["digest"], digest.as_str(), "{r}");
        assert_eq!(e["mediaType"], img["media_type"], "{r}");
        assert_eq!(e["size"], img["size"], "{r}");
        assert_eq!(
            e["annotations"]["org.opencontainers.image.ref.name"],
            r.as_str()
        );
        // Whole: every blob present with the right bytes, hardlinked.
        let mut blobs = Vec::new();
        needed(img, &mut blobs);
        for d in blobs {
            let p = layout_blob(&out, &d);
            assert_eq!(sha256_file(&p), d, "{r}: {}", p.display());
            assert!(
                same_inode(&p, &blob_path(&f.root, &d)),
                "{r}: not hardlinked"
            );
        }
        // skopeo 1.9 reads the OCI-typed entries, by ref name.
        if copyable && is_oci(e["mediaType"].as_str().unwrap()) {
            let copied = skopeo_copy_all(&format!("oci:{}:{r}", out.display()))
                .unwrap_or_else(|err| panic!("{r}: {err}"));
            assert_eq!(copied, digest, "{r}");
        }
    }

    // By default the ref name is the tag, as containerd and Docker write it;
    // skopeo finds a tag that one OCI-typed entry has.
    let by_tag = t.path().join("by-tag");
    regkit([
        "-q",
        "export",
        f.root.to_str().unwrap(),
        by_tag.to_str().unwrap(),
        "--format",
        "oci",
        "a/b/c/deep:1.0",
        "team/app",
    ])
    .ok();
    let entries = index_entries(&by_tag);
    assert_eq!(
        entry(&entries, "team/app:v2")["annotations"]["org.opencontainers.image.ref.name"],
        "v2"
    );
    let copied = skopeo_copy_all(&format!("oci:{}:1.0", by_tag.display())).unwrap();
    assert_eq!(copied, f.digest("a/b/c/deep:1.0"));
    // umoci lists every entry of the layout (Docker-typed ones too).
    let ls = run_cmd("umoci", &["ls", "--layout", by_tag.to_str().unwrap()]).ok();
    let mut listed: Vec<&str> = ls.stdout.lines().collect();
    listed.sort();
    assert_eq!(listed, ["1.0", "v1", "v2"]);
}

#[test]
fn export_with_oci_media_types_rewrites_docker_manifests_that_skopeo_and_umoci_read() {
    let f = sample();
    let t = tempdir();
    let out = t.path().join("layout");
    let args = |out: &Path, json: bool| {
        let mut a = vec![
            "export".to_string(),
            f.root.display().to_string(),
            out.display().to_string(),
            "--format".into(),
            "oci".into(),
            "--oci-media-types".into(),
            "--ref-name".into(),
            "name".into(),
        ];
        if json {
            a.push("--json".into());
        }
        a
    };
    let run = regkit(args(&out, true)).ok();
    let rewritten: BTreeMap<String, String> =
        serde_json::from_value(run.json()["rewritten"].clone()).unwrap();
    let entries = index_entries(&out);
    let mut docker_manifests = 0;
    for (r, digest, copyable) in f.images() {
        let img = f.image(&r);
        let e = entry(&entries, &r);
        assert!(
            is_oci(e["mediaType"].as_str().unwrap()),
            "{r}: {}",
            e["mediaType"]
        );
        let was_docker = img["media_type"].as_str().unwrap().contains("docker");
        if was_docker {
            docker_manifests += 1;
            assert_eq!(
                rewritten.get(&digest),
                e["digest"].as_str().map(str::to_string).as_ref(),
                "{r}"
            );
        } else {
            // OCI images keep their bytes and digests.
            assert_eq!(e["digest"], digest.as_str(), "{r}");
            assert!(!rewritten.contains_key(&digest), "{r}");
        }
        // Every Docker child of a list was rewritten, and the new list names it.
        for c in img["children"].as_array().into_iter().flatten() {
            let old = c["digest"].as_str().unwrap();
            if c["media_type"].as_str().unwrap().contains("docker") {
                let new = &rewritten[old];
                assert!(layout_blob(&out, new).is_file(), "{r}: child {new}");
                let list: Value = serde_json::from_slice(
                    &fs::read(layout_blob(&out, e["digest"].as_str().unwrap())).unwrap(),
                )
                .unwrap();
                assert!(list["manifests"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["digest"] == new.as_str() && m["mediaType"] == OCI_MANIFEST));
            }
        }
        if copyable {
            let new = e["digest"].as_str().unwrap();
            let copied = skopeo_copy_all(&format!("oci:{}:{r}", out.display()))
                .unwrap_or_else(|err| panic!("{r}: {err}"));
            assert_eq!(copied, new, "{r}");
        }
    }
    assert!(docker_manifests > 0);
    // Config and layer bytes are unchanged: the rewritten manifest names the
    // source's config and layers, and skopeo reads them with their digests.
    let app = entry(&entries, "team/app:v2")["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let m: Value = serde_json::from_slice(&fs::read(layout_blob(&out, &app)).unwrap()).unwrap();
    let src = f.image("team/app:v2");
    assert_eq!(m["mediaType"], OCI_MANIFEST);
    assert_eq!(m["config"]["digest"], src["config"]["digest"]);
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let layers: Vec<&Value> = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["digest"])
        .collect();
    let src_layers: Vec<&Value> = src["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["digest"])
        .collect();
    assert_eq!(layers, src_layers);
    assert!(m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"));

    // The same input gives the same bytes, and the text output prints the
    // old -> new map.
    let again = t.path().join("again");
    let text = regkit(args(&again, false)).ok();
    assert_eq!(
        fs::read(out.join("index.json")).unwrap(),
        fs::read(again.join("index.json")).unwrap()
    );
    for (old, new) in &rewritten {
        assert!(
            text.stdout.contains(&format!("{old} -> {new}")),
            "{}",
            text.stdout
        );
    }
    // umoci lists the layout.
    let ls = run_cmd("umoci", &["ls", "--layout", out.to_str().unwrap()]).ok();
    assert_eq!(ls.stdout.lines().count(), f.images().len());
    assert!(ls.stdout.lines().any(|l| l == "multi/docker-list:1"));
    // --help says that digests change.
    let help = regkit(["export", "--help"]).ok();
    assert!(help
        .stdout
        .contains("DIGESTS OF THE REWRITTEN MANIFESTS CHANGE"));
}

#[test]
fn export_oci_archive_is_imported_by_containerd_under_full_names_with_source_digests() {
    let f = sample();
    let t = tempdir();
    let tar = t.path().join("images.tar");
    let export = |out: &Path| {
        regkit([
            "-q",
            "export",
            f.root.to_str().unwrap(),
            out.to_str().unwrap(),
            "--format",
            "oci-archive",
            "--name-prefix",
            "harbor.local/",
        ])
        .ok();
    };
    export(&tar);
    // Reproducible: the same selection gives the same bytes.
    let again = t.path().join("again.tar");
    export(&again);
    assert_eq!(sha256_file(&tar), sha256_file(&again));

    let ctr = Containerd::start();
    ctr.ctr(&[
        "images",
        "import",
        "--no-unpack",
        "--all-platforms",
        tar.to_str().unwrap(),
    ])
    .ok();
    let images = ctr.images();
    for (r, digest, _) in f.images() {
        let name = format!("harbor.local/{r}");
        assert_eq!(images.get(&name), Some(&digest), "{name} in {images:?}");
    }
    assert_eq!(images.len(), f.images().len());

    // With --platform, an index keeps its bytes and the layout holds only the
    // kept children: containerd imports it for that platform.
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let one = t.path().join("one-platform.tar");
    regkit([
        "-q",
        "export",
        f.root.to_str().unwrap(),
        one.to_str().unwrap(),
        "--format",
        "oci-archive",
        "--name-prefix",
        "one",
        "--platform",
        &format!("linux/{arch}"),
        "multi/docker-list:1",
        "multi/oci-index:1",
    ])
    .ok();
    ctr.ctr(&["images", "import", "--no-unpack", one.to_str().unwrap()])
        .ok();
    let images = ctr.images();
    for r in ["multi/docker-list:1", "multi/oci-index:1"] {
        assert_eq!(images.get(&format!("one/{r}")), Some(&f.digest(r)), "{r}");
    }
}

#[test]
fn export_docker_archive_is_read_by_skopeo_and_containerd() {
    let f = sample();
    let t = tempdir();
    let tar = t.path().join("app.tar");
    let root = f.root.to_str().unwrap();

    // A multi-arch image needs --platform, and the error says so.
    let r = regkit([
        "export",
        root,
        tar.to_str().unwrap(),
        "--format",
        "docker-archive",
        "multi/docker-list:1",
    ])
    .fails(1);
    assert!(r.stderr.contains("--platform"), "{}", r.stderr);
    assert!(r.stderr.contains("multi/docker-list:1"), "{}", r.stderr);
    assert!(!tar.exists());

    regkit([
        "-q",
        "export",
        root,
        tar.to_str().unwrap(),
        "--format",
        "docker-archive",
        "team/app",
        "library/alpine",
        "multi/docker-list:1",
        "--platform",
        "linux/arm64/v8",
    ])
    .ok();
    let unpacked = t.path().join("unpacked");
    fs::create_dir(&unpacked).unwrap();
    run_cmd(
        "tar",
        &[
            "-xf",
            tar.to_str().unwrap(),
            "-C",
            unpacked.to_str().unwrap(),
        ],
    )
    .ok();
    let list: Value =
        serde_json::from_slice(&fs::read(unpacked.join("manifest.json")).unwrap()).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 4, "alpine's two tags share one entry");
    let alpine = list
        .iter()
        .find(|e| e["RepoTags"][0] == "library/alpine:3.19")
        .unwrap();
    assert_eq!(alpine["RepoTags"][1], "library/alpine:latest");
    let arm = f.image("multi/docker-list:1")["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["platform"] == "linux/arm64/v8")
        .unwrap()
        .clone();
    let entry = list
        .iter()
        .find(|e| e["RepoTags"][0] == "multi/docker-list:1")
        .unwrap();
    assert_eq!(
        entry["Config"],
        format!(
            "blobs/sha256/{}",
            arm["config"]["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:")
        )
    );

    // skopeo reads each image: the config (image ID) is the source's, the
    // layers are the config's diff_ids.
    for r in ["team/app:v1", "team/app:v2", "library/alpine:latest"] {
        let dir = t.path().join(r.replace(['/', ':'], "_"));
        skopeo(&[
            "copy",
            "-q",
            &format!("docker-archive:{}:{r}", tar.display()),
            &format!("dir:{}", dir.display()),
        ])
        .ok();
        let m: Value =
            serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        let config = f.image(r)["config"]["digest"].as_str().unwrap().to_string();
        assert_eq!(m["config"]["digest"], config.as_str(), "{r}");
        let cfg: Value = serde_json::from_slice(
            &fs::read(dir.join(config.trim_start_matches("sha256:"))).unwrap(),
        )
        .unwrap();
        let layers: Vec<&Value> = m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| &l["digest"])
            .collect();
        let diff_ids: Vec<&Value> = cfg["rootfs"]["diff_ids"]
            .as_array()
            .unwrap()
            .iter()
            .collect();
        assert_eq!(layers, diff_ids, "{r}");
    }

    // containerd imports it, names from RepoTags.
    let ctr = Containerd::start();
    ctr.ctr(&["images", "import", "--no-unpack", tar.to_str().unwrap()])
        .ok();
    let images = ctr.images();
    for r in [
        "team/app:v1",
        "team/app:v2",
        "library/alpine:3.19",
        "library/alpine:latest",
        "multi/docker-list:1",
    ] {
        assert!(
            images.contains_key(&format!("docker.io/{r}")),
            "{r} not in {images:?}"
        );
    }
}

#[test]
fn oci_media_types_point_referrers_at_the_rewritten_subject() {
    // gc's signed/list:1 is a Docker manifest list whose children each
    // have an untagged OCI referrer: rewriting a child changes its digest,
    // so each referrer must name the new one (and gets a digest of its own).
    let f = gc_fixture();
    let t = tempdir();
    let out = t.path().join("layout");
    let referrers: Vec<String> = f.sidecar["untagged"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["repo"] == "signed/list")
        .map(|u| u["digest"].as_str().unwrap().to_string())
        .collect();
    let mut args = vec![
        "export".to_string(),
        f.root.display().to_string(),
        out.display().to_string(),
        "--format".into(),
        "oci".into(),
        "--oci-media-types".into(),
        "--json".into(),
        "signed/list:1".into(),
    ];
    args.extend(referrers.iter().map(|d| format!("signed/list@{d}")));
    let run = regkit(&args).ok();
    let rewritten: BTreeMap<String, String> =
        serde_json::from_value(run.json()["rewritten"].clone()).unwrap();
    let entries = index_entries(&out);
    let mut checked = 0;
    for old in &referrers {
        let source: Value =
            serde_json::from_slice(&fs::read(blob_path(&f.root, old)).unwrap()).unwrap();
        let subject = source["subject"]["digest"].as_str().unwrap();
        let new_subject = rewritten
            .get(subject)
            .unwrap_or_else(|| panic!("the subject {subject} of {old} was not rewritten"));
        let new = rewritten
            .get(old)
            .unwrap_or_else(|| panic!("the referrer {old} was not rewritten"));
        assert_ne!(new, old);
        assert!(
            entries
                .iter()
                .any(|e| e["digest"] == new.as_str() && e["mediaType"] == OCI_MANIFEST),
            "index.json names {new}"
        );
        let bytes = fs::read(layout_blob(&out, new)).unwrap();
        assert_eq!(&format!("sha256:{}", sha256_hex(&bytes)), new);
        let m: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(m["subject"]["digest"], new_subject.as_str(), "{old}");
        assert_eq!(m["subject"]["mediaType"], OCI_MANIFEST, "{old}");
        let subject_file = layout_blob(&out, new_subject);
        assert_eq!(
            m["subject"]["size"],
            fs::metadata(&subject_file).unwrap().len(),
            "{old}"
        );
        // Nothing else of the referrer changed.
        for k in [
            "mediaType",
            "artifactType",
            "config",
            "layers",
            "annotations",
        ] {
            assert_eq!(m[k], source[k], "{old}: {k}");
        }
        checked += 1;
    }
    assert_eq!(checked, 2, "signed/list has a referrer per child");
    // skopeo copies the rewritten list (and its rewritten children) from the
    // layout, and umoci lists it.
    let list = rewritten[&f.digest("signed/list:1")].clone();
    let copied = skopeo_copy_all(&format!("oci:{}:1", out.display())).unwrap();
    assert_eq!(copied, list);
    let ls = run_cmd("umoci", &["ls", "--layout", out.to_str().unwrap()]).ok();
    assert_eq!(ls.stdout.lines().collect::<Vec<_>>(), ["1"]);
}
