//! `regkit gc` against the real `docker-registry garbage-collect` on copies
//! of the same trees: the same blobs go where distribution is right; where
//! it is wrong (index children and referrers with --delete-untagged) the
//! real registry cannot serve what it broke, and regkit keeps it servable.
//! After every regkit gc the real registry serves every kept tag.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::common::*;

fn gc(root: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["gc", root.to_str().unwrap()];
    args.extend_from_slice(extra);
    regkit(args)
}

fn gc_json(root: &Path, extra: &[&str]) -> Value {
    let mut e = vec!["--json"];
    e.extend_from_slice(extra);
    gc(root, &e).ok().json()
}

/// Blobs deleted from `before` to `root` now.
fn deleted(before: &BTreeSet<String>, root: &Path) -> BTreeSet<String> {
    before.difference(&blob_set(root)).cloned().collect()
}

#[test]
fn gc_deletes_the_blobs_distribution_deletes() {
    let t = tempdir();
    let trees = [
        damaged("deleted-tag", sample(), t.path()),
        damaged("orphan-blob", sample(), t.path()),
        damaged("orphan-blob", edge(), &t.path().join("edge")),
        copy_fixture(gc_fixture(), t.path(), "gc"),
        copy_fixture(sample(), t.path(), "sample"),
    ];
    for (i, d) in trees.iter().enumerate() {
        let before = blob_set(&d.root);
        let theirs = copy_fixture(d, t.path(), &format!("theirs-{i}"));
        let r = registry_gc(&theirs.root, false);
        assert_eq!(r.code, 0, "garbage-collect: {}", r.stderr);
        let v = gc_json(&d.root, &[]);
        let ours = deleted(&before, &d.root);
        assert_eq!(ours, deleted(&before, &theirs.root), "{}", d.root.display());
        assert_eq!(v["freed_blobs"].as_u64().unwrap() as usize, ours.len());
        // The sample as pushed has nothing to collect; a deleted tag and an
        // orphan upload leave garbage (the gc recipe has an orphan too).
        let expect_some = !d.root.ends_with("sample");
        assert_eq!(!ours.is_empty(), expect_some, "{}", d.root.display());
        let source = if d.root.starts_with(t.path().join("edge")) {
            edge()
        } else if d.root.ends_with("gc") {
            gc_fixture()
        } else {
            sample()
        };
        let gone = gone_tags(d);
        let except: Vec<&str> = gone.iter().map(String::as_str).collect();
        assert_serves_tags(&d.root, &with_sidecar(source, d), &except);
    }
}

/// Tags a damage removed.
fn gone_tags(d: &Fixture) -> Vec<String> {
    d.sidecar["damages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["kind"] == "deleted-tag")
        .flat_map(|r| r["images"].as_array().unwrap().clone())
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// The source fixture's images, for a damaged copy at `d.root`.
fn with_sidecar(source: &Fixture, d: &Fixture) -> Fixture {
    Fixture {
        root: d.root.clone(),
        sidecar: source.sidecar.clone(),
    }
}

#[test]
fn gc_dry_run_deletes_nothing_and_reports_what_gc_then_does() {
    let t = tempdir();
    let d = damaged("deleted-tag", sample(), t.path());
    let before = Snapshot::take(&d.root);
    let dry = gc_json(&d.root, &["--dry-run", "--delete-untagged"]);
    assert!(
        Snapshot::take(&d.root) == before,
        "dry run changed the tree"
    );
    let text = gc(&d.root, &["-n", "-m"]).ok();
    assert!(text.stdout.contains("would free"), "{}", text.stdout);
    let real = gc_json(&d.root, &["--delete-untagged"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(real["dry_run"], false);
    for k in [
        "freed_blobs",
        "freed_bytes",
        "manifests",
        "layer_links",
        "blobs",
    ] {
        assert_eq!(dry[k], real[k], "{k}");
    }
    assert!(real["freed_bytes"].as_u64().unwrap() > 0);
    for b in real["blobs"].as_array().unwrap() {
        assert!(!blob_path(&d.root, b["digest"].as_str().unwrap()).exists());
    }
    assert_serves_tags(
        &d.root,
        &with_sidecar(sample(), &d),
        &["team/app:v1", "many/tags:t05"],
    );
}

/// Digests a sidecar says are kept by a correct --delete-untagged: the tags
/// and what they reach, and the referrers (subject) of anything kept.
fn kept_by_tags(f: &Fixture) -> BTreeSet<String> {
    let mut kept = BTreeSet::new();
    for i in f.sidecar["images"].as_array().unwrap() {
        node_reach(i, &mut kept);
    }
    loop {
        let mut more = BTreeSet::new();
        for u in f.sidecar["untagged"].as_array().unwrap() {
            let subject = u["subject"].as_str();
            if subject.is_some_and(|s| kept.contains(s))
                && !kept.contains(u["digest"].as_str().unwrap())
            {
                node_reach(u, &mut more);
            }
        }
        if more.is_empty() {
            return kept;
        }
        kept.extend(more);
    }
}

/// Runs both collectors with --delete-untagged on copies of `f`; returns
/// (ours, theirs) roots after checking the blob sets against each other.
fn both_delete_untagged(f: &Fixture, dir: &Path) -> (Fixture, Fixture) {
    let ours = copy_fixture(f, dir, "ours");
    let theirs = copy_fixture(f, dir, "theirs");
    let before = blob_set(&f.root);
    let r = registry_gc(&theirs.root, true);
    assert_eq!(r.code, 0, "garbage-collect: {}", r.stderr);
    gc(&ours.root, &["-q", "--delete-untagged"]).ok();
    let (d_ours, d_theirs) = (deleted(&before, &ours.root), deleted(&before, &theirs.root));
    // Ours deletes a subset of theirs, and what only theirs deletes is
    // needed by a tagged index's children or a kept manifest's referrers.
    assert!(
        d_ours.is_subset(&d_theirs),
        "{:?}",
        d_ours.difference(&d_theirs)
    );
    let kept = kept_by_tags(f);
    let only_theirs: BTreeSet<_> = d_theirs.difference(&d_ours).cloned().collect();
    assert!(!only_theirs.is_empty(), "distribution broke nothing here");
    assert!(
        only_theirs.is_subset(&kept),
        "{:?}",
        only_theirs.difference(&kept)
    );
    // Ours deletes exactly what no tag keeps.
    let expect: BTreeSet<String> = before.difference(&kept).cloned().collect();
    assert_eq!(d_ours, expect);
    (ours, theirs)
}

#[test]
fn gc_delete_untagged_keeps_index_children_and_referrers_distribution_removes() {
    // distribution/distribution#3004 and #3178: garbage-collect
    // --delete-untagged removes the untagged children of a tagged manifest
    // list, and with them every OCI referrer.
    let t = tempdir();
    let f = sample();
    let (ours, theirs) = both_delete_untagged(f, t.path());
    let referrer = f.sidecar["untagged"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["subject"].is_string())
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let moved = f.untagged_in("many/tags");
    {
        let reg = Registry::start(&theirs.root);
        for r in ["multi/docker-list:1", "multi/oci-index:1"] {
            let e = skopeo_copy_all(&format!("docker://{}/{r}", reg.host()));
            assert!(e.is_err(), "{r} survived distribution's gc");
        }
        assert_eq!(manifest_status(&reg, "artifacts/app", &referrer), 404);
        assert_eq!(manifest_status(&reg, "many/tags", &moved), 404);
    }
    assert_serves_tags(&ours.root, f, &[]);
    let reg = Registry::start(&ours.root);
    assert_eq!(manifest_status(&reg, "artifacts/app", &referrer), 200);
    assert!(skopeo_copy_all(&format!("docker://{}/artifacts/app@{referrer}", reg.host())).is_ok());
    assert_eq!(manifest_status(&reg, "many/tags", &moved), 404);
    regkit(["verify", ours.root.to_str().unwrap()]).ok();
}

#[test]
fn gc_delete_untagged_on_signed_multi_arch_images() {
    let t = tempdir();
    let f = gc_fixture();
    let (ours, theirs) = both_delete_untagged(f, t.path());
    let untagged = f.sidecar["untagged"].as_array().unwrap();
    {
        let reg = Registry::start(&theirs.root);
        for r in ["signed/multi:1", "signed/list:1"] {
            assert!(
                skopeo_copy_all(&format!("docker://{}/{r}", reg.host())).is_err(),
                "{r}"
            );
        }
        for u in untagged.iter().filter(|u| u["gc"] == "keep") {
            let (repo, d) = (u["repo"].as_str().unwrap(), u["digest"].as_str().unwrap());
            assert_eq!(manifest_status(&reg, repo, d), 404, "{u}");
        }
    }
    assert_serves_tags(&ours.root, f, &[]);
    let reg = Registry::start(&ours.root);
    for u in untagged {
        let (repo, d) = (u["repo"].as_str().unwrap(), u["digest"].as_str().unwrap());
        if u["gc"] == "keep" {
            let got = skopeo_copy_all(&format!("docker://{}/{repo}@{d}", reg.host()))
                .unwrap_or_else(|e| panic!("{repo}@{d}: {e}"));
            assert_eq!(got, d);
        } else {
            assert_eq!(u["gc"], "collect");
            assert_eq!(manifest_status(&reg, repo, d), 404, "{u}");
            // Its children went with it.
            for c in u["children"].as_array().unwrap() {
                let c = c["digest"].as_str().unwrap();
                assert_eq!(manifest_status(&reg, repo, c), 404);
            }
        }
    }
    // The removed manifests left no tag history naming them.
    let v2 = ours.root.join("docker/registry/v2/repositories");
    for u in untagged.iter().filter(|u| u["gc"] == "collect") {
        let hex = u["digest"].as_str().unwrap().trim_start_matches("sha256:");
        let repo = v2.join(u["repo"].as_str().unwrap());
        assert!(!repo.join("_manifests/revisions/sha256").join(hex).exists());
        let tags = repo.join("_manifests/tags");
        for tag in fs::read_dir(&tags).unwrap() {
            assert!(!tag.unwrap().path().join("index/sha256").join(hex).exists());
        }
    }
    regkit(["verify", ours.root.to_str().unwrap()]).ok();
    // A second run finds nothing more.
    let again = gc_json(&ours.root, &["--delete-untagged"]);
    assert_eq!(again["freed_blobs"], 0);
    assert_eq!(again["manifests"].as_array().unwrap().len(), 0);
}

#[test]
fn gc_removes_the_layer_links_distribution_leaves_dangling() {
    let t = tempdir();
    let d = damaged("orphan-blob", sample(), t.path());
    let rec = &d.sidecar["damages"][0];
    let link = d.root.join(rec["paths"][1].as_str().unwrap());
    assert!(link.is_file());
    // docker-registry 2.8 deletes the blob and leaves its _layers link.
    let theirs = copy_fixture(&d, t.path(), "theirs");
    registry_gc(&theirs.root, false);
    let their_link = theirs.root.join(rec["paths"][1].as_str().unwrap());
    assert!(their_link.is_file());
    let r = regkit(["verify", theirs.root.to_str().unwrap()]).fails(1);
    assert!(
        r.stdout.contains(&their_link.display().to_string()),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("whose blob is missing"), "{}", r.stdout);
    // regkit gc removes it, on both trees.
    for root in [&d.root, &theirs.root] {
        let v = gc_json(root, &[]);
        assert_eq!(v["layer_links"].as_array().unwrap().len(), 1, "{v:#}");
        regkit(["verify", root.to_str().unwrap()]).ok();
    }
    assert!(!link.exists() && !link.parent().unwrap().exists());
    assert!(!blob_path(&d.root, rec["digest"].as_str().unwrap()).exists());
    assert_serves_tags(&d.root, &with_sidecar(sample(), &d), &[]);
}

#[test]
fn gc_refuses_while_a_registry_may_be_writing() {
    let t = tempdir();
    let d = damaged("leftover-upload", sample(), t.path());
    let upload = d
        .root
        .join(d.sidecar["damages"][0]["paths"][0].as_str().unwrap());
    let before = Snapshot::take(&d.root);
    let r = gc(&d.root, &["-m"]).fails(1);
    assert!(r.stderr.contains("registry may be writing"), "{}", r.stderr);
    assert!(
        r.stderr.contains(&upload.display().to_string()),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    assert!(Snapshot::take(&d.root) == before, "the tree changed");

    // --force runs; the fresh upload stays.
    gc(&d.root, &["--force", "--uploads-older-than", "1h"]).ok();
    assert!(upload.is_dir());
    let note = d.root.join("docker/registry/v2/.regkit-gc.lock");
    assert!(!note.exists(), "gc left its note behind");
    assert_serves_tags(&d.root, &with_sidecar(sample(), &d), &[]);
}

#[test]
fn gc_removes_uploads_older_than_asked() {
    let t = tempdir();
    let d = damaged("leftover-upload", sample(), t.path());
    let fresh = d
        .root
        .join(d.sidecar["damages"][0]["paths"][0].as_str().unwrap());
    // An upload started years ago and left: startedat as the registry
    // writes it (RFC 3339), and old file times.
    let old = fresh
        .parent()
        .unwrap()
        .join("0d5e5a9b-1f43-4a61-9a2c-3c1f1d1e0a77");
    run_cmd(
        "cp",
        &["-a", fresh.to_str().unwrap(), old.to_str().unwrap()],
    );
    fs::write(old.join("startedat"), "2021-03-04T05:06:07Z").unwrap();
    for p in [old.join("data"), old.clone()] {
        run_cmd(
            "touch",
            &["-d", "2021-03-04T05:06:07Z", p.to_str().unwrap()],
        );
    }
    let v = gc_json(&d.root, &["--force", "--uploads-older-than", "7d"]);
    let removed = v["uploads"].as_array().unwrap();
    assert_eq!(removed.len(), 1, "{v:#}");
    assert_eq!(removed[0]["started"], "2021-03-04T05:06:07Z");
    assert_eq!(v["upload_bytes"], 3000);
    assert!(!old.exists());
    assert!(fresh.is_dir());
    // Without startedat, the folder's time decides.
    run_cmd(
        "cp",
        &["-a", fresh.to_str().unwrap(), old.to_str().unwrap()],
    );
    fs::remove_file(old.join("startedat")).unwrap();
    for p in [old.join("data"), old.clone()] {
        run_cmd(
            "touch",
            &["-d", "2021-03-04T05:06:07Z", p.to_str().unwrap()],
        );
    }
    gc(&d.root, &["-q", "--force", "--uploads-older-than", "30d"]).ok();
    assert!(!old.exists());
    assert!(fresh.is_dir());
    assert_serves_tags(&d.root, &with_sidecar(sample(), &d), &[]);
}

fn repo_dir_of(root: &Path, repo: &str) -> std::path::PathBuf {
    root.join("docker/registry/v2/repositories").join(repo)
}

#[test]
fn gc_keeps_a_repository_whose_manifest_cannot_be_read_whole() {
    // A kept manifest that is not JSON: which blobs it needs is unknown, so
    // its repository is kept whole, and gc does its work everywhere else.
    let t = tempdir();
    let d = damaged("not-json", sample(), t.path());
    let rec = &d.sidecar["damages"][0];
    let blob = d.root.join(rec["paths"][0].as_str().unwrap());
    let broken = repo_dir_of(&d.root, "library/alpine");
    let before = Snapshot::take(&broken);
    let moved = sample().untagged_in("many/tags");
    assert!(blob_path(&d.root, &moved).exists());
    let r = gc(&d.root, &["--delete-untagged"]).fails(1);
    assert!(
        r.stderr.contains(&blob.display().to_string()),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("library/alpine@"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("gc did its work but kept 1 repository whole")
            && r.stderr
                .contains("library/alpine (1 tag or manifest cannot be read)"),
        "{}",
        r.stderr
    );
    // Elsewhere the untagged manifest went; the damaged repository and
    // every blob it names stayed.
    assert!(!blob_path(&d.root, &moved).exists());
    assert!(Snapshot::take(&broken) == before, "library/alpine changed");
    assert!(blob.exists());
    assert_serves_tags(&d.root, &with_sidecar(sample(), &d), &[]);
    // Once its tag and revision are deleted, gc collects it.
    regkit([
        "delete",
        d.root.to_str().unwrap(),
        "library/alpine:broken",
        "--manifest",
    ])
    .ok();
    gc(&d.root, &["-q"]).ok();
    assert!(!blob.exists());
    assert_serves_tags(&d.root, &with_sidecar(sample(), &d), &[]);
}

#[test]
fn gc_warns_about_a_revision_whose_manifest_is_gone() {
    // A revision link to a manifest whose blob is gone: nothing to keep for
    // it. Distribution's collector skips it too; both delete the same.
    let t = tempdir();
    let d = damaged("dangling-revision", sample(), t.path());
    let before = blob_set(&d.root);
    let theirs = copy_fixture(&d, t.path(), "theirs");
    assert_eq!(registry_gc(&theirs.root, false).code, 0);
    let r = gc(&d.root, &[]).ok();
    assert!(r.stderr.contains("warning:"), "{}", r.stderr);
    assert!(r.stderr.contains("is missing"), "{}", r.stderr);
    assert_eq!(deleted(&before, &d.root), deleted(&before, &theirs.root));
    // With --delete-untagged the dangling revision link goes.
    let link = d
        .root
        .join(d.sidecar["damages"][0]["paths"][0].as_str().unwrap());
    assert!(link.exists());
    gc(&d.root, &["-q", "-m"]).ok();
    assert!(!link.exists());
    regkit(["verify", d.root.to_str().unwrap()]).ok();
    assert_serves_tags(&d.root, &with_sidecar(sample(), &d), &[]);
}

#[test]
fn gc_keeps_a_repository_with_an_unreadable_tag_whole_and_collects_the_rest() {
    // One unreadable tag link (a truncated digest) used to make gc remove
    // nothing at all, as distribution's collector does. Now that
    // repository is kept whole and the orphan elsewhere goes.
    let t = tempdir();
    let d = damaged("orphan-blob", sample(), t.path());
    let rec = &d.sidecar["damages"][0];
    assert_ne!(rec["repo"], "many/tags");
    let orphan = d.root.join(rec["paths"][0].as_str().unwrap());
    let orphan_link = d.root.join(rec["paths"][1].as_str().unwrap());
    let broken = repo_dir_of(&d.root, "many/tags");
    let tag_link = broken.join("_manifests/tags/t07/current/link");
    let digest = fs::read_to_string(&tag_link).unwrap();
    fs::write(&tag_link, &digest[..30]).unwrap();
    let before = Snapshot::take(&broken);
    let moved = sample().untagged_in("many/tags");
    let v = gc(&d.root, &["--delete-untagged", "--json"])
        .fails(1)
        .json();
    assert_eq!(v["ok"], false);
    let whole = v["kept_whole"].as_array().unwrap();
    assert_eq!(whole.len(), 1, "{v:#}");
    assert_eq!(whole[0]["repository"], "many/tags");
    assert!(
        v["errors"][0]
            .as_str()
            .unwrap()
            .contains(&tag_link.display().to_string()),
        "{v:#}"
    );
    assert!(!orphan.exists() && !orphan_link.exists(), "{v:#}");
    assert!(Snapshot::take(&broken) == before, "many/tags changed");
    // Its untagged manifest, which --delete-untagged collects in a sound
    // repository, stayed with its blobs.
    assert!(blob_path(&d.root, &moved).exists());
    let text = gc(&d.root, &["-m"]).fails(1);
    assert!(
        text.stderr.contains("kept 1 repository whole") && text.stderr.contains("many/tags"),
        "{}",
        text.stderr
    );
    assert_serves_tags(&d.root, &with_sidecar(sample(), &d), &["many/tags:t07"]);
    // The garbled tag can be deleted; then gc -m collects many/tags too.
    regkit(["delete", d.root.to_str().unwrap(), "many/tags:t07"]).ok();
    gc(&d.root, &["-q", "-m"]).ok();
    assert!(!blob_path(&d.root, &moved).exists());
    regkit(["verify", d.root.to_str().unwrap()]).ok();
    assert_serves_tags(&d.root, &with_sidecar(sample(), &d), &["many/tags:t07"]);
}

#[test]
fn gc_stopped_midway_leaves_a_servable_tree() {
    // Links go before the blobs they name: when removing a blob fails, the
    // tree left is one the registry serves, and a second run finishes.
    let t = tempdir();
    let f = copy_fixture(sample(), t.path(), "s");
    regkit([
        "delete",
        f.root.to_str().unwrap(),
        "team/app:v2",
        "--manifest",
    ])
    .ok();
    let plan = gc_json(&f.root, &["-n", "-m"]);
    let blobs: Vec<&str> = plan["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["digest"].as_str().unwrap())
        .collect();
    assert!(blobs.len() >= 4, "{plan:#}");
    let stuck = blob_path(&f.root, blobs[blobs.len() / 2]);
    {
        // Its prefix folder mounted read-only: removing it fails (EROFS).
        let prefix = stuck.parent().unwrap().parent().unwrap();
        let r = regkit_readonly(prefix, ["gc", f.root.to_str().unwrap(), "-m"]).fails(1);
        assert!(
            r.stderr.contains(&stuck.display().to_string()),
            "{}",
            r.stderr
        );
        assert!(stuck.exists());
        assert!(!f.root.join("docker/registry/v2/.regkit-gc.lock").exists());
        // Every link to what was being removed is gone already.
        for m in plan["manifests"].as_array().unwrap() {
            let hex = m["digest"].as_str().unwrap().trim_start_matches("sha256:");
            let rev = f
                .root
                .join("docker/registry/v2/repositories")
                .join(m["repository"].as_str().unwrap())
                .join("_manifests/revisions/sha256")
                .join(hex);
            assert!(!rev.exists(), "{}", rev.display());
        }
        regkit(["verify", f.root.to_str().unwrap()]).ok();
        assert_serves_tags(&f.root, &f, &["team/app:v2"]);
    }
    let again = gc_json(&f.root, &["-m"]);
    assert!(again["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| stuck.ends_with(
            Path::new(b["digest"].as_str().unwrap().trim_start_matches("sha256:")).join("data")
        )));
    assert!(!stuck.exists());
    for b in blobs {
        assert!(!blob_path(&f.root, b).exists());
    }
    assert_serves_tags(&f.root, &f, &["team/app:v2"]);
}
