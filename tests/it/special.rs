//! Special files where the tree holds files: a FIFO, a folder or a symbolic
//! link in place of a blob or a link. Nothing hangs; anything but a regular
//! file is named with its path (and image); a blob reached through a
//! symbolic link is copied as its content, never linked as the link.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use serde_json::Value;

use crate::common::*;

/// Runs regkit, killed after a minute: a hang fails the test instead of
/// hanging it.
fn bounded(args: &[&str]) -> Run {
    let mut full = vec!["-s", "KILL", "60", regkit_path()];
    full.extend_from_slice(args);
    let r = run_cmd("timeout", &full);
    // Killed: timeout's own status is a signal (-1) or 128 + 9.
    assert!(r.code >= 0 && r.code != 137, "regkit {args:?} hung");
    r
}

fn mkfifo(p: &Path) {
    fs::remove_file(p).unwrap();
    run_cmd("mkfifo", &[p.to_str().unwrap()]).ok();
}

fn layer(f: &Fixture, image: &str, i: usize) -> String {
    f.image(image)["layers"][i]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

struct Damaged {
    tree: Fixture,
    /// (path, image) of each file that is not a regular file.
    broken: Vec<(std::path::PathBuf, &'static str)>,
    /// The image whose layer is a relative symbolic link to its content.
    linked: &'static str,
}

fn special_tree(dir: &Path) -> Damaged {
    let s = sample();
    let tree = copy_fixture(s, dir, "special");
    let root = tree.root.clone();
    // A FIFO in place of a layer.
    let fifo_blob = blob_path(&root, &layer(s, "a/b/c/deep:1.0", 0));
    mkfifo(&fifo_blob);
    // A FIFO in place of a tag link.
    let fifo_link =
        root.join("docker/registry/v2/repositories/many/tags/_manifests/tags/t07/current/link");
    mkfifo(&fifo_link);
    // A folder in place of a child's layer.
    let child = &s.image("multi/oci-index:1")["children"][0]["layers"][0]["digest"];
    let dir_blob = blob_path(&root, child.as_str().unwrap());
    fs::remove_file(&dir_blob).unwrap();
    fs::create_dir(&dir_blob).unwrap();
    // A relative symbolic link to the content, beside it.
    let linked = "team/app:v2";
    let big = blob_path(&root, &layer(s, linked, 1));
    let real = big.with_file_name("data.real");
    fs::rename(&big, &real).unwrap();
    symlink("data.real", &big).unwrap();
    Damaged {
        tree,
        broken: vec![
            (fifo_blob, "a/b/c/deep:1.0"),
            (fifo_link, "many/tags:t07"),
            (dir_blob, "multi/oci-index:1"),
        ],
        linked,
    }
}

#[test]
fn special_files_in_the_tree_are_named_and_nothing_hangs() {
    let t = tempdir();
    let d = special_tree(t.path());
    let root = d.tree.root.to_str().unwrap();

    // ls lists every tag, the broken ones as broken.
    let r = bounded(&["ls", root, "--json"]);
    let entries: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"));
    let mut checked = 0;
    for e in entries.as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        let broken = d.broken.iter().any(|(_, i)| *i == name);
        assert_eq!(e["error"].is_string(), broken, "{name}: {e}");
        checked += 1;
    }
    assert_eq!(checked, sample().images().len());
    for (path, _) in &d.broken {
        assert!(
            r.stderr.contains(&path.display().to_string()),
            "{}",
            r.stderr
        );
    }

    // verify names each path and its image; the linked blob is fine (the
    // registry reads through the link).
    let r = bounded(&["verify", root, "--json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let v = r.json();
    let findings = v["findings"].as_array().unwrap();
    for (path, image) in &d.broken {
        let f = findings
            .iter()
            .find(|f| f["path"] == path.to_str().unwrap())
            .unwrap_or_else(|| panic!("no finding at {}: {v:#}", path.display()));
        assert!(
            f["images"].as_array().unwrap().iter().any(|i| i == image),
            "{f:#}"
        );
        assert!(
            f["message"]
                .as_str()
                .unwrap()
                .contains("not a regular file"),
            "{f:#}"
        );
    }
    assert_eq!(findings.len(), d.broken.len(), "{v:#}");

    // extract and select refuse the broken images, naming the blob (not a
    // staging path) and the image, and write nothing.
    for (path, image) in d.broken.iter().filter(|(p, _)| p.ends_with("data")) {
        for cmd in ["extract", "select"] {
            let out = t.path().join(format!("out-{cmd}"));
            let r = bounded(&[cmd, root, out.to_str().unwrap(), image]);
            assert_eq!(r.code, 1, "{cmd} {image}: {}", r.stderr);
            assert!(
                r.stderr.contains(&format!("--> {}", path.display())),
                "{cmd} {image}: {}",
                r.stderr
            );
            assert!(
                r.stderr.contains(&format!("= image: {image}")),
                "{}",
                r.stderr
            );
            assert!(r.stderr.contains("not a regular file"), "{}", r.stderr);
            assert!(!out.exists(), "{cmd} {image}: output written");
        }
    }

    // gc finishes, keeping the repository whose tag it cannot read whole.
    let before = blob_set(&d.tree.root);
    let r = bounded(&["gc", root, "--delete-untagged"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("kept 1 repository whole"), "{}", r.stderr);
    assert!(
        r.stderr.contains(&d.broken[1].0.display().to_string()),
        "{}",
        r.stderr
    );
    assert!(before.is_superset(&blob_set(&d.tree.root)));
    for (path, _) in &d.broken {
        assert!(
            path.symlink_metadata().is_ok(),
            "{} removed",
            path.display()
        );
    }
}

#[test]
fn a_blob_reached_through_a_symbolic_link_is_copied_as_its_content() {
    let t = tempdir();
    let d = special_tree(t.path());
    let root = d.tree.root.to_str().unwrap();
    let digest = sample().digest(d.linked);
    let big = layer(sample(), d.linked, 1);
    let out = t.path().join("out");
    bounded(&["-q", "extract", root, out.to_str().unwrap(), d.linked]).ok();
    let copied = out.join(d.linked).join(big.trim_start_matches("sha256:"));
    let meta = copied.symlink_metadata().unwrap();
    assert!(meta.is_file(), "{} is not a regular file", copied.display());
    assert_eq!(sha256_file(&copied), big);
    assert_eq!(
        skopeo_copy_all(&format!("dir:{}", out.join(d.linked).display())).unwrap(),
        digest
    );
    let sel = t.path().join("sel");
    bounded(&["-q", "select", root, sel.to_str().unwrap(), d.linked]).ok();
    let there = blob_path(&sel, &big);
    assert!(there.symlink_metadata().unwrap().is_file());
    let reg = Registry::start(&sel);
    assert_eq!(
        skopeo_copy_all(&format!("docker://{}/{}", reg.host(), d.linked)).unwrap(),
        digest
    );
}
