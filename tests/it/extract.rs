//! `regkit extract` into `dir:` folders, read back by the real skopeo.

use std::fs;

use crate::common::*;

#[test]
fn extract_all_gives_folders_skopeo_copies_with_digests_unchanged() {
    let f = sample();
    let t = tempdir();
    let out = t.path().join("out");
    let before = Snapshot::take(&f.root);
    regkit([
        "-q",
        "extract",
        f.root.to_str().unwrap(),
        out.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(Snapshot::take(&f.root), before, "ROOT changed");
    let mut copied = 0;
    for (r, digest, copyable) in f.images() {
        if r.contains('@') {
            continue;
        }
        let dir = out.join(&r);
        assert_eq!(
            fs::read(dir.join("version")).unwrap(),
            b"Directory Transport Version: 1.1\n"
        );
        assert_eq!(sha256_file(&dir.join("manifest.json")), digest, "{r}");
        assert!(
            same_inode(&dir.join("manifest.json"), &blob_path(&f.root, &digest)),
            "{r}: not hardlinked"
        );
        if copyable {
            let got = skopeo_copy_all(&format!("dir:{}", dir.display()))
                .unwrap_or_else(|e| panic!("{r}: {e}"));
            assert_eq!(got, digest, "{r}");
            copied += 1;
        }
    }
    // Every tag of the sample but the nested index, which skopeo cannot copy.
    assert!(copied >= 39, "copied {copied} images");
    // Index children are named <hex>.manifest.json, with all their blobs.
    let list = f.image("multi/docker-list:1");
    for c in list["children"].as_array().unwrap() {
        let hex = c["digest"].as_str().unwrap().trim_start_matches("sha256:");
        let dir = out.join("multi/docker-list:1");
        assert!(dir.join(format!("{hex}.manifest.json")).is_file());
        for l in c["layers"].as_array().unwrap() {
            assert!(dir
                .join(l["digest"].as_str().unwrap().trim_start_matches("sha256:"))
                .is_file());
        }
    }
}

#[test]
fn extract_then_skopeo_sync_pushes_namespaces_to_a_real_registry() {
    // The Harbor 2.x migration path: extract, then `skopeo sync --src dir --dest docker` per namespace.
    let f = sample();
    let t = tempdir();
    let out = t.path().join("out");
    regkit([
        "-q",
        "extract",
        f.root.to_str().unwrap(),
        out.to_str().unwrap(),
        "multi/docker-list:1",
        "multi/oci-index:1",
        "team/app",
    ])
    .ok();
    let dest_root = t.path().join("dest");
    fs::create_dir(&dest_root).unwrap();
    let reg = Registry::start(&dest_root);
    for ns in ["multi", "team"] {
        skopeo(&[
            "sync",
            "--all",
            "--src",
            "dir",
            "--dest",
            "docker",
            "--dest-tls-verify=false",
            out.join(ns).to_str().unwrap(),
            &format!("{}/{ns}", reg.host()),
        ])
        .ok();
    }
    for r in [
        "multi/docker-list:1",
        "multi/oci-index:1",
        "team/app:v1",
        "team/app:v2",
    ] {
        let copied = skopeo_copy_all(&format!("docker://{}/{r}", reg.host())).unwrap();
        assert_eq!(copied, f.digest(r), "{r}");
    }
}

#[test]
fn extract_platform_keeps_only_matching_children() {
    let f = sample();
    let t = tempdir();
    let out = t.path().join("out");
    regkit([
        "-q",
        "extract",
        f.root.to_str().unwrap(),
        out.to_str().unwrap(),
        "multi/docker-list:1",
        "--platform",
        "linux/arm64",
    ])
    .ok();
    let dir = out.join("multi/docker-list:1");
    let children = f.image("multi/docker-list:1")["children"]
        .as_array()
        .unwrap()
        .clone();
    for c in &children {
        let hex = c["digest"].as_str().unwrap().trim_start_matches("sha256:");
        let present = dir.join(format!("{hex}.manifest.json")).exists();
        assert_eq!(
            present,
            c["platform"] == "linux/arm64/v8",
            "{}",
            c["platform"]
        );
    }
    // The top manifest keeps its exact bytes (the whole list).
    assert_eq!(
        sha256_file(&dir.join("manifest.json")),
        f.digest("multi/docker-list:1")
    );
    // skopeo reads the arm64 image out of it.
    let t2 = tempdir();
    skopeo(&[
        "--override-arch",
        "arm64",
        "copy",
        &format!("dir:{}", dir.display()),
        &format!("dir:{}", t2.path().join("x").display()),
    ])
    .ok();
}

#[test]
fn extract_reads_seed_lists_and_folders_of_lists() {
    let f = sample();
    let t = tempdir();
    let lists = t.path().join("lists");
    fs::create_dir(&lists).unwrap();
    write_list(
        &lists,
        "a.list",
        &[
            "# base images",
            "docker.io/library/alpine:3.19",
            "",
            "harbor.local:5000/team/app:v1  # app",
        ],
    );
    write_list(&lists, "b.list", &["a/b/c/deep:1.0"]);
    write_list(&lists, "notes.txt", &["team/app:v2"]);
    let single = write_list(t.path(), "one.list", &["multi/oci-index:1"]);
    let out = t.path().join("out");
    let r = regkit([
        "extract",
        f.root.to_str().unwrap(),
        out.to_str().unwrap(),
        "--list",
        lists.to_str().unwrap(),
        "--list",
        single.to_str().unwrap(),
        "--json",
    ])
    .ok();
    let mut names: Vec<String> = r.json()["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().into())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "a/b/c/deep:1.0",
            "library/alpine:3.19",
            "multi/oci-index:1",
            "team/app:v1"
        ]
    );
    assert!(!out.join("team/app:v2").exists());
}

#[test]
fn extract_refuses_an_existing_output_unless_forced() {
    let f = sample();
    let t = tempdir();
    let out = t.path().join("out");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("keep"), b"mine").unwrap();
    let r = regkit([
        "extract",
        f.root.to_str().unwrap(),
        out.to_str().unwrap(),
        "team/app:v1",
    ])
    .fails(1);
    assert!(
        r.stderr.contains("already exists") && r.stderr.contains(out.to_str().unwrap()),
        "{}",
        r.stderr
    );
    assert_eq!(fs::read(out.join("keep")).unwrap(), b"mine");
    regkit([
        "-q",
        "extract",
        f.root.to_str().unwrap(),
        out.to_str().unwrap(),
        "team/app:v1",
        "--force",
    ])
    .ok();
    assert!(!out.join("keep").exists());
    assert!(out.join("team/app:v1/manifest.json").is_file());
    // Nothing is left beside OUT.
    let leftovers: Vec<_> = fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, [std::ffi::OsString::from("out")]);
}

#[test]
fn extract_dry_run_writes_nothing_and_lists_the_plan() {
    let f = sample();
    let t = tempdir();
    let out = t.path().join("out");
    let r = regkit([
        "extract",
        f.root.to_str().unwrap(),
        out.to_str().unwrap(),
        "team/app:v1",
        "--dry-run",
        "--json",
    ])
    .ok();
    assert!(!out.exists());
    let j = r.json();
    assert_eq!(j["dry_run"], true);
    let files: Vec<&str> = j["planned_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert!(files.contains(&"team/app:v1/manifest.json"), "{files:?}");
    assert_eq!(
        files.len(),
        2 + f.image("team/app:v1")["layers"].as_array().unwrap().len() + 1
    );
}

#[test]
fn extract_on_a_read_only_root_copies_across_mounts_with_digests_checked() {
    // In a private mount namespace ROOT is a read-only bind mount: any write
    // to it fails, and hardlinks across mounts fail with EXDEV, so regkit
    // falls back to reflink, then to a digest-checked copy, and says so.
    let f = sample();
    let t = tempdir();
    let out = t.path().join("out");
    let before = Snapshot::take(&f.root);
    let r = regkit_readonly(
        &f.root,
        [
            "extract",
            f.root.to_str().unwrap(),
            out.to_str().unwrap(),
            "multi/oci-index:1",
            "--json",
        ],
    )
    .ok();
    assert_eq!(Snapshot::take(&f.root), before);
    let rep = &r.json()["report"];
    assert_eq!(rep["hardlinks"], 0, "{}", r.stdout);
    assert!(rep["copies"].as_u64().unwrap() + rep["reflinks"].as_u64().unwrap() > 0);
    assert!(r.stderr.contains("different filesystems"), "{}", r.stderr);
    let copied =
        skopeo_copy_all(&format!("dir:{}", out.join("multi/oci-index:1").display())).unwrap();
    assert_eq!(copied, f.digest("multi/oci-index:1"));
}

#[test]
fn extract_to_another_filesystem_copies_and_says_so() {
    let f = sample();
    let shm = std::path::Path::new("/dev/shm");
    let t = tempfile::Builder::new()
        .prefix("regkit-it-")
        .tempdir_in(shm)
        .unwrap();
    let out = t.path().join("out");
    let r = regkit([
        "extract",
        f.root.to_str().unwrap(),
        out.to_str().unwrap(),
        "team/app:v2",
        "--json",
    ])
    .ok();
    assert!(r.json()["report"]["copies"].as_u64().unwrap() > 0);
    assert!(r.stderr.contains("different filesystems"), "{}", r.stderr);
    assert_eq!(
        skopeo_copy_all(&format!("dir:{}", out.join("team/app:v2").display())).unwrap(),
        f.digest("team/app:v2")
    );
}

#[test]
fn ctrl_c_half_way_leaves_no_output_and_no_staging_folder() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let f = sample();
    for cmd in ["extract", "select", "pack"] {
        let t = tempdir();
        let out = t.path().join("out");
        let mut child = Command::new(regkit_path())
            .args(["-q", cmd, f.root.to_str().unwrap(), out.to_str().unwrap()])
            .env("REGKIT_TEST_STEP_DELAY_MS", "20")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until the work is under way (its staging sibling exists).
        let deadline = Instant::now() + Duration::from_secs(20);
        while fs::read_dir(t.path()).unwrap().count() == 0 {
            assert!(Instant::now() < deadline, "{cmd}: never started");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(100));
        run_cmd("kill", &["-INT", &child.id().to_string()]);
        let status = child.wait().unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(130), "{cmd}: {stderr}");
        assert!(stderr.contains("interrupted"), "{cmd}: {stderr}");
        let left: Vec<_> = fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{cmd}: left behind {left:?}");
    }
}

#[test]
fn extract_handles_schema1_foreign_layers_and_odd_names() {
    let f = edge();
    let t = tempdir();
    let out = t.path().join("out");
    regkit([
        "-q",
        "extract",
        f.root.to_str().unwrap(),
        out.to_str().unwrap(),
    ])
    .ok();
    let mut copied = 0;
    for (r, digest, copyable) in f.images() {
        let dir = out.join(&r);
        assert_eq!(sha256_file(&dir.join("manifest.json")), digest, "{r}");
        if copyable {
            assert_eq!(
                skopeo_copy_all(&format!("dir:{}", dir.display())).unwrap(),
                digest,
                "{r}"
            );
            copied += 1;
        }
    }
    // Every tag of the edge tree but the foreign layer's.
    assert!(copied >= 6, "copied {copied} images");
    // Schema1 blobs come from fsLayers, never from hex found in v1Compatibility.
    let legacy = f.image("legacy/old:1.0");
    let mut want: Vec<String> = legacy["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            l["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:")
                .to_string()
        })
        .collect();
    want.sort();
    want.dedup();
    let mut have: Vec<String> = files_under(&out.join("legacy/old:1.0"))
        .into_iter()
        .filter(|n| n.len() == 64)
        .collect();
    have.sort();
    assert_eq!(have, want);
}
