//! `regkit import` from `dir:` folders, OCI layouts and archives, checked
//! against `regkit select`, the real registry, skopeo and containerd.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `select` and `extract` of the same images, then `import` of the
/// extracted folders into an empty root: exactly the select tree.
fn round_trip(f: &Fixture, t: &Path, filter: &[&str]) -> PathBuf {
    let (sel, ext, imp) = (t.join("sel"), t.join("ext"), t.join("imp"));
    for (cmd, out) in [("select", &sel), ("extract", &ext)] {
        let mut args = vec!["-q", cmd, s(&f.root), s(out)];
        args.extend(filter);
        regkit(args).ok();
    }
    let before = Snapshot::take(&ext);
    regkit(["-q", "import", s(&ext), s(&imp)]).ok();
    assert_eq!(Snapshot::take(&ext), before, "the source changed");
    assert_same_tree(&sel, &imp);
    imp
}

#[test]
fn import_of_extracted_folders_gives_exactly_the_select_tree() {
    let f = sample();
    let t = tempdir();
    let imp = round_trip(f, t.path(), &[]);
    // Blobs are hardlinks of the extracted files (themselves of ROOT's).
    let d = f.digest("multi/docker-list:1");
    assert!(same_inode(&blob_path(&imp, &d), &blob_path(&f.root, &d)));
    // Importing again adds nothing and changes nothing.
    let before = Snapshot::take(&imp);
    let r = regkit(["import", s(&t.path().join("ext")), s(&imp)]).ok();
    assert!(
        r.stdout.contains("0 written, 254 already present"),
        "{}",
        r.stdout
    );
    assert_eq!(Snapshot::take(&imp), before);

    // The edge cases: schema1, a foreign layer, odd names, deep repositories.
    let t2 = tempdir();
    round_trip(edge(), t2.path(), &[]);
    // Indexes whose other platforms were left out by --platform.
    let t3 = tempdir();
    round_trip(
        f,
        t3.path(),
        &[
            "multi/docker-list:1",
            "multi/nested:1",
            "--platform",
            "linux/arm64",
        ],
    );
}

#[test]
fn import_of_regkit_oci_layout_and_archive_gives_exactly_the_select_tree() {
    let f = sample();
    let t = tempdir();
    let sel = t.path().join("sel");
    regkit(["-q", "select", s(&f.root), s(&sel)]).ok();
    for format in ["oci", "oci-archive"] {
        let out = t.path().join(format);
        let imp = t.path().join(format!("imp-{format}"));
        regkit(["-q", "export", s(&f.root), s(&out), "--format", format]).ok();
        regkit(["-q", "import", s(&out), s(&imp)]).ok();
        assert_same_tree(&sel, &imp);
        // Nothing is left beside ROOT.
        let leftovers: Vec<_> = fs::read_dir(t.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

#[test]
fn import_of_a_skopeo_oci_layout_is_served_by_the_registry() {
    let f = sample();
    let t = tempdir();
    let src_root = t.path().join("src");
    copy_tree(&f.root, &src_root);
    let src = Registry::start(&src_root);
    // skopeo writes OCI layouts with the name, or the tag alone, as ref name.
    let named = t.path().join("named");
    let tagged = t.path().join("tagged");
    for (r, dst) in [
        (
            "multi/docker-list:1",
            format!("oci:{}:multi/docker-list:1", named.display()),
        ),
        (
            "team/app:v1",
            format!("oci:{}:team/app:v1", named.display()),
        ),
        ("a/b/c/deep:1.0", format!("oci:{}:1.0", tagged.display())),
    ] {
        skopeo(&[
            "copy",
            "--all",
            "-q",
            "--src-tls-verify=false",
            &format!("docker://{}/{r}", src.host()),
            &dst,
        ])
        .ok();
    }
    let root = t.path().join("root");
    regkit([
        "-q",
        "import",
        s(&named),
        s(&tagged),
        s(&root),
        "--repo",
        "a/b/c/deep",
    ])
    .ok();

    let reg = Registry::start(&root);
    let mut repos = reg.catalog();
    repos.sort();
    assert_eq!(repos, ["a/b/c/deep", "multi/docker-list", "team/app"]);
    for (layout, r, name) in [
        (&named, "multi/docker-list:1", "multi/docker-list:1"),
        (&named, "team/app:v1", "team/app:v1"),
        (&tagged, "a/b/c/deep:1.0", "1.0"),
    ] {
        let index: Value =
            serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
        let e = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == name)
            .unwrap();
        let copied = skopeo_copy_all(&format!("docker://{}/{r}", reg.host())).unwrap();
        assert_eq!(copied, e["digest"].as_str().unwrap(), "{r}");
    }
    // skopeo kept the OCI image as it was; the Docker ones it converted.
    assert_eq!(
        skopeo_copy_all(&format!("docker://{}/a/b/c/deep:1.0", reg.host())).unwrap(),
        f.digest("a/b/c/deep:1.0")
    );
}

/// The digest `regkit ls` gives a tag of ROOT.
fn listed_digest(root: &Path, name: &str) -> String {
    let ls = regkit(["ls", s(root), "--json"]).ok().json();
    ls.as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed"))["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn import_of_docker_archives_keeps_the_image_id_and_builds_containerds_manifest() {
    let f = sample();
    let t = tempdir();
    // A docker archive written by skopeo (uncompressed layers) and one by
    // regkit export (the registry's gzip layers).
    let ext = t.path().join("ext");
    regkit(["-q", "extract", s(&f.root), s(&ext), "team/app:v2"]).ok();
    let by_skopeo = t.path().join("skopeo.tar");
    skopeo(&[
        "copy",
        "-q",
        &format!("dir:{}", ext.join("team/app:v2").display()),
        &format!("docker-archive:{}:skopeo/app:v2", by_skopeo.display()),
    ])
    .ok();
    let by_regkit = t.path().join("regkit.tar");
    regkit([
        "-q",
        "export",
        s(&f.root),
        s(&by_regkit),
        "--format",
        "docker-archive",
        "team/app:v2",
    ])
    .ok();

    let root = t.path().join("root");
    regkit(["-q", "import", s(&by_skopeo), s(&by_regkit), s(&root)]).ok();
    let config = f.image("team/app:v2")["config"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let reg = Registry::start(&root);
    let ctr = Containerd::start();
    for (archive, r, layer_type) in [
        (
            &by_skopeo,
            "skopeo/app:v2",
            "application/vnd.docker.image.rootfs.diff.tar",
        ),
        (
            &by_regkit,
            "team/app:v2",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        ),
    ] {
        let digest = listed_digest(&root, r);
        // The registry serves it, skopeo checks every digest.
        assert_eq!(
            skopeo_copy_all(&format!("docker://{}/{r}", reg.host())).unwrap(),
            digest,
            "{r}"
        );
        let (repo, tag) = r.split_once(':').unwrap();
        let (status, body) = reg.get(&format!("/v2/{repo}/manifests/{tag}"));
        assert_eq!(status, 200);
        let m: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            m["mediaType"],
            "application/vnd.docker.distribution.manifest.v2+json"
        );
        assert_eq!(
            m["config"]["digest"],
            config.as_str(),
            "{r}: the image ID changed"
        );
        assert!(
            m["layers"]
                .as_array()
                .unwrap()
                .iter()
                .all(|l| l["mediaType"] == layer_type),
            "{r}: {m}"
        );
        // containerd builds the same manifest from the same archive.
        ctr.ctr(&["images", "import", "--no-unpack", s(archive)])
            .ok();
        assert_eq!(
            ctr.images().get(&format!("docker.io/{r}")),
            Some(&digest),
            "{r}"
        );
    }
}

#[test]
fn import_merges_into_an_existing_root_and_refuses_what_differs() {
    let f = sample();
    let t = tempdir();
    let root = t.path().join("root");
    regkit(["-q", "select", s(&f.root), s(&root), "team/app:v1"]).ok();
    let ext = t.path().join("ext");
    regkit([
        "-q",
        "extract",
        s(&f.root),
        s(&ext),
        "team/app",
        "library/alpine:3.19",
    ])
    .ok();
    let r = regkit(["import", s(&ext), s(&root)]).ok();
    assert!(r.stdout.contains("imported 3 image(s)"), "{}", r.stdout);
    let reg = Registry::start(&root);
    assert_eq!(reg.tags("team/app"), ["v1", "v2"]);
    drop(reg);

    // A tag that points elsewhere in ROOT: refused, naming both, nothing written.
    let other = t.path().join("other");
    fs::create_dir(&other).unwrap();
    fs::rename(ext.join("team/app:v2"), other.join("app")).unwrap();
    let before = Snapshot::take(&root);
    let r = regkit([
        "import",
        s(&other.join("app")),
        s(&root),
        "--repo",
        "team/app:v1",
    ])
    .fails(1);
    assert!(r.stderr.contains("refusing to overwrite"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("team/app/_manifests/tags/v1/current/link"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains(&f.digest("team/app:v1")), "{}", r.stderr);
    assert!(r.stderr.contains(&f.digest("team/app:v2")), "{}", r.stderr);
    assert_eq!(Snapshot::take(&root), before, "ROOT changed");

    // --dry-run reads and checks, lists, and writes nothing.
    let r = regkit([
        "import",
        s(&other.join("app")),
        s(&root),
        "--repo",
        "team/app:v3",
        "--dry-run",
    ])
    .ok();
    assert!(
        r.stdout
            .contains(&format!("team/app:v3  {}", f.digest("team/app:v2"))),
        "{}",
        r.stdout
    );
    assert_eq!(Snapshot::take(&root), before, "ROOT changed");
}

/// Runs an import that must fail: exit 1, stderr naming `names`, and ROOT
/// (an existing tree) unchanged.
#[track_caller]
fn refused(srcs: &[&Path], root: &Path, extra: &[&str], names: &[&str]) {
    let before = Snapshot::take(root);
    let mut args = vec!["import".to_string()];
    args.extend(srcs.iter().map(|p| p.display().to_string()));
    args.push(root.display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    let r = regkit(args).fails(1);
    for n in names {
        assert!(
            r.stderr.contains(n),
            "stderr does not name {n}:\n{}",
            r.stderr
        );
    }
    assert_eq!(Snapshot::take(root), before, "ROOT changed");
    let parent = root.parent().unwrap();
    let leftovers: Vec<_> = fs::read_dir(parent)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("regkit"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Replaces a file (a hardlink of the fixture's) by other bytes.
fn overwrite(p: &Path, bytes: &[u8]) {
    fs::remove_file(p).unwrap();
    fs::write(p, bytes).unwrap();
}

/// Writes a tar of `(name, bytes)` regular files and `(name, target)`
/// symlinks, names set raw so that `..` and absolute paths get in.
fn raw_tar(path: &Path, files: &[(&str, &[u8])], symlinks: &[(&str, &str)]) {
    let mut b = tar::Builder::new(fs::File::create(path).unwrap());
    let raw_name = |h: &mut tar::Header, name: &str| {
        let n = &mut h.as_old_mut().name;
        n.fill(0);
        n[..name.len()].copy_from_slice(name.as_bytes());
    };
    for (name, bytes) in files {
        let mut h = tar::Header::new_gnu();
        raw_name(&mut h, name);
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, *bytes).unwrap();
    }
    for (name, target) in symlinks {
        let mut h = tar::Header::new_gnu();
        raw_name(&mut h, name);
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        let l = &mut h.as_old_mut().linkname;
        l.fill(0);
        l[..target.len()].copy_from_slice(target.as_bytes());
        h.set_cksum();
        b.append(&h, std::io::empty()).unwrap();
    }
    b.finish().unwrap();
}

#[test]
fn bad_inputs_are_refused_naming_the_file_and_root_is_unchanged() {
    let f = sample();
    let t = tempdir();
    let p = t.path();
    let root = p.join("root");
    regkit(["-q", "select", s(&f.root), s(&root), "library/alpine"]).ok();
    let app = f.image("team/app:v2");
    let layer = app["layers"][1]["digest"].as_str().unwrap();
    let hex = |d: &str| d.trim_start_matches("sha256:").to_string();

    // An OCI layout with a missing blob.
    let layout = p.join("layout");
    regkit([
        "-q",
        "export",
        s(&f.root),
        s(&layout),
        "--format",
        "oci",
        "team/app:v2",
    ])
    .ok();
    fs::remove_file(layout.join("blobs/sha256").join(hex(layer))).unwrap();
    let missing = format!("layout/blobs/sha256/{}", hex(layer));
    refused(
        &[&layout],
        &root,
        &[],
        &["is missing", "layer 2 of 3", &missing],
    );

    // dir: folders whose child manifest, or blob, is not what its name says.
    let ext = p.join("ext");
    regkit([
        "-q",
        "extract",
        s(&f.root),
        s(&ext),
        "multi/docker-list:1",
        "team/app:v2",
    ])
    .ok();
    let child = f.image("multi/docker-list:1")["children"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let child_file = ext
        .join("multi/docker-list:1")
        .join(format!("{}.manifest.json", hex(&child)));
    let mut bytes = fs::read(&child_file).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 1;
    overwrite(&child_file, &bytes);
    refused(
        &[&ext],
        &root,
        &[],
        &["wrong content", &format!("{}.manifest.json", hex(&child))],
    );
    fs::remove_dir_all(ext.join("multi")).unwrap();
    let blob_file = ext.join("team/app:v2").join(hex(layer));
    let mut bytes = fs::read(&blob_file).unwrap();
    bytes[0] ^= 1;
    overwrite(&blob_file, &bytes);
    refused(
        &[&ext],
        &root,
        &[],
        &["wrong content", &format!("app:v2/{}", hex(layer))],
    );

    // A docker archive listing a layer it does not hold.
    let archive = p.join("app.tar");
    regkit([
        "-q",
        "export",
        s(&f.root),
        s(&archive),
        "--format",
        "docker-archive",
        "team/app:v2",
    ])
    .ok();
    let mut members: Vec<(String, Vec<u8>)> = Vec::new();
    let mut a = tar::Archive::new(fs::File::open(&archive).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut b).unwrap();
        if e.header().entry_type().is_file() && !name.ends_with(&hex(layer)) {
            members.push((name, b));
        }
    }
    let lacking = p.join("lacking.tar");
    let files: Vec<(&str, &[u8])> = members
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    raw_tar(&lacking, &files, &[]);
    refused(
        &[&lacking],
        &root,
        &[],
        &[
            "layer 2 of 3",
            "is not in the archive",
            &format!("lacking.tar:blobs/sha256/{}", hex(layer)),
        ],
    );

    // An unpacked docker archive whose manifest.json points outside it.
    let unpacked = p.join("unpacked");
    fs::create_dir(&unpacked).unwrap();
    run_cmd("tar", &["-xf", s(&archive), "-C", s(&unpacked)]).ok();
    let list = fs::read_to_string(unpacked.join("manifest.json"))
        .unwrap()
        .replace(
            &format!("blobs/sha256/{}", hex(layer)),
            "../../etc/hostname",
        );
    overwrite(&unpacked.join("manifest.json"), list.as_bytes());
    refused(
        &[&unpacked],
        &root,
        &[],
        &["`../../etc/hostname` points outside the source", "unpacked"],
    );

    // Tar entries that leave the archive.
    let escape = p.join("escape.tar");
    raw_tar(&escape, &[("../evil", b"x"), ("manifest.json", b"[]")], &[]);
    refused(
        &[&escape],
        &root,
        &[],
        &["`../evil`", "outside the archive", "escape.tar"],
    );
    let escape = p.join("symlink.tar");
    raw_tar(
        &escape,
        &[("manifest.json", b"[]")],
        &[("blobs/x", "/etc/passwd")],
    );
    refused(
        &[&escape],
        &root,
        &[],
        &["`blobs/x`", "outside the archive", "symlink.tar"],
    );
    let escape = p.join("climb.tar");
    raw_tar(
        &escape,
        &[("manifest.json", b"[]")],
        &[("a/x", "../../etc/passwd")],
    );
    refused(&[&escape], &root, &[], &["`a/x`", "outside the archive"]);

    // Names that are not repositories: a folder, an index.json entry.
    let names = p.join("names");
    fs::create_dir(&names).unwrap();
    fs::rename(ext.join("team/app:v2"), names.join("Team_App:v2")).unwrap();
    refused(
        &[&names],
        &root,
        &[],
        &["`Team_App` is not a repository name", "Team_App:v2"],
    );
    let index_path = layout.join("index.json");
    let index = fs::read_to_string(&index_path)
        .unwrap()
        .replace("team/app:v2", "Team/App:v2");
    overwrite(&index_path, index.as_bytes());
    refused(
        &[&layout],
        &root,
        &[],
        &["index.json entry 1", "Team/App", "layout/index.json"],
    );
    // A bad --repo is a usage error.
    let r = regkit(["import", s(&names), s(&root), "--repo", "Bad Name"]).fails(2);
    assert!(r.stderr.contains("not an image reference"), "{}", r.stderr);

    // A ROOT that does not exist is not created when the import fails.
    let fresh = p.join("fresh");
    let r = regkit(["import", s(&lacking), s(&fresh)]).fails(1);
    assert!(r.stderr.contains("is not in the archive"), "{}", r.stderr);
    assert!(!fresh.exists());
}
