//! Manifest graphs at the walks' limits, on a tree the real registry wrote
//! (`scripts/fixture.py build graph`): every command follows indexes to the
//! same depth and calls one nested deeper broken; a layer named by its
//! sha512 is found as the registry finds it.

use std::path::Path;

use sha2::Digest as _;

use crate::common::*;

fn graph() -> &'static Fixture {
    built("graph")
}

#[test]
fn every_command_follows_indexes_to_the_same_depth_and_no_deeper() {
    let f = graph();
    let root = f.root.to_str().unwrap();
    let t = tempdir();
    // Eight levels of indexes: every command takes it.
    let ok = "nest/deep:8";
    regkit(["verify", root, ok]).ok();
    let out = t.path().join("x8");
    regkit(["-q", "extract", root, out.to_str().unwrap(), ok]).ok();
    let sel = t.path().join("s8");
    regkit(["-q", "select", root, sel.to_str().unwrap(), ok]).ok();
    regkit(["verify", sel.to_str().unwrap()]).ok();
    let reg = Registry::start(&sel);
    assert_eq!(served_by_digest(&reg, "nest/deep", &f.digest(ok)), 9);
    drop(reg);

    // Nine: the registry serves it, and every command says it is too deep.
    let deep = "nest/deep:9";
    let reg = Registry::start(&f.root);
    assert_eq!(served_by_digest(&reg, "nest/deep", &f.digest(deep)), 10);
    drop(reg);
    let r = regkit(["verify", root, deep, "--json"]).fails(1);
    let v = r.json();
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{v:#}");
    assert_eq!(findings[0]["kind"], "too-deep");
    assert_eq!(findings[0]["images"][0], deep);
    let path = findings[0]["path"].as_str().unwrap().to_string();
    assert!(Path::new(&path).is_file(), "{path}");
    for cmd in ["extract", "select", "pack"] {
        let out = t.path().join(format!("{cmd}9"));
        let r = regkit([cmd, root, out.to_str().unwrap(), deep]).fails(1);
        assert!(
            r.stderr.contains("nested deeper than 8 levels of indexes")
                && r.stderr.contains(&path)
                && r.stderr.contains(&format!("= image: {deep}")),
            "{cmd}: {}",
            r.stderr
        );
        assert!(!out.exists());
    }
    // gc does not guess what lies deeper: the repository is kept whole.
    let copy = copy_fixture(f, t.path(), "copy");
    let before = blob_set(&copy.root);
    let v = regkit(["gc", copy.root.to_str().unwrap(), "-m", "--json"])
        .fails(1)
        .json();
    assert_eq!(v["kept_whole"][0]["repository"], "nest/deep", "{v:#}");
    assert_eq!(blob_set(&copy.root), before);
}

#[test]
fn a_layer_named_by_its_sha512_is_found_as_the_registry_finds_it() {
    // The registry stores a blob pushed as sha512:<hex> under its sha256
    // and links the sha512 name to it in the repository's _layers.
    let f = graph();
    let root = f.root.to_str().unwrap();
    let image = "hash/sha512:1";
    let layer = f.image(image)["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(layer.starts_with("sha512:"), "{layer}");
    let link = f
        .root
        .join("docker/registry/v2/repositories/hash/sha512/_layers/sha512")
        .join(layer.trim_start_matches("sha512:"))
        .join("link");
    assert!(link.is_file());
    let reg = Registry::start(&f.root);
    assert_eq!(served_by_digest(&reg, "hash/sha512", &f.digest(image)), 1);
    drop(reg);
    // verify: nothing missing, the bytes hashed as the sha512 that names them.
    let v = regkit(["verify", root, "--json", "--all-blobs"])
        .fails(1)
        .json();
    let findings: Vec<_> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["images"].as_array().unwrap().iter().any(|i| i == image))
        .collect();
    assert!(findings.is_empty(), "{v:#}");
    regkit(["verify", root, image]).ok();
    // extract: the dir: file is named by the sha512 and holds its bytes.
    let t = tempdir();
    let out = t.path().join("x");
    regkit(["-q", "extract", root, out.to_str().unwrap(), image]).ok();
    let file = out.join(image).join(layer.trim_start_matches("sha512:"));
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(
        format!("sha512:{}", hex::encode(sha2::Sha512::digest(&bytes))),
        layer
    );
    // select: the tree the registry serves it from, and verify passes.
    let sel = t.path().join("s");
    regkit(["-q", "select", root, sel.to_str().unwrap(), image]).ok();
    regkit(["verify", sel.to_str().unwrap()]).ok();
    let reg = Registry::start(&sel);
    assert_eq!(served_by_digest(&reg, "hash/sha512", &f.digest(image)), 1);
    let (status, body) = reg.get(&format!("/v2/hash/sha512/blobs/{layer}"));
    assert_eq!(status, 200);
    assert_eq!(body, bytes);
}
