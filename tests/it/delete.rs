//! `regkit delete` does offline what the registry's API does: the same
//! files go as with `skopeo delete`, and `gc` then frees the space.

use std::collections::BTreeSet;

use crate::common::*;

#[test]
fn delete_manifest_removes_what_skopeo_delete_removes() {
    let t = tempdir();
    for image in ["team/app:v1", "library/alpine:3.19", "multi/docker-list:1"] {
        let dir = t.path().join(image.replace(['/', ':'], "_"));
        std::fs::create_dir(&dir).unwrap();
        let theirs = copy_fixture(sample(), &dir, "theirs");
        let ours = copy_fixture(sample(), &dir, "ours");
        {
            let reg = Registry::start(&theirs.root);
            skopeo(&[
                "delete",
                "--tls-verify=false",
                &format!("docker://{}/{image}", reg.host()),
            ])
            .ok();
        }
        regkit(["delete", ours.root.to_str().unwrap(), image, "--manifest"]).ok();
        assert_eq!(
            files_under(&ours.root),
            files_under(&theirs.root),
            "{image}"
        );
    }
}

#[test]
fn delete_tag_keeps_the_manifest_and_its_other_tags() {
    let t = tempdir();
    let f = copy_fixture(sample(), t.path(), "s");
    let digest = f.digest("library/alpine:3.19");
    let r = regkit(["delete", f.root.to_str().unwrap(), "library/alpine:3.19"]).ok();
    assert!(
        r.stdout.contains("deleted tag library/alpine:3.19"),
        "{}",
        r.stdout
    );
    let reg = Registry::start(&f.root);
    assert_eq!(reg.tags("library/alpine"), ["latest"]);
    assert_eq!(manifest_status(&reg, "library/alpine", "3.19"), 404);
    assert_eq!(manifest_status(&reg, "library/alpine", &digest), 200);
    drop(reg);
    assert_serves_tags(&f.root, &f, &["library/alpine:3.19"]);
}

#[test]
fn delete_dry_run_changes_nothing() {
    let t = tempdir();
    let f = copy_fixture(sample(), t.path(), "s");
    let before = Snapshot::take(&f.root);
    let r = regkit([
        "delete",
        f.root.to_str().unwrap(),
        "team/app",
        "--manifest",
        "--dry-run",
        "--json",
    ])
    .ok();
    assert!(Snapshot::take(&f.root) == before, "the tree changed");
    let v = r.json();
    assert_eq!(v["tags"].as_array().unwrap().len(), 2);
    assert_eq!(v["manifests"].as_array().unwrap().len(), 2);
    let r = regkit(["delete", f.root.to_str().unwrap(), "team/app:v9"]).fails(1);
    assert!(r.stderr.contains("did you mean"), "{}", r.stderr);
    assert!(Snapshot::take(&f.root) == before, "the tree changed");
}

#[test]
fn delete_then_gc_frees_what_only_that_image_used() {
    let t = tempdir();
    let f = copy_fixture(sample(), t.path(), "s");
    let v2 = f.image("team/app:v2");
    let mut mine = BTreeSet::new();
    node_reach(v2, &mut mine);
    let mut others = BTreeSet::new();
    for i in f.sidecar["images"].as_array().unwrap() {
        if i["ref"] != "team/app:v2" {
            node_reach(i, &mut others);
        }
    }
    for u in f.sidecar["untagged"].as_array().unwrap() {
        node_reach(u, &mut others);
    }
    let only: BTreeSet<String> = mine.difference(&others).cloned().collect();
    assert!(only.len() >= 3, "{only:?}");
    regkit([
        "delete",
        f.root.to_str().unwrap(),
        &format!("team/app@{}", f.digest("team/app:v2")),
    ])
    .ok();
    let before = blob_set(&f.root);
    regkit(["-q", "gc", f.root.to_str().unwrap()]).ok();
    let gone: BTreeSet<String> = before.difference(&blob_set(&f.root)).cloned().collect();
    assert_eq!(gone, only);
    regkit(["verify", f.root.to_str().unwrap()]).ok();
    assert_serves_tags(&f.root, &f, &["team/app:v2"]);
}
