//! Outputs never touch ROOT, and never replace what appeared meanwhile
//! (issue 11, items 1, 2 and 4). Every case checks ROOT (and OUT) file by
//! file, with content hashes, before and after.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A copy of the sample tree at `<t>/a/b/c/d/reg` (deep enough for the
/// "four levels above ROOT" case).
fn deep_root(t: &Path) -> PathBuf {
    let parent = t.join("a/b/c/d");
    fs::create_dir_all(&parent).unwrap();
    copy_fixture(sample(), &parent, "reg").root
}

#[test]
fn an_output_that_is_contains_or_lies_in_root_is_refused_even_with_force() {
    let t = tempdir();
    let root = deep_root(t.path());
    std::os::unix::fs::symlink(&root, t.path().join("link")).unwrap();
    let before = Snapshot::take(&t.path().join("a"));
    let v2 = root.join("docker/registry/v2");
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "extract ROOT ROOT",
            vec!["extract".into(), s(&root).into(), s(&root).into()],
        ),
        (
            "extract ROOT parent",
            vec![
                "extract".into(),
                s(&root).into(),
                s(root.parent().unwrap()).into(),
            ],
        ),
        (
            "extract ROOT v2",
            vec!["extract".into(), s(&root).into(), s(&v2).into()],
        ),
        (
            "extract ROOT inside",
            vec!["extract".into(), s(&root).into(), s(&v2.join("new")).into()],
        ),
        (
            "extract through a symlink",
            vec![
                "extract".into(),
                s(&root).into(),
                s(&t.path().join("link")).into(),
            ],
        ),
        (
            "extract ROOT ..",
            vec![
                "extract".into(),
                s(&root).into(),
                format!("{}/docker/..", s(&root)),
            ],
        ),
        (
            "export ROOT ROOT",
            vec![
                "export".into(),
                s(&root).into(),
                s(&root).into(),
                "--format".into(),
                "oci".into(),
            ],
        ),
        (
            "export archive inside",
            vec![
                "export".into(),
                s(&root).into(),
                s(&v2.join("x.tar")).into(),
                "--format".into(),
                "oci-archive".into(),
            ],
        ),
        (
            "select four levels up",
            vec![
                "select".into(),
                s(&root).into(),
                s(&t.path().join("a")).into(),
            ],
        ),
        (
            "select ROOT ROOT",
            vec!["select".into(), s(&root).into(), s(&root).into()],
        ),
        (
            "pack inside ROOT",
            vec![
                "pack".into(),
                s(&root).into(),
                s(&root.join("b.tar")).into(),
            ],
        ),
        (
            "pack over ROOT",
            vec!["pack".into(), s(&root).into(), s(&root).into()],
        ),
    ];
    for (name, args) in &cases {
        let mut args = args.clone();
        args.push("--force".into());
        let r = regkit(&args).fails(1);
        assert!(
            r.stderr.contains("refusing, whatever --force says"),
            "{name}: {}",
            r.stderr
        );
        assert!(
            Snapshot::take(&t.path().join("a")) == before,
            "{name}: the tree changed"
        );
    }
    // A bind mount of ROOT is ROOT too (compared by device and inode).
    let mnt = t.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let r = run_cmd(
        "unshare",
        &[
            "-m",
            "sh",
            "-c",
            &format!(
                "mount --bind {} {} && exec {} extract {} {}/docker/registry/v2 --force",
                s(&root),
                s(&mnt),
                regkit_path(),
                s(&root),
                s(&mnt)
            ),
        ],
    );
    assert_eq!(r.code, 1, "bind mount: {}", r.stderr);
    assert!(r.stderr.contains("lies inside"), "{}", r.stderr);
    assert!(
        Snapshot::take(&t.path().join("a")) == before,
        "bind mount: the tree changed"
    );
    assert_eq!(cases.len(), 12);
}

#[test]
fn sources_inside_their_root_are_refused() {
    let t = tempdir();
    let root = copy_fixture(sample(), t.path(), "reg").root;
    // A bundle and a dir: folder of the tree's own images, put inside it.
    let bundle = root.join("b.tar");
    regkit(["-q", "pack", s(&sample().root), s(&bundle), "team/app:v1"]).ok();
    let ext = root.join("ext");
    regkit(["-q", "extract", s(&sample().root), s(&ext), "team/app:v1"]).ok();
    let before = Snapshot::take(&root);
    let r = regkit(["unpack", s(&bundle), s(&root)]).fails(1);
    assert!(r.stderr.contains("the bundle lies inside"), "{}", r.stderr);
    let r = regkit(["import", s(&ext), s(&root)]).fails(1);
    assert!(r.stderr.contains("the source lies inside"), "{}", r.stderr);
    let r = regkit(["import", s(t.path()), s(&root)]).fails(1);
    assert!(r.stderr.contains("the source contains"), "{}", r.stderr);
    assert!(Snapshot::take(&root) == before, "ROOT changed");
}

/// Starts a slowed-down regkit and waits until its staging sibling (a
/// hidden `.NAME.regkit-tmp-<pid>` beside `out`) exists.
fn start_slow(args: &[&str], out: &Path) -> Child {
    let child = Command::new(regkit_path())
        .args(args)
        .env("REGKIT_TEST_STEP_DELAY_MS", "10")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let name = format!(
        ".{}.regkit-tmp-{}",
        out.file_name().unwrap().to_str().unwrap(),
        child.id()
    );
    let staging = out.with_file_name(name);
    let deadline = Instant::now() + Duration::from_secs(30);
    while staging.symlink_metadata().is_err() {
        assert!(Instant::now() < deadline, "{args:?}: never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

fn finish(child: Child) -> Run {
    let o = child.wait_with_output().unwrap();
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        raw_stdout: Vec::new(),
    }
}

#[test]
fn an_output_that_appears_during_the_run_is_left_alone() {
    let f = sample();
    let mut checked = 0;
    for (cmd, extra) in [
        ("extract", vec!["team/app:v1"]),
        ("select", vec!["team/app:v1"]),
        ("export", vec!["team/app:v1", "--format", "oci"]),
        ("export", vec!["team/app:v1", "--format", "oci-archive"]),
        ("pack", vec!["team/app:v1"]),
    ] {
        let t = tempdir();
        let out = t.path().join("out");
        let mut args = vec![cmd, s(&f.root), s(&out)];
        args.extend(&extra);
        let child = start_slow(&args, &out);
        // Someone else's output appears meanwhile.
        let theirs = if cmd == "pack" || extra.contains(&"oci-archive") {
            fs::write(&out, b"theirs").unwrap();
            Snapshot::take(&out)
        } else {
            fs::create_dir(&out).unwrap();
            fs::write(out.join("theirs"), b"mine, not regkit's").unwrap();
            Snapshot::take(&out)
        };
        let r = finish(child);
        assert_eq!(r.code, 1, "{cmd} {extra:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("appeared while regkit was writing"),
            "{cmd}: {}",
            r.stderr
        );
        assert!(
            Snapshot::take(&out) == theirs,
            "{cmd} {extra:?}: theirs was changed"
        );
        let left: Vec<_> = fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 1, "{cmd}: left behind {left:?}");
        checked += 1;
    }
    assert_eq!(checked, 5);
}

#[test]
fn two_extracts_into_one_output_one_wins_whole_the_other_fails() {
    let f = sample();
    let t = tempdir();
    let out = t.path().join("out");
    let a = start_slow(&["extract", s(&f.root), s(&out), "team/app:v1"], &out);
    let b = start_slow(
        &["extract", s(&f.root), s(&out), "library/alpine:3.19"],
        &out,
    );
    let (ra, rb) = (finish(a), finish(b));
    let mut codes = [ra.code, rb.code];
    codes.sort();
    assert_eq!(codes, [0, 1], "a: {}\nb: {}", ra.stderr, rb.stderr);
    let loser = if ra.code == 1 { &ra } else { &rb };
    assert!(
        loser.stderr.contains("appeared while regkit was writing"),
        "{}",
        loser.stderr
    );
    // OUT is exactly the winner's, complete: skopeo copies it.
    let (won, lost) = if ra.code == 0 {
        ("team/app:v1", "library/alpine:3.19")
    } else {
        ("library/alpine:3.19", "team/app:v1")
    };
    assert!(!out.join(lost).exists());
    let digest = skopeo_copy_all(&format!("dir:{}", out.join(won).display())).unwrap();
    assert_eq!(digest, f.digest(won));
    assert_eq!(
        fs::read_dir(t.path()).unwrap().count(),
        1,
        "a staging folder was left"
    );
}

#[test]
fn pack_refuses_an_existing_description_without_force() {
    let f = sample();
    let t = tempdir();
    let bundle = t.path().join("b.tar");
    let json = t.path().join("b.tar.json");
    fs::write(&json, b"{\"theirs\": true}").unwrap();
    let r = regkit(["pack", s(&f.root), s(&bundle), "team/app:v1"]).fails(1);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);
    assert!(r.stderr.contains("b.tar.json"), "{}", r.stderr);
    assert_eq!(fs::read(&json).unwrap(), b"{\"theirs\": true}");
    assert!(!bundle.exists());
    regkit([
        "-q",
        "pack",
        s(&f.root),
        s(&bundle),
        "team/app:v1",
        "--force",
    ])
    .ok();
    let m: serde_json::Value = serde_json::from_slice(&fs::read(&json).unwrap()).unwrap();
    assert_eq!(m["images"][0]["name"], "team/app:v1");
    assert_eq!(
        format!("sha256:{}", m["sha256"].as_str().unwrap()),
        sha256_file(&bundle)
    );
}
