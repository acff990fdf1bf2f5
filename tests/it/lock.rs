//! gc and the commands that write a tree never run at once: writers share
//! the tree's lock, gc holds it alone, whoever finds it taken refuses at
//! once and says who holds it, and a killed holder leaves nothing stale.

use std::fs;
use std::path::Path;

use crate::common::*;

fn note(root: &Path) -> std::path::PathBuf {
    root.join("docker/registry/v2/.regkit-gc.lock")
}

fn revision_dir(root: &Path, repo: &str, digest: &str) -> std::path::PathBuf {
    root.join("docker/registry/v2/repositories")
        .join(repo)
        .join("_manifests/revisions/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

#[test]
fn gc_refuses_while_an_unpack_is_under_way_and_the_unpack_loses_nothing() {
    // The issue: a gc during an unpack deleted every blob the unpack had
    // written before their links existed.
    let t = tempdir();
    let images = ["multi/docker-list:1", "team/app:v2"];
    let bundle = t.path().join("b.tar");
    let mut args = vec!["-q", "pack", sample().root.to_str().unwrap()];
    args.push(bundle.to_str().unwrap());
    args.extend(images);
    regkit(args).ok();
    let site = copy_fixture(edge(), t.path(), "site");
    let before = blob_set(&site.root);
    let root = site.root.to_str().unwrap();
    // Slowed enough that the gc below runs while the unpack is under way,
    // even on a loaded machine.
    let unpack = spawn_slowed(&["-q", "unpack", bundle.to_str().unwrap(), root], 100);
    wait_until("the unpack wrote a blob", || {
        blob_set(&site.root).len() > before.len()
    });
    let r = regkit(["gc", root, "--delete-untagged"]).fails(1);
    assert!(
        r.stderr.contains("another regkit is writing to this tree"),
        "{}",
        r.stderr
    );
    // A dry run reads only, and takes no lock.
    regkit(["gc", root, "-n"]).ok();
    finish(unpack).ok();
    regkit(["verify", root]).ok();
    assert_serves_tags(&site.root, edge(), &[]);
    let reg = Registry::start(&site.root);
    for r in images {
        let got = skopeo_copy_all(&format!("docker://{}/{r}", reg.host()))
            .unwrap_or_else(|e| panic!("{r}: {e}"));
        assert_eq!(got, sample().digest(r), "{r}");
    }
}

#[test]
fn writers_refuse_at_once_while_gc_collects() {
    let t = tempdir();
    let site = copy_fixture(sample(), t.path(), "site");
    let root = site.root.to_str().unwrap();
    regkit(["delete", root, "team/app:v2", "--manifest"]).ok();
    let edge_root = edge().root.to_str().unwrap();
    let image = "tools/current:latest";
    let bundle = t.path().join("b.tar");
    regkit(["-q", "pack", edge_root, bundle.to_str().unwrap(), image]).ok();
    let dirs = t.path().join("dirs");
    regkit(["-q", "extract", edge_root, dirs.to_str().unwrap(), image]).ok();
    let wanted = edge().digest(image);

    // Seconds per step: the writers below all run while it collects.
    let gc = spawn_slowed(&["gc", root, "--delete-untagged"], 1500);
    let pid = gc.id();
    wait_until("gc holds the lock", || note(&site.root).exists());
    let writers: [(&str, Vec<&str>); 4] = [
        ("unpack", vec!["unpack", bundle.to_str().unwrap(), root]),
        ("select", vec!["select", edge_root, root, image]),
        ("import", vec!["import", dirs.to_str().unwrap(), root]),
        ("delete", vec!["delete", root, "team/app:v1"]),
    ];
    let mut refused = 0;
    for (name, args) in &writers {
        let r = regkit(args).fails(1);
        assert!(
            r.stderr.contains(&format!(
                "a regkit gc is collecting this tree (pid {pid} on host "
            )),
            "{name}: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains(&note(&site.root).display().to_string()),
            "{name}: {}",
            r.stderr
        );
        refused += 1;
    }
    assert_eq!(refused, writers.len());
    // A second gc is refused too.
    let r = regkit(["gc", root]).fails(1);
    assert!(r.stderr.contains("gc is collecting"), "{}", r.stderr);
    // Nothing of the refused writers is in the tree.
    assert!(!blob_path(&site.root, &wanted).exists());
    assert!(site
        .root
        .join("docker/registry/v2/repositories/team/app/_manifests/tags/v1")
        .is_dir());
    finish(gc).ok();
    assert!(!note(&site.root).exists(), "gc left its note");
    regkit(["verify", root]).ok();
    // Once gc is done, the writers run.
    regkit(["-q", "unpack", bundle.to_str().unwrap(), root]).ok();
    assert!(blob_path(&site.root, &wanted).exists());
    assert_serves_tags(&site.root, sample(), &["team/app:v2"]);
}

#[test]
fn a_killed_gc_leaves_a_tree_the_next_gc_collects() {
    let t = tempdir();
    let site = copy_fixture(sample(), t.path(), "site");
    let root = site.root.to_str().unwrap();
    let v2 = sample().digest("team/app:v2");
    regkit(["delete", root, "team/app:v2", "--manifest"]).ok();
    let garbage = gc_json_dry(&site.root);
    assert!(garbage >= 3, "{garbage}");
    let mut gc = spawn_slowed(&["gc", root, "--delete-untagged"], 1500);
    wait_until("gc holds the lock", || note(&site.root).exists());
    // Killed in the middle of its sweep, after it removed something.
    let many = sample().untagged_in("many/tags");
    wait_until("gc removed a revision", || {
        !revision_dir(&site.root, "many/tags", &many).exists()
    });
    gc.kill().unwrap();
    let status = gc.wait().unwrap();
    assert_eq!(status.code(), None, "gc finished before it was killed");
    assert!(note(&site.root).exists(), "expected the killed gc's note");
    regkit(["verify", root]).ok();
    // The next gc runs without anything removed by hand, and finishes.
    let r = regkit(["gc", root, "--delete-untagged", "--json"]).ok();
    assert!(r.json()["freed_blobs"].as_u64().unwrap() >= 1);
    assert!(!note(&site.root).exists());
    assert_eq!(gc_json_dry(&site.root), 0);
    assert!(!blob_path(&site.root, &v2).exists());
    regkit(["verify", root]).ok();
    assert_serves_tags(&site.root, sample(), &["team/app:v2"]);
}

/// How many blobs `gc --delete-untagged --dry-run` would remove.
fn gc_json_dry(root: &Path) -> u64 {
    let r = regkit([
        "gc",
        root.to_str().unwrap(),
        "--delete-untagged",
        "-n",
        "--json",
    ])
    .ok();
    r.json()["freed_blobs"].as_u64().unwrap()
}

#[test]
fn gc_leaves_blobs_put_in_place_while_it_runs() {
    // A writer that takes no lock (a running registry, another tool) puts a
    // blob in place while gc runs: its hardlink or rename changes the
    // blob's status time, and gc leaves it.
    let t = tempdir();
    let d = damaged("deleted-tag", sample(), t.path());
    let root = d.root.to_str().unwrap();
    let plan = regkit(["gc", root, "-n", "--json"]).ok().json();
    let doomed: Vec<String> = plan["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["digest"].as_str().unwrap().to_string())
        .collect();
    assert!(doomed.len() >= 3, "{plan:#}");
    let relinked = &doomed[0];
    // Seconds per step: the blob is relinked long before gc reaches it.
    let gc = spawn_slowed(&["gc", root, "--json"], 3000);
    wait_until("gc holds the lock", || note(&d.root).exists());
    // A clock tick later than gc's start (file times are coarse).
    std::thread::sleep(std::time::Duration::from_millis(50));
    fs::hard_link(
        blob_path(&d.root, relinked),
        t.path().join("relinked-while-gc-runs"),
    )
    .unwrap();
    let r = finish(gc).ok();
    let v = r.json();
    assert!(blob_path(&d.root, relinked).exists(), "{v:#}");
    let removed: Vec<&str> = v["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["digest"].as_str().unwrap())
        .collect();
    assert!(!removed.contains(&relinked.as_str()), "{v:#}");
    assert_eq!(removed.len(), doomed.len() - 1, "{v:#}");
    for b in &doomed[1..] {
        assert!(!blob_path(&d.root, b).exists(), "{b}");
    }
    regkit(["verify", root]).ok();
    // Once nobody writes, the next gc collects it.
    regkit(["gc", root, "-q"]).ok();
    assert!(!blob_path(&d.root, relinked).exists());
}
