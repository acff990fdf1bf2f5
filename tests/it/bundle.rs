//! `pack`, `unpack` and `diff`: bundles for air-gapped delivery, checked
//! with GNU tar, the real registry and skopeo.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;

const PICKED: [&str; 4] = [
    "multi/docker-list:1",
    "multi/oci-index:1",
    "team/app:v1",
    "artifacts/app:v1",
];

fn pack(bundle: &Path, images: &[&str], extra: &[&str]) -> Run {
    let f = sample();
    let mut args = vec![
        "-q".to_string(),
        "pack".into(),
        f.root.display().to_string(),
        bundle.display().to_string(),
    ];
    args.extend(images.iter().map(|s| s.to_string()));
    args.extend(extra.iter().map(|s| s.to_string()));
    regkit(args).ok()
}

fn unpack(bundle: &Path, root: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "-q".to_string(),
        "unpack".into(),
        bundle.display().to_string(),
        root.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    regkit(args)
}

/// The real registry on `root` serves every image with the source's digest.
fn assert_served(root: &Path, images: &[&str]) {
    let reg = Registry::start(root);
    for r in images {
        let got = skopeo_copy_all(&format!("docker://{}/{r}", reg.host()))
            .unwrap_or_else(|e| panic!("{r}: {e}"));
        assert_eq!(got, sample().digest(r), "{r}");
    }
}

fn compare(a: &Path, b: &Path) -> Run {
    let script = repo_dir().join("scripts/fixture.py");
    run_cmd(
        "python3",
        &[
            script.to_str().unwrap(),
            "compare",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
        ],
    )
}

#[test]
fn pack_then_unpack_into_an_empty_root_is_served_with_digests_equal() {
    let t = tempdir();
    for name in ["b.tar", "b.tar.gz", "b.tar.zst"] {
        let bundle = t.path().join(name);
        pack(&bundle, &PICKED, &[]);
        let root = t.path().join(format!("root-{name}"));
        unpack(&bundle, &root, &[]).ok();
        assert_served(&root, &PICKED);
    }
}

#[test]
fn a_bundle_is_exactly_the_tree_select_writes_and_tar_extracts_it() {
    let f = sample();
    let t = tempdir();
    let selected = t.path().join("selected");
    let mut args = vec![
        "-q",
        "select",
        f.root.to_str().unwrap(),
        selected.to_str().unwrap(),
    ];
    args.extend(PICKED);
    regkit(args).ok();
    for (name, flags) in [
        ("b.tar", "-xf"),
        ("b.tar.gz", "-xzf"),
        ("b.tar.zst", "--zstd -xf"),
    ] {
        let bundle = t.path().join(name);
        pack(&bundle, &PICKED, &[]);
        let out = t.path().join(format!("tar-{name}"));
        fs::create_dir(&out).unwrap();
        let cmd = format!("tar {flags} {} -C {}", bundle.display(), out.display());
        run_cmd("sh", &["-c", &cmd]).ok();
        let r = compare(&selected, &out);
        assert_eq!(
            r.code, 0,
            "{name}: tar -x of the bundle differs from select:\n{}",
            r.stdout
        );
    }
    assert_served(&t.path().join("tar-b.tar.gz"), &PICKED);
}

#[test]
fn packs_are_reproducible_and_described_beside_the_bundle() {
    let t = tempdir();
    for name in ["a.tar", "a.tar.gz", "a.tar.zst"] {
        let (one, two) = (
            t.path().join(format!("1-{name}")),
            t.path().join(format!("2-{name}")),
        );
        pack(&one, &PICKED, &[]);
        pack(&two, &PICKED, &[]);
        let (h1, h2) = (sha256_file(&one), sha256_file(&two));
        assert_eq!(h1, h2, "{name}: two packs differ");
        let desc: serde_json::Value =
            serde_json::from_slice(&fs::read(format!("{}.json", one.display())).unwrap()).unwrap();
        assert_eq!(format!("sha256:{}", desc["sha256"].as_str().unwrap()), h1);
        assert_eq!(
            desc["size"].as_u64().unwrap(),
            fs::metadata(&one).unwrap().len()
        );
        assert_eq!(desc["images"].as_array().unwrap().len(), PICKED.len());
        for i in desc["images"].as_array().unwrap() {
            assert_eq!(
                i["digest"].as_str().unwrap(),
                sample().digest(i["name"].as_str().unwrap())
            );
        }
        // Each blob once, however many images use it.
        let listing = run_cmd(
            "sh",
            &[
                "-c",
                &format!(
                    "tar -tf {} {}",
                    one.display(),
                    if name.ends_with("zst") { "--zstd" } else { "" }
                ),
            ],
        )
        .ok();
        let blobs: Vec<&str> = listing
            .stdout
            .lines()
            .filter(|l| l.ends_with("/data"))
            .collect();
        let mut unique = blobs.clone();
        unique.dedup();
        assert_eq!(blobs.len(), unique.len());
        assert_eq!(blobs.len(), desc["blob_count"].as_u64().unwrap() as usize);
    }
}

#[test]
fn a_stream_on_stdout_unpacks_from_stdin() {
    let f = sample();
    let t = tempdir();
    let root = t.path().join("site");
    let cmd = format!(
        "{bin} pack {src} - {imgs} --compress zstd | {bin} -q unpack - {root}",
        bin = regkit_path(),
        src = f.root.display(),
        imgs = PICKED.join(" "),
        root = root.display()
    );
    let r = run_cmd("bash", &["-c", &format!("set -o pipefail; {cmd}")]).ok();
    assert!(
        r.stderr.contains("packed 4 image(s)"),
        "the summary goes to stderr: {}",
        r.stderr
    );
    assert_served(&root, &PICKED);
}

#[test]
fn an_incremental_bundle_on_top_of_its_base_equals_the_full_bundle() {
    let t = tempdir();
    let old = t.path().join("v1.tar");
    pack(&old, &["team/app:v1", "multi/docker-list:1"], &[]);
    let new_images = [
        "team/app:v1",
        "team/app:v2",
        "multi/docker-list:1",
        "multi/oci-index:1",
    ];
    let full = t.path().join("v2-full.tar");
    pack(&full, &new_images, &[]);
    for (i, base) in [
        format!("{}.json", old.display()),
        old.display().to_string(),
        sample().root.display().to_string(),
    ]
    .iter()
    .enumerate()
    {
        let delta = t.path().join(format!("v2-delta-{i}.tar.gz"));
        pack(&delta, &new_images, &["--base", base]);
        let desc: serde_json::Value =
            serde_json::from_slice(&fs::read(format!("{}.json", delta.display())).unwrap())
                .unwrap();
        if i < 2 {
            assert!(desc["base"]["blobs_omitted"].as_u64().unwrap() > 0);
            let (a, b) = (
                t.path().join(format!("a{i}")),
                t.path().join(format!("b{i}")),
            );
            unpack(&old, &a, &[]).ok();
            unpack(&delta, &a, &[]).ok();
            unpack(&full, &b, &[]).ok();
            let r = compare(&a, &b);
            assert_eq!(
                r.code, 0,
                "base then delta differs from the full bundle:\n{}",
                r.stdout
            );
            if i == 0 {
                assert_served(&a, &new_images);
            }
        } else {
            // Against the source tree itself, every blob is already there.
            assert_eq!(desc["blob_count"], 0);
        }
    }
}

#[test]
fn diff_lists_added_removed_changed_and_the_delta_bytes() {
    let t = tempdir();
    let (old, new) = (t.path().join("old.tar"), t.path().join("new.tar.gz"));
    pack(&old, &["team/app:v1", "library/alpine:3.19"], &[]);
    pack(
        &new,
        &["team/app:v1", "team/app:v2", "multi/oci-index:1"],
        &["--base", old.to_str().unwrap()],
    );
    let d = regkit([
        "diff",
        old.to_str().unwrap(),
        &format!("{}.json", new.display()),
        "--json",
    ])
    .ok()
    .json();
    let names = |k: &str| -> Vec<String> {
        d[k].as_array()
            .unwrap()
            .iter()
            .map(|x| x[0].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("added"), ["multi/oci-index:1", "team/app:v2"]);
    assert_eq!(names("removed"), ["library/alpine:3.19"]);
    let desc: serde_json::Value =
        serde_json::from_slice(&fs::read(format!("{}.json", new.display())).unwrap()).unwrap();
    assert_eq!(d["delta_bytes"], desc["blob_bytes"]);
    assert_eq!(d["delta_blobs"], desc["blob_count"]);
    // A tree whose tag moved shows as changed.
    let text = regkit([
        "diff",
        old.to_str().unwrap(),
        sample().root.to_str().unwrap(),
    ])
    .ok();
    assert!(text.stdout.contains("+ many/tags:t00"), "{}", text.stdout);
}

/// Files of `root` as (path, content hash), and the link files among them.
fn files(root: &Path) -> Vec<(String, String)> {
    files_under(root)
        .into_iter()
        .map(|p| {
            let h = sha256_file(&root.join(&p));
            (p, h)
        })
        .collect()
}

/// After a failed unpack into `root`: every file that was there is still
/// there unchanged, nothing new but complete blobs appeared, and the real
/// registry still serves what it served.
fn assert_intact(root: &Path, before: &[(String, String)], served: &[&str]) {
    let after = files(root);
    for f in before {
        assert!(after.contains(f), "changed or lost: {}", f.0);
    }
    for (p, h) in &after {
        if before.iter().any(|b| &b.0 == p) {
            continue;
        }
        assert!(p.ends_with("/data"), "a failed unpack wrote {p}");
        let hex = p.rsplit('/').nth(1).unwrap();
        assert_eq!(h, &format!("sha256:{hex}"), "incomplete blob left: {p}");
    }
    assert!(
        !after.iter().any(|(p, _)| p.contains("regkit-tmp")),
        "temporary files left"
    );
    assert_served(root, served);
}

fn site_with_alpine(t: &Path) -> PathBuf {
    let root = t.join("site");
    let base = t.join("base.tar");
    pack(&base, &["library/alpine:3.19"], &[]);
    unpack(&base, &root, &[]).ok();
    root
}

#[test]
fn a_truncated_bundle_writes_no_link_and_a_rerun_completes() {
    let t = tempdir();
    let bundle = t.path().join("b.tar");
    pack(&bundle, &PICKED, &[]);
    let bytes = fs::read(&bundle).unwrap();
    let root = site_with_alpine(t.path());
    let before = files(&root);
    // Cut mid-entry, and exactly at an entry boundary (no end-of-archive marker).
    for cut in [bytes.len() / 2 + 100, bytes.len() - 1024] {
        let cut_bundle = t.path().join(format!("cut-{cut}.tar"));
        fs::write(&cut_bundle, &bytes[..cut]).unwrap();
        let r = unpack(&cut_bundle, &root, &[]).fails(1);
        assert!(
            r.stderr.contains(cut_bundle.to_str().unwrap()),
            "{}",
            r.stderr
        );
        assert_intact(&root, &before, &["library/alpine:3.19"]);
    }
    unpack(&bundle, &root, &[]).ok();
    assert_served(&root, &PICKED);
}

#[test]
fn altered_blob_bytes_are_refused() {
    let f = sample();
    let t = tempdir();
    let bundle = t.path().join("b.tar");
    pack(&bundle, &["team/app:v2"], &[]);
    // Flip one byte inside the big layer's data in the tar.
    let layer = f.image("team/app:v2")["layers"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|l| l["size"].as_u64())
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut bytes = fs::read(&bundle).unwrap();
    let blob = fs::read(blob_path(&f.root, &layer)).unwrap();
    let at = bytes.windows(64).position(|w| w == &blob[..64]).unwrap() + 1000;
    bytes[at] ^= 0xff;
    let bad = t.path().join("bad.tar");
    fs::write(&bad, &bytes).unwrap();
    let root = site_with_alpine(t.path());
    let before = files(&root);
    let r = unpack(&bad, &root, &[]).fails(1);
    assert!(
        r.stderr.contains("wrong content") && r.stderr.contains(&layer),
        "{}",
        r.stderr
    );
    assert_intact(&root, &before, &["library/alpine:3.19"]);
    // Compressed, the same: checked by default.
    let gz = t.path().join("bad.tar.gz");
    run_cmd(
        "sh",
        &[
            "-c",
            &format!("gzip -c {} > {}", bad.display(), gz.display()),
        ],
    )
    .ok();
    unpack(&gz, &root, &[]).fails(1);
    assert_intact(&root, &before, &["library/alpine:3.19"]);
}

#[test]
fn entries_that_escape_root_are_refused() {
    let t = tempdir();
    let root = site_with_alpine(t.path());
    let before = files(&root);
    let script = |name: &str, kind: &str| {
        format!(
            "import tarfile,io,sys\nt=tarfile.open(sys.argv[1],'w')\ni=tarfile.TarInfo({name:?})\n{kind}\nt.close()"
        )
    };
    let file = "d=b'x';i.size=1;t.addfile(i,io.BytesIO(d))";
    let link = "i.type=tarfile.SYMTYPE;i.linkname='/etc';t.addfile(i)";
    // Each case with where its entry would land if it were unpacked.
    let cases = [
        (
            "dotdot",
            script("docker/registry/v2/../../../escaped", file),
            root.join("escaped"),
        ),
        (
            "dotdot-deep",
            script("docker/registry/v2/../../../../escaped-deep", file),
            t.path().join("escaped-deep"),
        ),
        (
            "absolute",
            script("/tmp/regkit-escaped-abs", file),
            PathBuf::from("/tmp/regkit-escaped-abs"),
        ),
        (
            "symlink",
            script("docker/registry/v2/repositories/evil", link),
            root.join("docker/registry/v2/repositories/evil"),
        ),
    ];
    for (name, script, lands) in &cases {
        let bundle = t.path().join(format!("{name}.tar"));
        run_cmd("python3", &["-c", script, bundle.to_str().unwrap()]).ok();
        let r = unpack(&bundle, &root, &[]).fails(1);
        assert!(
            r.stderr.contains("refusing bundle entry"),
            "{name}: {}",
            r.stderr
        );
        assert!(
            lands.symlink_metadata().is_err(),
            "{name}: {lands:?} exists"
        );
        assert_intact(&root, &before, &["library/alpine:3.19"]);
    }
    assert_eq!(cases.len(), 4);
}

#[test]
fn unpack_refuses_a_root_that_is_not_a_storage_tree() {
    let t = tempdir();
    let bundle = t.path().join("b.tar");
    pack(&bundle, &["team/app:v1"], &[]);
    let root = t.path().join("home");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("notes.txt"), "mine").unwrap();
    let r = unpack(&bundle, &root, &[]).fails(1);
    assert!(
        r.stderr.contains("no registry storage tree") && r.stderr.contains(root.to_str().unwrap()),
        "{}",
        r.stderr
    );
    assert_eq!(files_under(&root), ["notes.txt"]);
}

#[test]
fn a_full_disk_leaves_root_valid_and_says_so() {
    // A 1 MiB tmpfs in a private mount namespace; the bundle holds more.
    let t = tempdir();
    let big = t.path().join("big");
    let script = repo_dir().join("scripts/fixture.py");
    run_cmd(
        "python3",
        &[
            script.to_str().unwrap(),
            "generate",
            "bench",
            "--tags",
            "150",
            big.to_str().unwrap(),
        ],
    )
    .ok();
    let bundle = t.path().join("big.tar");
    regkit([
        "-q",
        "pack",
        big.to_str().unwrap(),
        bundle.to_str().unwrap(),
    ])
    .ok();
    assert!(fs::metadata(&bundle).unwrap().len() > 2 << 20);
    let mnt = t.path().join("small");
    fs::create_dir(&mnt).unwrap();
    let cmd = format!(
        "mount -t tmpfs -o size=1m tmpfs {mnt} && {bin} -q unpack {bundle} {mnt}/root; echo \"exit=$?\"; find {mnt}/root -type f | sort",
        mnt = mnt.display(),
        bin = regkit_path(),
        bundle = bundle.display()
    );
    let r = run_cmd("unshare", &["-m", "sh", "-c", &cmd]);
    assert!(r.stdout.contains("exit=1"), "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("No space left on device") && r.stderr.contains("disk is full"),
        "{}",
        r.stderr
    );
    let left: Vec<&str> = r.stdout.lines().filter(|l| l.starts_with('/')).collect();
    assert!(!left.is_empty(), "some blobs fit");
    for f in left {
        assert!(
            f.ends_with("/data") && !f.contains("regkit-tmp"),
            "left behind: {f}"
        );
    }
}

#[test]
fn a_link_that_differs_is_refused_naming_both_unless_forced() {
    let t = tempdir();
    let bundle = t.path().join("b.tar");
    pack(&bundle, &["team/app:v1"], &[]);
    let root = t.path().join("site");
    unpack(&bundle, &root, &[]).ok();
    // The site's tag was moved to another image since.
    let other = t.path().join("other.tar");
    pack(&other, &["team/app:v2"], &[]);
    unpack(&other, &root, &[]).ok();
    let link =
        root.join("docker/registry/v2/repositories/team/app/_manifests/tags/v1/current/link");
    let v2 = sample().digest("team/app:v2");
    fs::write(&link, &v2).unwrap();
    let before = Snapshot::take(&root);
    let r = unpack(&bundle, &root, &[]).fails(1);
    assert!(r.stderr.contains(link.to_str().unwrap()), "{}", r.stderr);
    assert!(
        r.stderr.contains(&v2) && r.stderr.contains(&sample().digest("team/app:v1")),
        "{}",
        r.stderr
    );
    assert_eq!(
        Snapshot::take(&root),
        before,
        "a refused unpack changed ROOT"
    );
    unpack(&bundle, &root, &["--force"]).ok();
    assert_eq!(
        fs::read_to_string(&link).unwrap(),
        sample().digest("team/app:v1")
    );
    assert_served(&root, &["team/app:v1", "team/app:v2"]);
}
