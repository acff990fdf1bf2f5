//! Ctrl-C inside one long copy (not between files): the work stops at the
//! next buffer, exits 130 and leaves no temporary file. (Ctrl-C during a
//! push is in `push.rs`, with the proxy that stalls.)

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn unpack_interrupted_inside_a_large_entry_exits_130_and_leaves_root_valid() {
    let f = sample();
    let t = tempdir();
    let root = copy_fixture(f, t.path(), "root").root;
    let before = files_under(&root);
    // A bundle whose one entry is a 1 GiB blob, fed through a pipe: the
    // entry is never complete, so only the interrupt can end the unpack.
    let hex = sha256_hex(b"a blob that never arrives whole");
    let mut header = tar::Header::new_ustar();
    header
        .set_path(format!(
            "docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ))
        .unwrap();
    header.set_size(1 << 30);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut child = Command::new(regkit_path())
        .args(["-q", "unpack", "-", root.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(header.as_bytes()).unwrap();
    let chunk = vec![0u8; 64 << 10];
    // Feed it until the blob's temporary file is being written.
    let deadline = Instant::now() + Duration::from_secs(60);
    let writing = loop {
        stdin.write_all(&chunk).unwrap();
        let new: Vec<String> = files_under(&root)
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        if !new.is_empty() {
            break new;
        }
        assert!(Instant::now() < deadline, "the blob was never written");
    };
    interrupt(&child);
    // A trickle after the interrupt (far less than the entry): an unpack
    // that looks at Ctrl-C only between entries reads on and on.
    let mut fed = 0usize;
    while fed < 400 && stdin.write_all(&chunk).is_ok() {
        fed += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stdin);
    let out = wait_with_deadline(child, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(fed < 400, "it read on after the interrupt ({fed} chunks)");
    // The temporary file is gone, nothing else appeared, and ROOT verifies.
    assert_eq!(files_under(&root), before, "was writing {writing:?}");
    regkit(["verify", root.to_str().unwrap()]).ok();
}

#[test]
fn exit_code_130_is_in_the_help() {
    let mut checked = 0;
    for args in [&["--help"][..], &["push", "--help"]] {
        let r = regkit(args).ok();
        assert!(
            r.stdout.contains("130 interrupted"),
            "{args:?}: {}",
            r.stdout
        );
        checked += 1;
    }
    assert_eq!(checked, 2);
    let readme = std::fs::read_to_string(repo_dir().join("README.md")).unwrap();
    assert!(readme.contains("Exit codes: 0 ok, 1 failure, 2 usage, 130 interrupted"));
}
