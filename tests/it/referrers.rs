//! `--referrers` and the tag filters (`--tag-regex`, `--semver`) of the
//! commands that read a tree (select, pack, push, export, extract), and
//! `pull --referrers` from a registry that serves the OCI referrers API
//! (Distribution 2.8 does not: a proxy in front of it answers the API from
//! the registry's own storage, as Distribution 3 would).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::common::*;
use crate::push::proxy::{Act, Proxy};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The digests with a revision link in `repo` of the tree at `root`.
fn revisions(root: &Path, repo: &str) -> BTreeSet<String> {
    let dir = root.join(format!(
        "docker/registry/v2/repositories/{repo}/_manifests/revisions/sha256"
    ));
    fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| format!("sha256:{}", e.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default()
}

/// The manifests of `repo` in the tree at `root` whose subject is
/// `digest`, as descriptors (what the OCI referrers API answers).
fn referrers_in(root: &Path, repo: &str, digest: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for d in revisions(root, repo) {
        let bytes = fs::read(blob_path(root, &d)).unwrap();
        let m: Value = serde_json::from_slice(&bytes).unwrap();
        if m["subject"]["digest"] == digest {
            let mut desc = json!({
                "mediaType": m["mediaType"],
                "digest": d,
                "size": bytes.len(),
            });
            if let Some(t) = m["artifactType"].as_str() {
                desc["artifactType"] = json!(t);
            }
            out.push(desc);
        }
    }
    out
}

/// The untagged manifests of the gc fixture that are referrers of what its
/// tags reach (`"gc": "keep"`), and those that are not (`"collect"`).
fn untagged(f: &Fixture, gc: &str) -> Vec<(String, String)> {
    f.sidecar["untagged"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["gc"] == gc)
        .map(|u| {
            (
                u["repo"].as_str().unwrap().to_string(),
                u["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const SIGNED: [&str; 3] = ["signed/multi:1", "signed/list:1", "plain/app:v1"];

#[test]
fn select_brings_referrers_and_cosign_tags_with_their_images() {
    let f = gc_fixture();
    let t = tempdir();
    let with = t.path().join("with");
    let mut args = vec!["-q", "select", s(&f.root), s(&with), "--referrers"];
    args.extend(SIGNED);
    regkit(&args).ok();
    let without = t.path().join("without");
    let mut args = vec!["-q", "select", s(&f.root), s(&without)];
    args.extend(SIGNED);
    regkit(&args).ok();
    let keep = untagged(f, "keep");
    let collect = untagged(f, "collect");
    assert!(
        keep.len() >= 5 && collect.len() >= 3,
        "{keep:?} {collect:?}"
    );
    for (repo, d) in &keep {
        assert!(revisions(&with, repo).contains(d), "{repo}@{d} travels");
        assert!(
            !revisions(&without, repo).contains(d),
            "{repo}@{d} without --referrers"
        );
    }
    for (repo, d) in &collect {
        assert!(
            !revisions(&with, repo).contains(d),
            "{repo}@{d} refers to nothing selected"
        );
    }
    // The cosign tags came along; the registry serves every referrer.
    let tags: Vec<String> = f
        .images()
        .into_iter()
        .map(|(r, _, _)| r)
        .filter(|r| r.contains(":sha256-"))
        .collect();
    assert_eq!(tags.len(), 3);
    let reg = Registry::start(&with);
    for r in &tags {
        let (repo, tag) = r.rsplit_once(':').unwrap();
        assert_eq!(manifest_status(&reg, repo, tag), 200, "{r}");
    }
    for (repo, d) in &keep {
        assert_eq!(manifest_status(&reg, repo, d), 200, "{repo}@{d}");
    }
}

#[test]
fn pack_push_and_export_bring_referrers_too() {
    let f = gc_fixture();
    let t = tempdir();
    let want = t.path().join("selected");
    let mut args = vec!["-q", "select", s(&f.root), s(&want), "--referrers"];
    args.extend(SIGNED);
    regkit(&args).ok();
    let keep = untagged(f, "keep");

    // pack, then unpack: the files select writes (a bundle holds no empty
    // `_uploads/` folders).
    let bundle = t.path().join("b.tar");
    let mut args = vec!["-q", "pack", s(&f.root), s(&bundle), "--referrers"];
    args.extend(SIGNED);
    regkit(&args).ok();
    let unpacked = t.path().join("unpacked");
    regkit(["-q", "unpack", s(&bundle), s(&unpacked)]).ok();
    let files = files_under(&want);
    assert!(files.len() > 50, "{} files", files.len());
    assert_eq!(files_under(&unpacked), files);

    // push: every referrer is served by digest at the destination.
    let dst = t.path().join("dst");
    let reg = Registry::start(&dst);
    let host = reg.host();
    let mut args = vec![
        "push",
        s(&f.root),
        &host,
        "--tls-verify=false",
        "--referrers",
        "--json",
    ];
    args.extend(SIGNED);
    let j = regkit(&args).ok().json();
    assert_eq!(j["totals"]["failed"], 0);
    let mut checked = 0;
    for (repo, d) in &keep {
        assert_eq!(manifest_status(&reg, repo, d), 200, "{repo}@{d}");
        checked += 1;
    }
    assert!(checked >= 5);

    // export: an index.json entry for each referrer.
    let oci = t.path().join("oci");
    let mut args = vec![
        "-q",
        "export",
        s(&f.root),
        s(&oci),
        "--format",
        "oci",
        "--referrers",
    ];
    args.extend(SIGNED);
    regkit(&args).ok();
    let index: Value = serde_json::from_slice(&fs::read(oci.join("index.json")).unwrap()).unwrap();
    let listed: BTreeSet<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    for (_, d) in &keep {
        assert!(listed.contains(d.as_str()), "{d} not in index.json");
    }
}

#[test]
fn tag_filters_choose_tags_in_a_tree() {
    let f = sample();
    let t = tempdir();
    let mut checked = 0;
    for (cmd, extra, want) in [
        ("select", vec!["many/tags", "--tag-regex", "^t2"], 10),
        (
            "extract",
            vec!["library/alpine", "--semver", ">=3.10, <4"],
            1,
        ),
        ("select", vec!["--tag-regex", "^v[0-9]$"], 3),
        ("select", vec!["--semver", "~3.19"], 1),
    ] {
        let out = t.path().join(format!("out-{checked}"));
        let mut args = vec![cmd, s(&f.root), s(&out), "--json"];
        args.extend(extra.iter().copied());
        let j = regkit(&args).ok().json();
        let n = j["images"].as_array().unwrap().len();
        assert_eq!(n, want, "{cmd} {extra:?}: {}", j["images"]);
        checked += 1;
    }
    // push and pack take them too.
    let bundle = t.path().join("b.tar");
    let r = regkit([
        "pack",
        s(&f.root),
        s(&bundle),
        "many/tags",
        "--tag-regex",
        "^t0[0-4]$",
        "--dry-run",
        "--json",
    ])
    .ok()
    .json();
    assert_eq!(r["images"].as_array().unwrap().len(), 5, "{r}");
    let r = regkit([
        "push",
        s(&f.root),
        "127.0.0.1:1",
        "team/app",
        "--semver",
        "1.x",
        "--dry-run",
    ])
    .ok();
    assert!(
        r.stdout.contains("would push 1 image(s)"),
        "v1 is 1.0.0, v2 is not in 1.x: {}",
        r.stdout
    );
    checked += 2;
    assert_eq!(checked, 6);
}

/// A proxy that serves the OCI referrers API from the upstream's storage.
fn referrers_api(up_root: PathBuf, port: u16) -> Proxy {
    Proxy::start(port, move |m, p| {
        let Some((repo, digest)) = p
            .strip_prefix("/v2/")
            .and_then(|r| r.split_once("/referrers/"))
        else {
            return Act::Forward;
        };
        if m != "GET" {
            return Act::Forward;
        }
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": referrers_in(&up_root, repo, digest),
        });
        Act::Reply {
            status: 200,
            headers: vec![(
                "Content-Type".into(),
                "application/vnd.oci.image.index.v1+json".into(),
            )],
            body: serde_json::to_vec(&index).unwrap(),
        }
    })
}

#[test]
fn pull_brings_cosign_tags_and_what_the_referrers_api_lists() {
    let mut checked = 0;
    for (f, images) in [
        (gc_fixture(), SIGNED.to_vec()),
        (sample(), vec!["artifacts/app:v1", "team/app:v1"]),
    ] {
        let t = tempdir();
        let up_root = t.path().join("up");
        copy_tree(&f.root, &up_root);
        let reg = Registry::start(&up_root);
        let proxy = referrers_api(up_root.clone(), reg.port);
        let root = t.path().join("root");
        let from = proxy.dest();
        let mut args = vec!["pull"];
        args.extend(images.iter().copied());
        args.extend([s(&root), "--from", &from, "--referrers", "--json"]);
        let j = regkit(&args).ok().json();
        assert_eq!(j["totals"]["failed"], 0, "{}", j["totals"]);
        assert!(
            j["totals"]["pulled"].as_u64().unwrap() > images.len() as u64,
            "referrers came along: {}",
            j["totals"]
        );
        let asked = proxy
            .seen()
            .iter()
            .filter(|x| x.path.contains("/referrers/"))
            .count();
        assert!(
            asked >= images.len(),
            "the referrers API was asked: {asked}"
        );
        let want = t.path().join("selected");
        let mut args = vec!["-q", "select", s(&up_root), s(&want), "--referrers"];
        args.extend(images.iter().copied());
        fs::create_dir_all(&want).unwrap();
        regkit(&args).ok();
        assert_same_tree(&root, &want);
        checked += 1;
    }
    assert_eq!(checked, 2);
}
