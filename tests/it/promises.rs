//! The README's promises, each driven through the binary: reading commands
//! never write ROOT (mounted read only, and every file compared before and
//! after), and a full disk leaves no output behind (issue 11).

use std::fs;
use std::path::Path;

use crate::common::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn reading_commands_leave_root_as_it_was_even_mounted_read_only() {
    let t = tempdir();
    let root = copy_fixture(sample(), t.path(), "root").root;
    let out = t.path().join("out");
    fs::create_dir(&out).unwrap();
    let o = |name: &str| out.join(name).display().to_string();
    let r = s(&root).to_string();
    // An OCI layout to import from, and an empty tree to unpack into, both
    // outside ROOT: the dry runs below must not write ROOT either.
    regkit([
        "-q",
        "export",
        &r,
        &o("oci-src"),
        "library/alpine:3.19",
        "--format",
        "oci",
    ])
    .ok();
    regkit(["-q", "pack", &r, &o("b.tar"), "library/alpine:3.19"]).ok();
    let before = Snapshot::take(&root);
    let runs: Vec<Vec<String>> = vec![
        vec!["ls".into(), r.clone()],
        vec!["ls".into(), r.clone(), "--json".into()],
        vec!["inspect".into(), r.clone(), "library/alpine:3.19".into()],
        vec!["extract".into(), r.clone(), o("dir")],
        vec!["select".into(), r.clone(), o("tree")],
        vec!["pack".into(), r.clone(), o("all.tar.gz")],
        vec![
            "export".into(),
            r.clone(),
            o("oci"),
            "--format".into(),
            "oci".into(),
        ],
        vec!["verify".into(), r.clone(), "--all-blobs".into()],
        vec!["diff".into(), r.clone(), o("b.tar")],
        vec!["du".into(), r.clone(), "--html".into(), o("du.html")],
        vec![
            "gc".into(),
            r.clone(),
            "--dry-run".into(),
            "--delete-untagged".into(),
        ],
        vec![
            "delete".into(),
            r.clone(),
            "team/app:v1".into(),
            "--manifest".into(),
            "--dry-run".into(),
        ],
        vec!["unpack".into(), o("b.tar"), r.clone(), "--dry-run".into()],
        vec![
            "import".into(),
            o("oci-src"),
            r.clone(),
            "--repo".into(),
            "x/y".into(),
            "--dry-run".into(),
        ],
    ];
    let mut checked = 0;
    for args in &runs {
        let run = regkit_readonly(
            &root,
            std::iter::once("-q").chain(args.iter().map(|a| a.as_str())),
        );
        assert_eq!(
            run.code, 0,
            "regkit {args:?} on a read-only ROOT: {}",
            run.stderr
        );
        assert_eq!(
            Snapshot::take(&root),
            before,
            "regkit {args:?} changed ROOT"
        );
        checked += 1;
    }
    // And each output really exists where it was asked for, outside ROOT.
    for name in ["dir", "tree", "all.tar.gz", "oci", "du.html"] {
        assert!(out.join(name).exists(), "{name} was not written");
    }
    assert_eq!(checked, runs.len());
    assert!(checked >= 14, "only {checked} commands checked");
}

/// Every command that writes a new output, onto a 1 MiB tmpfs that cannot
/// hold it: exit 1 naming the full disk, nothing left at OUT, no staging
/// sibling, and ROOT as it was.
#[test]
fn a_full_disk_leaves_no_output_and_no_temporary_behind() {
    let t = tempdir();
    let big = t.path().join("big");
    generate_bench(&big, 150);
    let oci = t.path().join("oci-src");
    regkit(["-q", "export", s(&big), s(&oci), "--format", "oci"]).ok();
    let before = Snapshot::take(&big);
    let mnt = t.path().join("small");
    fs::create_dir(&mnt).unwrap();
    let bin = regkit_path();
    let (big_s, oci_s, m) = (s(&big), s(&oci), s(&mnt));
    let cases = [
        ("extract", format!("{bin} extract {big_s} {m}/out")),
        ("select", format!("{bin} select {big_s} {m}/out")),
        ("pack", format!("{bin} pack {big_s} {m}/out.tar")),
        (
            "export",
            format!("{bin} export {big_s} {m}/out --format oci"),
        ),
        ("import", format!("{bin} import {oci_s} {m}/out")),
    ];
    let mut checked = 0;
    for (name, cmd) in &cases {
        let script = format!(
            "mount -t tmpfs -o size=1m tmpfs {m} && {cmd} -q; echo \"exit=$?\"; \
             ls -A {m} | sed 's/^/left=/'; \
             [ -d {m}/out ] && {bin} -q verify {m}/out >/dev/null 2>&1; echo \"verify=$?\""
        );
        let r = run_cmd("unshare", &["-m", "sh", "-c", &script]);
        assert!(
            r.stdout.contains("exit=1"),
            "{name}: {}\n{}",
            r.stdout,
            r.stderr
        );
        assert!(
            r.stderr.contains("No space left on device"),
            "{name} does not say the disk is full: {}",
            r.stderr
        );
        let left: Vec<&str> = r
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix("left="))
            .collect();
        if *name == "import" {
            // import writes into a tree (here a new one) through the store:
            // what landed before the disk filled is a valid tree.
            assert!(left.iter().all(|l| *l == "out"), "{name} left {left:?}");
            if !left.is_empty() {
                assert!(r.stdout.contains("verify=0"), "{name}: {}", r.stdout);
            }
        } else {
            assert!(left.is_empty(), "{name} left {left:?} on the full disk");
        }
        assert_eq!(Snapshot::take(&big), before, "{name} changed ROOT");
        checked += 1;
    }
    assert_eq!(checked, 5);
}
