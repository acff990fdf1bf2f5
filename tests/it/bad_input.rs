//! Damaged trees and bad arguments: a clear error naming the image and the
//! path, exit 1 (2 for usage), nothing half-written, ROOT unchanged.

use std::collections::BTreeSet;
use std::fs;

use serde_json::Value;

use crate::common::*;

fn broken() -> &'static Fixture {
    sample_with_every_damage()
}

fn damages(kind: &str) -> Vec<Value> {
    broken().sidecar["damages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == kind)
        .cloned()
        .collect()
}

#[test]
fn each_damage_fails_its_image_naming_image_and_path() {
    let f = broken();
    let mut checked = 0;
    for kind in [
        "missing-blob",
        "missing-manifest",
        "bad-link",
        "not-json",
        "missing-child",
    ] {
        let found = damages(kind);
        assert!(!found.is_empty(), "no {kind} damage in the fixture");
        for d in found {
            let Some(image) = d["images"]
                .as_array()
                .unwrap()
                .first()
                .and_then(Value::as_str)
            else {
                continue;
            };
            // Only tag links decide what extract and select read; a bad
            // `_layers` link is verify's business.
            if kind == "bad-link"
                && !d["paths"][0]
                    .as_str()
                    .unwrap()
                    .contains("/_manifests/tags/")
            {
                continue;
            }
            for cmd in ["extract", "select"] {
                let t = tempdir();
                let out = t.path().join("out");
                let before = Snapshot::take(&f.root);
                let r =
                    regkit([cmd, f.root.to_str().unwrap(), out.to_str().unwrap(), image]).fails(1);
                assert_eq!(Snapshot::take(&f.root), before);
                assert!(
                    r.stderr.contains(&format!("= image: {image}")),
                    "{kind}/{cmd}: {}",
                    r.stderr
                );
                let named = d["paths"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| r.stderr.contains(p.as_str().unwrap()));
                assert!(
                    named,
                    "{kind}/{cmd}: no damaged path in:\n{}\n{d}",
                    r.stderr
                );
                assert!(!out.exists(), "{kind}/{cmd}: half-written output");
                assert_eq!(
                    fs::read_dir(t.path()).unwrap().count(),
                    0,
                    "{kind}/{cmd}: leftovers"
                );
                checked += 1;
            }
        }
    }
    // Five damaged images (the bad `_layers` link is skipped), two commands each.
    assert!(checked >= 10, "checked {checked} cases");
}

#[test]
fn keep_going_does_the_rest_and_summarises_failures() {
    let f = broken();
    let t = tempdir();
    let out = t.path().join("out");
    let r = regkit([
        "-q",
        "extract",
        f.root.to_str().unwrap(),
        out.to_str().unwrap(),
        "--keep-going",
        "--json",
    ])
    .fails(1);
    let j = r.json();
    let failed: Vec<&str> = j["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["image"].as_str().unwrap())
        .collect();
    for kind in [
        "missing-blob",
        "missing-manifest",
        "not-json",
        "missing-child",
    ] {
        for d in damages(kind) {
            for i in d["images"].as_array().unwrap() {
                assert!(
                    failed.contains(&i.as_str().unwrap()),
                    "{kind}: {i} not among failures {failed:?}"
                );
            }
        }
    }
    assert!(r.stderr.contains("images failed"), "{}", r.stderr);
    // What could be done was done, and skopeo reads it.
    let ok = "library/alpine:3.19";
    assert!(!failed.contains(&ok));
    assert_eq!(
        skopeo_copy_all(&format!("dir:{}", out.join(ok).display())).unwrap(),
        sample().digest(ok)
    );
}

#[test]
fn unknown_images_name_the_nearest_or_are_skipped() {
    let f = sample();
    let t = tempdir();
    let out = t.path().join("out");
    let r = regkit([
        "extract",
        f.root.to_str().unwrap(),
        out.to_str().unwrap(),
        "team/app:v3",
    ])
    .fails(1);
    assert!(
        r.stderr.contains("team/app:v3") && r.stderr.contains("did you mean: team/app:v1"),
        "{}",
        r.stderr
    );
    assert!(!out.exists());
    let r = regkit([
        "extract",
        f.root.to_str().unwrap(),
        out.to_str().unwrap(),
        "team/app:v3",
        "team/app:v1",
        "--skip-missing",
    ])
    .ok();
    assert!(
        r.stderr.contains("warning") && r.stderr.contains("team/app:v3"),
        "{}",
        r.stderr
    );
    assert!(out.join("team/app:v1/manifest.json").is_file());
}

#[test]
fn a_folder_that_is_not_a_storage_tree_is_named() {
    let t = tempdir();
    let r = regkit(["ls", t.path().to_str().unwrap()]).fails(1);
    assert!(
        r.stderr.contains("no registry storage tree")
            && r.stderr.contains(t.path().to_str().unwrap()),
        "{}",
        r.stderr
    );
}

#[test]
fn usage_errors_exit_2() {
    let f = sample();
    regkit(["extract"]).fails(2);
    regkit(["frobnicate"]).fails(2);
    let t = tempdir();
    let r = regkit([
        "extract",
        f.root.to_str().unwrap(),
        t.path().join("o").to_str().unwrap(),
        "Not/A:Valid:Ref",
    ])
    .fails(2);
    assert!(r.stderr.contains("Not/A:Valid:Ref"), "{}", r.stderr);
    let list = write_list(t.path(), "bad.list", &["team/app:v1", "UPPER/case:1"]);
    let r = regkit([
        "extract",
        f.root.to_str().unwrap(),
        t.path().join("o").to_str().unwrap(),
        "--list",
        list.to_str().unwrap(),
    ])
    .fails(2);
    assert!(
        r.stderr.contains("line 2") && r.stderr.contains("bad.list"),
        "{}",
        r.stderr
    );
}

#[test]
fn corrupt_blobs_are_caught_when_bytes_are_copied() {
    // Copies (here forced by a read-only ROOT) check every digest.
    let f = broken();
    for kind in ["flipped-byte", "truncated-blob"] {
        let d = &damages(kind)[0];
        let image = d["images"][0].as_str().unwrap();
        let t = tempdir();
        let out = t.path().join("out");
        let r = regkit_readonly(
            &f.root,
            [
                "extract",
                f.root.to_str().unwrap(),
                out.to_str().unwrap(),
                image,
            ],
        )
        .fails(1);
        assert!(
            r.stderr.contains(d["paths"][0].as_str().unwrap()),
            "{kind}: {}",
            r.stderr
        );
        let why = match kind {
            "flipped-byte" => "wrong content",
            _ => "but its descriptor says",
        };
        assert!(
            r.stderr.contains(why) && r.stderr.contains(image),
            "{kind}: {}",
            r.stderr
        );
        assert!(!out.exists());
    }
}

#[test]
fn a_list_saved_with_a_byte_order_mark_is_read() {
    let f = sample();
    let t = tempdir();
    let list = t.path().join("bom.list");
    fs::write(&list, "\u{feff}team/app:v1\r\nmulti/oci-index:1\r\n").unwrap();
    let out = t.path().join("out");
    regkit([
        "select",
        f.root.to_str().unwrap(),
        out.to_str().unwrap(),
        "--list",
        list.to_str().unwrap(),
    ])
    .ok();
    regkit([
        "verify",
        out.to_str().unwrap(),
        "team/app:v1",
        "multi/oci-index:1",
    ])
    .ok();
}

#[test]
fn a_missing_image_from_a_list_is_named_with_its_file_and_line() {
    let f = sample();
    let t = tempdir();
    let list = write_list(
        t.path(),
        "images.list",
        &["team/app:v1", "# gone since", "team/app:v9"],
    );
    let (root, list) = (f.root.to_str().unwrap(), list.to_str().unwrap());
    let out = t.path().join("out");
    let out = out.to_str().unwrap();
    let commands: [&[&str]; 6] = [
        &["extract", root, out],
        &["select", root, out],
        &["pack", root, out],
        &["export", root, out, "--format", "oci"],
        &["push", root, "127.0.0.1:9", "--dry-run"],
        &["verify", root],
    ];
    let mut checked = 0;
    for args in commands {
        let r = regkit(args.iter().copied().chain(["--list", list])).fails(1);
        assert!(
            r.stderr.contains(&format!(
                "{list}:3: image `team/app:v9` is not in the storage tree"
            )),
            "{args:?}: {}",
            r.stderr
        );
        checked += 1;
    }
    assert_eq!(checked, 6);
    // Named on the command line, it has no file and line.
    let r = regkit(["extract", root, out, "team/app:v9"]).fails(1);
    assert!(
        r.stderr
            .contains("error: image `team/app:v9` is not in the storage tree"),
        "{}",
        r.stderr
    );
}

#[test]
fn the_skip_missing_hint_is_given_only_by_commands_that_have_it() {
    let f = sample();
    let t = tempdir();
    let copy = copy_fixture(f, t.path(), "copy");
    let (root, copy) = (f.root.to_str().unwrap(), copy.root.to_str().unwrap());
    let out = t.path().join("out");
    let out = out.to_str().unwrap();
    // Far from every name: the hint is the generic one.
    let nowhere = "zzzzzzzzzzzzzzzz/qqqqqqqqqqqqqqqq:9";
    let with: [&[&str]; 5] = [
        &["extract", root, out, nowhere],
        &["select", root, out, nowhere],
        &["pack", root, out, nowhere],
        &["export", root, out, "--format", "oci", nowhere],
        &["push", root, "127.0.0.1:9", "--dry-run", nowhere],
    ];
    let without: [&[&str]; 3] = [
        &["inspect", root, nowhere],
        &["verify", root, nowhere],
        &["delete", copy, nowhere],
    ];
    let mut checked = 0;
    for (args, has) in with
        .iter()
        .map(|a| (a, true))
        .chain(without.iter().map(|a| (a, false)))
    {
        let r = regkit(*args).fails(1);
        assert!(
            r.stderr.contains("is not in the storage tree"),
            "{args:?}: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains("regkit ls ROOT"),
            "{args:?}: {}",
            r.stderr
        );
        assert_eq!(
            r.stderr.contains("--skip-missing"),
            has,
            "{args:?}: {}",
            r.stderr
        );
        checked += 1;
    }
    assert_eq!(checked, 8);
}

#[test]
fn keep_going_leaves_out_only_the_images_whose_blob_fails_while_written() {
    // A layer whose bytes are not its digest is found only when it is
    // copied (here: extract across filesystems, and pack, which streams
    // every blob): the images using it are reported, the others written.
    let t = tempdir();
    let d = damaged("flipped-byte", sample(), t.path());
    let affected: BTreeSet<String> = d.sidecar["damages"][0]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect();
    assert!(!affected.is_empty());
    let tags: Vec<String> = sample()
        .images()
        .into_iter()
        .map(|(r, _, _)| r)
        .filter(|r| !r.contains('@'))
        .collect();
    let root = d.root.to_str().unwrap();
    let out = t.path().join("out");
    let r = regkit_readonly(
        &d.root,
        [
            "-q",
            "extract",
            root,
            out.to_str().unwrap(),
            "--keep-going",
            "--json",
        ],
    )
    .fails(1);
    let failed = failed_images(&r.json());
    assert_eq!(failed, affected, "{}", r.stdout);
    assert!(r.stderr.contains("wrong content"), "{}", r.stderr);
    let mut written = 0;
    for tag in &tags {
        let there = out.join(tag).join("manifest.json").is_file();
        assert_eq!(there, !affected.contains(tag), "{tag}");
        written += usize::from(there);
    }
    assert!(written >= 20, "{written}");
    let ok = "library/alpine:3.19";
    assert_eq!(
        skopeo_copy_all(&format!("dir:{}", out.join(ok).display())).unwrap(),
        sample().digest(ok)
    );

    let bundle = t.path().join("b.tar");
    let r = regkit(["-q", "pack", root, bundle.to_str().unwrap(), "--keep-going"]).fails(1);
    for image in &affected {
        assert!(
            r.stderr.contains(&format!("= image: {image}")),
            "{}",
            r.stderr
        );
    }
    let manifest: Value =
        serde_json::from_slice(&fs::read(t.path().join("b.tar.json")).unwrap()).unwrap();
    let packed: BTreeSet<String> = manifest["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(packed.len(), tags.len() - affected.len());
    assert!(packed.is_disjoint(&affected));
    let site = t.path().join("site");
    regkit([
        "-q",
        "unpack",
        bundle.to_str().unwrap(),
        site.to_str().unwrap(),
    ])
    .ok();
    regkit(["verify", site.to_str().unwrap()]).ok();
    let reg = Registry::start(&site);
    assert_eq!(
        skopeo_copy_all(&format!("docker://{}/{ok}", reg.host())).unwrap(),
        sample().digest(ok)
    );
}

fn failed_images(v: &Value) -> BTreeSet<String> {
    v["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["image"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_blob_whose_size_is_not_its_descriptors_is_refused_by_extract_and_pack() {
    // Hardlinking reads no bytes, but a blob cut short has not the size its
    // descriptor gives: extract refuses it as verify does, and so does pack.
    let t = tempdir();
    let d = damaged("truncated-blob", sample(), t.path());
    let rec = &d.sidecar["damages"][0];
    let image = rec["images"][0].as_str().unwrap();
    let path = d.root.join(rec["paths"][0].as_str().unwrap());
    let root = d.root.to_str().unwrap();
    for cmd in ["extract", "select", "pack"] {
        let out = t.path().join(cmd);
        let r = regkit([cmd, root, out.to_str().unwrap(), image]).fails(1);
        assert!(
            r.stderr.contains("but its descriptor says")
                && r.stderr.contains(&format!("--> {}", path.display()))
                && r.stderr.contains(&format!("= image: {image}")),
            "{cmd}: {}",
            r.stderr
        );
        assert!(!out.exists(), "{cmd}");
    }
}
