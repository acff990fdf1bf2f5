//! unpack and merges never leave a tag the registry lists but cannot serve
//! (issue 11, item 3), and read plain tarballs of a registry (issue 12,
//! item 3).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every tag folder of the tree (`repo:tag`) that has no `current/link`.
fn tags_without_current(root: &Path) -> Vec<String> {
    let repos = root.join("docker/registry/v2/repositories");
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(&repos)
        .into_iter()
        .filter_map(|e| e.ok())
    {
        let p = e.path();
        if p.parent().and_then(|x| x.file_name()) == Some("tags".as_ref())
            && p.parent()
                .and_then(|x| x.parent())
                .and_then(|x| x.file_name())
                == Some("_manifests".as_ref())
            && !p.join("current/link").is_file()
        {
            out.push(p.strip_prefix(&repos).unwrap().display().to_string());
        }
    }
    out
}

fn sample_bundle(t: &Path) -> PathBuf {
    let bundle = t.join("sample.tar");
    regkit(["-q", "pack", s(&sample().root), s(&bundle)]).ok();
    bundle
}

#[test]
fn no_tag_is_ever_listed_without_its_current_link_while_unpacking() {
    let t = tempdir();
    let bundle = sample_bundle(t.path());
    let root = t.path().join("site");
    let mut child = Command::new(regkit_path())
        .args(["-q", "unpack", s(&bundle), s(&root)])
        .env("REGKIT_TEST_STEP_DELAY_MS", "5")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut looks = 0;
    let mut saw_tags = 0;
    loop {
        let done = child.try_wait().unwrap().is_some();
        let phantoms = tags_without_current(&root);
        assert!(
            phantoms.is_empty(),
            "look {looks}: tags without current: {phantoms:?}"
        );
        if root.join("docker/registry/v2/repositories").exists() {
            saw_tags = saw_tags.max(
                files_under(&root)
                    .iter()
                    .filter(|f| f.ends_with("current/link"))
                    .count(),
            );
        }
        looks += 1;
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(looks >= 20, "only {looks} looks at the tree");
    assert_eq!(saw_tags, 40);
    assert_serves_tags(&root, sample(), &["multi/nested:1"]);
}

#[test]
fn ctrl_c_during_unpack_leaves_every_listed_tag_servable_and_a_rerun_completes() {
    let t = tempdir();
    let bundle = sample_bundle(t.path());
    let root = t.path().join("site");
    let mut checked = 0;
    // Interrupt once blobs are arriving, and once tags are.
    let blobs = root.join("docker/registry/v2/blobs/sha256");
    // A folder for one tag (`_manifests/tags/<tag>/`) is there.
    let first_tags = || {
        walkdir::WalkDir::new(root.join("docker/registry/v2/repositories"))
            .into_iter()
            .filter_map(|e| e.ok())
            .any(|e| e.path().parent().and_then(|p| p.file_name()) == Some("tags".as_ref()))
    };
    for moment in ["blobs", "tags"] {
        let _ = fs::remove_dir_all(&root);
        let child = Command::new(regkit_path())
            .args(["-q", "unpack", s(&bundle), s(&root)])
            .env("REGKIT_TEST_STEP_DELAY_MS", "10")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !(if moment == "blobs" {
            blobs.exists()
        } else {
            first_tags()
        }) {
            assert!(std::time::Instant::now() < deadline, "{moment}: never came");
            std::thread::sleep(Duration::from_millis(2));
        }
        run_cmd("kill", &["-INT", &child.id().to_string()]);
        let o = child.wait_with_output().unwrap();
        assert_eq!(
            o.status.code(),
            Some(130),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(tags_without_current(&root).is_empty());
        let tmp: Vec<String> = files_under(&root)
            .into_iter()
            .filter(|f| f.contains("regkit-tmp"))
            .collect();
        assert!(tmp.is_empty(), "left {tmp:?}");
        // What is there is servable: verify finds nothing broken.
        if root.join("docker/registry/v2").exists() {
            regkit(["-q", "verify", s(&root)]).ok();
        }
        regkit(["-q", "unpack", s(&bundle), s(&root)]).ok();
        assert_serves_tags(&root, sample(), &["multi/nested:1"]);
        checked += 1;
    }
    assert_eq!(checked, 2);
}

/// A tar written by Python's tarfile from (name, is_dir, bytes) entries.
fn python_tar(path: &Path, entries: &[(&str, bool, &[u8])]) {
    let mut script = String::from("import tarfile,io,sys\nt=tarfile.open(sys.argv[1],'w')\n");
    for (name, is_dir, bytes) in entries {
        if *is_dir {
            script.push_str(&format!(
                "i=tarfile.TarInfo({name:?});i.type=tarfile.DIRTYPE;t.addfile(i)\n"
            ));
        } else {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            script.push_str(&format!(
                "d=bytes.fromhex({hex:?});i=tarfile.TarInfo({name:?});i.size=len(d);t.addfile(i,io.BytesIO(d))\n"
            ));
        }
    }
    script.push_str("t.close()\n");
    run_cmd("python3", &["-c", &script, s(path)]).ok();
}

#[test]
fn folder_entries_create_nothing_and_junk_folders_are_refused() {
    let t = tempdir();
    let root = t.path().join("site");
    // Only folders, all of them of the layout: no image, nothing created.
    let only_dirs = t.path().join("dirs.tar");
    python_tar(
        &only_dirs,
        &[
            (
                "docker/registry/v2/repositories/x/_manifests/tags/v1",
                true,
                b"",
            ),
            (
                "docker/registry/v2/repositories/x/_manifests/tags/v1/current",
                true,
                b"",
            ),
            ("docker/registry/v2/blobs/sha256/ab", true, b""),
        ],
    );
    let r = regkit(["unpack", s(&only_dirs), s(&root)]).ok();
    assert!(r.stdout.contains("unpacked 0 image(s)"), "{}", r.stdout);
    assert!(!root.join("docker/registry/v2/repositories").exists());
    let mut refused = 0;
    for junk in [
        "docker/registry/v2/random junk",
        "docker/registry/v2/blobs/sha256/zz/not-a-digest",
        "docker/registry/v2/repositories/x/_manifests/tags/.hidden",
    ] {
        let bundle = t.path().join("junk.tar");
        python_tar(
            &bundle,
            &[("docker/registry/v2/blobs", true, b""), (junk, true, b"")],
        );
        let r = regkit(["unpack", s(&bundle), s(&root)]).fails(1);
        assert!(
            r.stderr.contains("not a folder of the storage layout"),
            "{junk}: {}",
            r.stderr
        );
        assert!(!root.join(junk).exists(), "{junk}");
        refused += 1;
    }
    assert_eq!(refused, 3);
    assert!(tags_without_current(&root).is_empty());
}

#[test]
fn select_into_a_tree_on_a_full_disk_leaves_no_tag_without_its_link() {
    let t = tempdir();
    let big = t.path().join("big");
    let script = repo_dir().join("scripts/fixture.py");
    run_cmd(
        "python3",
        &[s(&script), "generate", "bench", "--tags", "150", s(&big)],
    )
    .ok();
    let mnt = t.path().join("small");
    fs::create_dir(&mnt).unwrap();
    // A tree that holds one image, on a 1 MiB tmpfs; then all of big's.
    let cmd = format!(
        "mount -t tmpfs -o size=1m tmpfs {mnt} && {bin} -q select {big} {mnt}/root team/app:v1 --skip-missing >/dev/null 2>&1; \
         {bin} -q select {big} {mnt}/root; echo \"exit=$?\"; \
         {bin} -q verify {mnt}/root; echo \"verify=$?\"; \
         find {mnt}/root/docker/registry/v2/repositories -path '*/_manifests/tags/*' -prune -type d | while read d; do [ -f \"$d/current/link\" ] || echo \"phantom $d\"; done; \
         find {mnt}/root -path '*/_manifests/tags/*/current/link' | wc -l | sed 's/^/tags=/'",
        mnt = mnt.display(),
        bin = regkit_path(),
        big = big.display(),
    );
    let r = run_cmd("unshare", &["-m", "sh", "-c", &cmd]);
    assert!(r.stdout.contains("exit=1"), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("No space left on device"), "{}", r.stderr);
    assert!(r.stdout.contains("verify=0"), "{}\n{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("phantom"), "{}", r.stdout);
    let tags: usize = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("tags="))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        tags < 150,
        "everything fit in 1 MiB: the disk never filled ({tags} tags)"
    );
}

/// A copy of the sample tree with an unfinished upload and a stray file
/// beside the tree, as `tar -C /var/lib/registry -cf r.tar .` would find.
fn untidy_root(t: &Path) -> PathBuf {
    let root = copy_fixture(sample(), t, "reg").root;
    let up = root.join("docker/registry/v2/repositories/team/app/_uploads/0a1b2c3d");
    fs::create_dir_all(up.join("hashstates/sha256")).unwrap();
    fs::write(up.join("data"), b"partial").unwrap();
    fs::write(up.join("startedat"), b"2024-01-01T00:00:00Z").unwrap();
    fs::write(root.join("config.yml"), b"version: 0.1\n").unwrap();
    root
}

/// The files of a tree that regkit unpacks: blobs and links.
fn layout_files(root: &Path) -> Vec<String> {
    files_under(root)
        .into_iter()
        .filter(|f| f.starts_with("docker/registry/v2/") && !f.contains("/_uploads/"))
        .collect()
}

#[test]
fn plain_tarballs_of_a_registry_unpack_at_every_usual_depth() {
    let t = tempdir();
    let root = untidy_root(t.path());
    let parent = root.parent().unwrap();
    let v2 = root.join("docker/registry/v2");
    let cases: [(&str, String); 5] = [
        (
            "docker.tar.gz",
            format!("tar -C {} -czf {{out}} docker", s(&root)),
        ),
        ("dot.tar", format!("tar -C {} -cf {{out}} .", s(&root))),
        ("v2.tar", format!("tar -C {} -cf {{out}} .", s(&v2))),
        (
            "parent.tar",
            format!("tar -C {} -cf {{out}} reg", s(parent)),
        ),
        (
            "dot.tar.zst",
            format!("tar -C {} -cf - . | zstd -q -o {{out}}", s(&root)),
        ),
    ];
    let want = layout_files(&root);
    assert!(want.len() > 200);
    for (name, cmd) in &cases {
        let archive = t.path().join(name);
        run_cmd("sh", &["-c", &cmd.replace("{out}", s(&archive))]).ok();
        let site = t.path().join(format!("site-{name}"));
        let r = regkit(["unpack", s(&archive), s(&site)]).ok();
        assert!(
            r.stdout.contains("unpacked 40 image(s)"),
            "{name}: {}",
            r.stdout
        );
        if *name != "v2.tar" && *name != "docker.tar.gz" {
            assert!(r.stderr.contains("config.yml"), "{name}: {}", r.stderr);
        }
        assert!(
            r.stderr.contains("unfinished uploads"),
            "{name}: {}",
            r.stderr
        );
        assert_eq!(layout_files(&site), want, "{name}");
        assert!(
            !files_under(&site).iter().any(|f| f.contains("_uploads")),
            "{name}"
        );
        // diff and pack --base read it as the tree it holds.
        let d = regkit(["diff", "--json", s(&archive), s(&sample().root)])
            .ok()
            .json();
        assert_eq!(d["added"].as_array().unwrap().len(), 0, "{name}: {d}");
        assert_eq!(d["removed"].as_array().unwrap().len(), 0, "{name}: {d}");
        let delta = t.path().join(format!("delta-{name}.tar"));
        let p = regkit([
            "pack",
            "--json",
            s(&sample().root),
            s(&delta),
            "--base",
            s(&archive),
        ])
        .ok()
        .json();
        assert_eq!(p["blob_count"], 0, "{name}: {p}");
    }
    assert_serves_tags(
        &t.path().join("site-dot.tar"),
        sample(),
        &["multi/nested:1"],
    );
    assert_eq!(cases.len(), 5);
}

#[test]
fn what_follows_the_end_marker_is_ignored_and_duplicates_are_checked() {
    let t = tempdir();
    let root = copy_fixture(sample(), t.path(), "reg").root;
    let base = t.path().join("r.tar");
    run_cmd(
        "sh",
        &[
            "-c",
            &format!("tar -C {} -cf {} docker", s(&root), s(&base)),
        ],
    )
    .ok();

    // Bytes after the end-of-archive marker: GNU tar accepts it, so do we.
    let junk = t.path().join("junk.tar");
    fs::copy(&base, &junk).unwrap();
    run_cmd(
        "sh",
        &["-c", &format!("head -c 3000 /dev/urandom >> {}", s(&junk))],
    )
    .ok();
    run_cmd("tar", &["-tf", s(&junk)]).ok();
    regkit(["-q", "unpack", s(&junk), s(&t.path().join("site-junk"))]).ok();

    // A second current link for a tag, holding another (existing) digest.
    let v2 = "docker/registry/v2";
    let other = sample().digest("team/app:v2");
    let extra = t.path().join("extra");
    let link = format!("{v2}/repositories/team/app/_manifests/tags/v1/current/link");
    fs::create_dir_all(extra.join(&link).parent().unwrap()).unwrap();
    fs::write(extra.join(&link), &other).unwrap();
    let dup = t.path().join("dup-link.tar");
    fs::copy(&base, &dup).unwrap();
    run_cmd("tar", &["-C", s(&extra), "-rf", s(&dup), &link]).ok();
    let site = t.path().join("site-dup");
    let r = regkit(["unpack", s(&dup), s(&site)]).fails(1);
    assert!(r.stderr.contains("holds this link twice"), "{}", r.stderr);
    assert!(tags_without_current(&site).is_empty());
    assert!(!site.join(&link).exists(), "a link was written");

    // A second copy of a blob, with other bytes.
    let d = sample().digest("team/app:v1");
    let hex = d.strip_prefix("sha256:").unwrap();
    let blob = format!("{v2}/blobs/sha256/{}/{hex}/data", &hex[..2]);
    let bad = t.path().join("bad");
    fs::create_dir_all(bad.join(&blob).parent().unwrap()).unwrap();
    fs::write(bad.join(&blob), b"not the manifest").unwrap();
    let dupb = t.path().join("dup-blob.tar");
    fs::copy(&base, &dupb).unwrap();
    run_cmd("tar", &["-C", s(&bad), "-rf", s(&dupb), &blob]).ok();
    let site = t.path().join("site-dupb");
    let r = regkit(["unpack", s(&dupb), s(&site)]).fails(1);
    assert!(r.stderr.contains("wrong content"), "{}", r.stderr);
    assert!(
        !files_under(&site).iter().any(|f| f.ends_with("/link")),
        "a link was written"
    );
}

#[test]
fn an_archive_with_no_registry_tree_is_refused() {
    let t = tempdir();
    let a = t.path().join("home.tar");
    fs::create_dir(t.path().join("home")).unwrap();
    fs::write(t.path().join("home/notes.txt"), b"x").unwrap();
    run_cmd("tar", &["-C", s(&t.path().join("home")), "-cf", s(&a), "."]).ok();
    let site = t.path().join("site");
    let r = regkit(["unpack", s(&a), s(&site)]).fails(1);
    assert!(r.stderr.contains("holds no registry tree"), "{}", r.stderr);
    assert!(!site.exists());
}

/// A tar stream of one blob of `n` random bytes (stored where its sha256
/// says), written to `path`.
fn one_blob_tar(path: &Path, n: usize) {
    let script = format!(
        "import tarfile,io,sys,os,hashlib\nd=os.urandom({n})\nh=hashlib.sha256(d).hexdigest()\nt=tarfile.open(sys.argv[1],'w',format=tarfile.USTAR_FORMAT)\ni=tarfile.TarInfo('docker/registry/v2/blobs/sha256/%s/%s/data'%(h[:2],h));i.size=len(d)\nt.addfile(i,io.BytesIO(d))\nt.close()"
    );
    run_cmd("python3", &["-c", &script, s(path)]).ok();
}

#[test]
fn a_killed_unpack_leaves_a_temporary_that_verify_names_and_gc_removes() {
    use std::io::Write;
    let t = tempdir();
    let bundle = t.path().join("big.tar");
    one_blob_tar(&bundle, 8 << 20);
    let bytes = fs::read(&bundle).unwrap();
    let root = t.path().join("site");
    fs::create_dir_all(root.join("docker/registry/v2")).unwrap();
    let staging = root.join("docker/registry/v2/.regkit-tmp");
    let mut child = Command::new(regkit_path())
        .args(["-q", "unpack", "-", s(&root)])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Half the blob, then wait until its temporary file exists: kill -9.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&bytes[..4 << 20]).unwrap();
    stdin.flush().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while fs::read_dir(&staging).map(|d| d.count()).unwrap_or(0) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no temporary file appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);
    let left: Vec<_> = fs::read_dir(&staging)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    // No blob, no link: the tree is valid; verify names the leftover.
    assert!(!files_under(&root)
        .iter()
        .any(|f| f.ends_with("/data") || f.ends_with("/link")));
    let r = regkit(["verify", s(&root)]).ok();
    assert!(
        r.stdout.contains("note: regkit temporary") && r.stdout.contains(".regkit-tmp/"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("once it is 10 minutes old"),
        "{}",
        r.stdout
    );
    // gc leaves it while it is young, and removes it once it is old.
    let j = regkit(["gc", s(&root), "--dry-run", "--json"]).ok().json();
    assert_eq!(j["leftovers"].as_array().unwrap().len(), 0, "{j}");
    run_cmd(
        "touch",
        &["-d", "20 minutes ago", left[0].to_str().unwrap()],
    )
    .ok();
    let j = regkit(["gc", s(&root), "--dry-run", "--json"]).ok().json();
    assert_eq!(j["leftovers"].as_array().unwrap().len(), 1, "{j}");
    assert!(left[0].exists(), "a dry run removed it");
    let r = regkit(["gc", s(&root)]).ok();
    assert!(
        r.stdout.contains("removed regkit temporary"),
        "{}",
        r.stdout
    );
    assert!(!left[0].exists());
    let r = regkit(["verify", s(&root)]).ok();
    assert!(!r.stdout.contains("regkit temporary"), "{}", r.stdout);
}
