//! `regkit verify` on trees the real registry wrote, damaged like real
//! disks get damaged: every damage is named with its path and images, and
//! what verify calls broken is what the real registry cannot serve.

use std::collections::BTreeSet;
use std::fs;

use serde_json::Value;

use crate::common::*;

fn verify_json(root: &std::path::Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["verify", root.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let r = regkit(args);
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    let v = r.json();
    (r.code, v)
}

fn findings(v: &Value) -> &Vec<Value> {
    v["findings"].as_array().unwrap()
}

fn images_of(f: &Value) -> BTreeSet<String> {
    f["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn verify_passes_trees_the_registry_wrote_and_changes_nothing() {
    for f in [sample(), edge(), gc_fixture()] {
        let before = Snapshot::take(&f.root);
        let r = regkit(["verify", f.root.to_str().unwrap()]).ok();
        assert!(r.stdout.contains("all good"), "{}", r.stdout);
        let (code, v) = verify_json(&f.root, &[]);
        assert_eq!(code, 0);
        assert_eq!(v["ok"], true);
        assert_eq!(v["images"], f.sidecar["tags"]);
        assert!(v["hashed_blobs"].as_u64().unwrap() > 0);
        assert!(findings(&v).is_empty());
        assert_eq!(Snapshot::take(&f.root), before, "verify changed ROOT");
    }
}

/// The finding kind each damage must produce at its first path.
const BROKEN: &[(&str, &str)] = &[
    ("missing-blob", "missing-blob"),
    ("missing-manifest", "missing-blob"),
    ("bad-link", "bad-link"),
    ("not-json", "bad-manifest"),
    ("missing-child", "missing-blob"),
    ("flipped-byte", "digest-mismatch"),
    ("truncated-blob", "size-mismatch"),
    ("dangling-revision", "dangling-link"),
];

#[test]
fn verify_names_the_path_and_every_image_of_each_damage() {
    let t = tempdir();
    for (kind, finding_kind) in BROKEN {
        let d = damaged(kind, sample(), t.path());
        let (code, v) = verify_json(&d.root, &[]);
        assert_eq!(code, 1, "{kind}: not reported");
        assert_eq!(v["ok"], false);
        let records = d.sidecar["damages"].as_array().unwrap();
        assert!(!records.is_empty());
        for rec in records {
            let path = d.root.join(rec["paths"][0].as_str().unwrap());
            let want: BTreeSet<String> = rec["images"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect();
            let found = findings(&v)
                .iter()
                .find(|f| f["path"].as_str() == Some(path.to_str().unwrap()))
                .unwrap_or_else(|| panic!("{kind}: no finding at {}:\n{v:#}", path.display()));
            assert_eq!(found["kind"], *finding_kind, "{kind}: {found:#}");
            assert!(
                images_of(found).is_superset(&want),
                "{kind}: images {:?}, want {want:?}",
                images_of(found)
            );
        }
        // The text report names the same path and ends with counts.
        let r = regkit(["verify", d.root.to_str().unwrap()]).fails(1);
        let first = d.root.join(records[0]["paths"][0].as_str().unwrap());
        assert!(
            r.stdout.contains(&format!("--> {}", first.display())),
            "{}",
            r.stdout
        );
        assert!(r.stdout.contains("broken blob(s)"), "{}", r.stdout);
    }
}

#[test]
fn verify_passes_untidy_trees_and_lists_their_orphans() {
    // A deleted tag, an orphan blob and an unfinished upload break nothing.
    let t = tempdir();
    let mut checked = 0;
    for kind in ["deleted-tag", "orphan-blob", "leftover-upload"] {
        let d = damaged(kind, sample(), t.path());
        let (code, v) = verify_json(&d.root, &["--all-blobs"]);
        assert_eq!(code, 0, "{kind}: {v:#}");
        let orphans: BTreeSet<&str> = v["orphans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["digest"].as_str().unwrap())
            .collect();
        assert!(findings(&v).is_empty(), "{kind}: {v:#}");
        for rec in d.sidecar["damages"].as_array().unwrap() {
            if kind == "leftover-upload" {
                // Not a blob: no orphan more than the tree had, and the
                // upload is left as it is.
                let (_, plain) = verify_json(&sample().root, &["--all-blobs"]);
                let plain: BTreeSet<&str> = plain["orphans"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|o| o["digest"].as_str().unwrap())
                    .collect();
                assert_eq!(orphans, plain, "{kind}");
                assert!(d.root.join(rec["paths"][0].as_str().unwrap()).is_dir());
                checked += 1;
                continue;
            }
            let digest = rec["digest"].as_str().unwrap();
            let still_tagged = sample().images().iter().any(|(r, dg, _)| {
                dg == digest && !rec["images"].as_array().unwrap().iter().any(|i| i == r)
            });
            assert_eq!(!still_tagged, orphans.contains(digest), "{kind}: {digest}");
            checked += 1;
        }
    }
    // Two deleted tags, one orphan blob, one upload.
    assert!(checked >= 4, "checked {checked} damages");
    // The sample's untagged referrer and moved-away image are orphans too.
    let (_, v) = verify_json(&sample().root, &["--all-blobs"]);
    let orphans: Vec<&str> = v["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["digest"].as_str().unwrap())
        .collect();
    for u in sample().sidecar["untagged"].as_array().unwrap() {
        assert!(orphans.contains(&u["digest"].as_str().unwrap()), "{u}");
    }
}

#[test]
fn verify_all_blobs_hashes_orphans() {
    let t = tempdir();
    let d = damaged("orphan-blob", sample(), t.path());
    let digest = d.sidecar["damages"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let p = blob_path(&d.root, &digest);
    let mut bytes = fs::read(&p).unwrap();
    bytes[10] ^= 0xff;
    fs::write(&p, bytes).unwrap();
    // The images are fine: only --all-blobs reads the orphan.
    regkit(["verify", d.root.to_str().unwrap()]).ok();
    let (code, v) = verify_json(&d.root, &["--all-blobs"]);
    assert_eq!(code, 1);
    let f = &findings(&v)[0];
    assert_eq!(f["kind"], "digest-mismatch");
    assert_eq!(f["path"], p.to_str().unwrap());
    assert!(images_of(f).is_empty());
}

#[test]
fn verify_fast_checks_sizes_without_hashing() {
    let t = tempdir();
    let flipped = damaged("flipped-byte", sample(), t.path());
    let (code, v) = verify_json(&flipped.root, &["--fast"]);
    assert_eq!(code, 0, "--fast hashed: {v:#}");
    assert_eq!(v["hashed_blobs"], 0);
    let truncated = damaged("truncated-blob", sample(), t.path());
    let (code, v) = verify_json(&truncated.root, &["--fast"]);
    assert_eq!(code, 1);
    assert_eq!(findings(&v)[0]["kind"], "size-mismatch");
}

#[test]
fn verify_names_every_image_using_a_broken_shared_layer() {
    let t = tempdir();
    let f = copy_fixture(sample(), t.path(), "shared");
    // The alpine base layer is shared by several repositories.
    let layer = f.image("library/alpine:3.19")["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let p = blob_path(&f.root, &layer);
    let mut bytes = fs::read(&p).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    fs::write(&p, bytes).unwrap();
    let users: BTreeSet<String> = f.sidecar["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| {
            let mut reach = BTreeSet::new();
            node_reach(i, &mut reach);
            reach.contains(&layer)
        })
        .map(|i| i["ref"].as_str().unwrap().to_string())
        .collect();
    assert!(users.len() >= 4, "{users:?}");
    let (code, v) = verify_json(&f.root, &[]);
    assert_eq!(code, 1);
    assert_eq!(findings(&v).len(), 1, "{v:#}");
    assert_eq!(findings(&v)[0]["kind"], "digest-mismatch");
    assert_eq!(images_of(&findings(&v)[0]), users);
    // Each image named checks alone; an image not using it passes.
    regkit(["verify", f.root.to_str().unwrap(), "team/app:v1"]).fails(1);
    regkit(["verify", f.root.to_str().unwrap(), "a/b/c/deep:1.0"]).ok();
    let list = write_list(t.path(), "x.list", &["multi/oci-index:1", "a/b/c/deep"]);
    regkit([
        "verify",
        f.root.to_str().unwrap(),
        "--list",
        list.to_str().unwrap(),
    ])
    .ok();
    // An unknown image is an error, with a suggestion.
    let r = regkit(["verify", f.root.to_str().unwrap(), "team/app:v3"]).fails(1);
    assert!(r.stderr.contains("did you mean"), "{}", r.stderr);
}

fn broken() -> &'static Fixture {
    sample_with_every_damage()
}

#[test]
fn verify_calls_broken_exactly_the_images_the_registry_cannot_serve() {
    let d = broken();
    let (code, v) = verify_json(&d.root, &[]);
    assert_eq!(code, 1);
    let named: BTreeSet<String> = findings(&v).iter().flat_map(images_of).collect();
    let gone: BTreeSet<String> = d.sidecar["damages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "deleted-tag")
        .flat_map(|r| r["images"].as_array().unwrap().clone())
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let reg = Registry::start(&d.root);
    let mut checked = 0;
    for (r, _, copyable) in sample().images() {
        if !copyable || gone.contains(&r) {
            continue;
        }
        let served = skopeo_copy_all(&format!("docker://{}/{r}", reg.host())).is_ok();
        assert_eq!(
            served,
            !named.contains(&r),
            "{r}: skopeo {} it, verify {} it",
            if served { "copies" } else { "cannot copy" },
            if named.contains(&r) {
                "names"
            } else {
                "does not name"
            }
        );
        checked += 1;
    }
    assert!(checked > 20);
    assert!(named.len() >= 6, "{named:?}");
}
