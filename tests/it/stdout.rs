//! Output into a pipe whose reader has gone (`regkit ls ROOT | head`):
//! every command ends quietly with exit code 0, as ripgrep does, instead
//! of a panic or an error about standard output.

use std::process::{Command, Stdio};

use crate::common::*;

/// Runs regkit with standard output a pipe whose read end is already
/// closed, so that its first write fails with EPIPE.
fn into_closed_pipe(args: &[&str]) -> Run {
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    let o = Command::new(regkit_path())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .output()
        .unwrap();
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        raw_stdout: Vec::new(),
    }
}

#[test]
fn every_command_exits_quietly_when_its_reader_goes_away() {
    let f = sample();
    let t = tempdir();
    // Commands that would write get --dry-run, on a copy.
    let copy = copy_fixture(f, t.path(), "copy");
    let root = f.root.to_str().unwrap();
    let copy = copy.root.to_str().unwrap();
    let edge = edge().root.to_str().unwrap();
    let path = |name: &str| t.path().join(name).display().to_string();
    let (out, selected, imported) = (path("out"), path("selected"), path("imported"));
    let (out, selected, imported) = (out.as_str(), selected.as_str(), imported.as_str());
    let extracted = path("extracted");
    regkit(["-q", "extract", root, &extracted, "team/app:v1"]).ok();
    let list = write_list(
        t.path(),
        "images.list",
        &["team/app:v1", "multi/oci-index:1"],
    );
    let list = list.to_str().unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec!["--help"],
        vec!["ls", root],
        vec!["ls", root, "--json"],
        vec!["inspect", root, "team/app:v1"],
        vec!["inspect", root, "team/app:v1", "--raw"],
        vec!["diff", root, edge],
        vec!["diff", "--json", root, edge],
        vec!["verify", root],
        vec!["verify", root, "--json"],
        vec!["extract", root, out, "--dry-run"],
        // Written, then printed: the output is complete all the same.
        vec!["select", root, selected, "--list", list, "--json"],
        vec!["pack", root, out, "--dry-run"],
        vec!["export", root, out, "--format", "oci", "--dry-run"],
        vec!["import", &extracted, imported, "--dry-run"],
        vec!["gc", copy, "--dry-run"],
        vec!["gc", copy, "--dry-run", "--json"],
        vec!["delete", copy, "team/app:v1", "--dry-run"],
        vec!["push", root, "127.0.0.1:9", "--dry-run"],
    ];
    let mut checked = 0;
    for args in &cases {
        let r = into_closed_pipe(args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert!(
            !r.stderr.contains("panicked") && !r.stderr.contains("error"),
            "{args:?}: {}",
            r.stderr
        );
        checked += 1;
    }
    assert!(checked >= 18, "{checked} commands checked");
    regkit(["verify", selected, "--list", list]).ok();
}
