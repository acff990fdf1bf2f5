//! `regkit ls`.

use std::fs;

use crate::common::*;

fn names(run: &Run) -> Vec<String> {
    run.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn ls_equals_the_seed_listing_where_that_listing_is_right() {
    let f = sample();
    let seed = run_cmd(
        "bash",
        &[
            repo_dir().join("scripts/baseline/ls.sh").to_str().unwrap(),
            f.root.to_str().unwrap(),
        ],
    )
    .ok();
    let seed: Vec<String> = seed.stdout.lines().map(str::to_string).collect();
    let ours = regkit(["ls", f.root.to_str().unwrap(), "--json"]).ok();
    assert_eq!(names(&ours), seed);
    // The text listing starts each line with the same name.
    let text = regkit(["ls", f.root.to_str().unwrap()]).ok();
    let first: Vec<String> = text
        .stdout
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    assert_eq!(first, seed);
}

#[test]
fn ls_is_right_where_the_seed_listing_is_wrong() {
    let f = edge();
    let mut want: Vec<String> = f
        .images()
        .into_iter()
        .map(|(r, _, _)| r)
        .filter(|r| !r.contains('@'))
        .collect();
    want.sort();
    want.dedup();
    let ours = regkit(["ls", f.root.to_str().unwrap(), "--json"]);
    assert_eq!(names(&ours), want, "stderr: {}", ours.stderr);
    let seed = run_cmd(
        "bash",
        &[
            repo_dir().join("scripts/baseline/ls.sh").to_str().unwrap(),
            f.root.to_str().unwrap(),
        ],
    );
    let seed: Vec<String> = seed.stdout.lines().map(str::to_string).collect();
    assert_ne!(
        seed, want,
        "the edge fixture should trip the seed listing (repo or tag named `current`)"
    );
}

#[test]
fn ls_json_gives_digest_media_type_platforms_and_size() {
    let f = sample();
    let ours = regkit(["ls", f.root.to_str().unwrap(), "--json"])
        .ok()
        .json();
    for e in ours.as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        let side = f.image(name);
        assert_eq!(e["digest"], side["digest"], "{name}");
        assert_eq!(e["media_type"], side["media_type"], "{name}");
        let children = side["children"].as_array().unwrap();
        if name == "multi/docker-list:1" {
            assert_eq!(
                e["platforms"],
                serde_json::json!(["linux/amd64", "linux/arm64/v8", "linux/arm/v7"])
            );
        }
        if children.is_empty() {
            // Single image: manifest + config + unique layers.
            let mut blobs = std::collections::BTreeMap::new();
            blobs.insert(
                side["digest"].as_str().unwrap(),
                side["size"].as_u64().unwrap(),
            );
            if side["config"].is_object() {
                blobs.insert(
                    side["config"]["digest"].as_str().unwrap(),
                    side["config"]["size"].as_u64().unwrap(),
                );
            }
            for l in side["layers"].as_array().unwrap() {
                blobs.insert(l["digest"].as_str().unwrap(), l["size"].as_u64().unwrap());
            }
            assert_eq!(
                e["size"].as_u64().unwrap(),
                blobs.values().sum::<u64>(),
                "{name}"
            );
        }
    }
}

#[test]
fn root_may_be_the_v2_folder_or_a_parent() {
    let f = sample();
    let want = regkit(["ls", f.root.to_str().unwrap(), "--json"])
        .ok()
        .stdout;
    let v2 = f.root.join("docker/registry/v2");
    assert_eq!(
        regkit(["ls", v2.to_str().unwrap(), "--json"]).ok().stdout,
        want
    );
    // A parent holding exactly one tree (the fixture's folder holds only it and its sidecar).
    let t = tempdir();
    let nested = t.path().join("var/lib/registry");
    fs::create_dir_all(nested.parent().unwrap()).unwrap();
    run_cmd(
        "cp",
        &["-al", f.root.to_str().unwrap(), nested.to_str().unwrap()],
    )
    .ok();
    assert_eq!(
        regkit(["ls", t.path().join("var").to_str().unwrap(), "--json"])
            .ok()
            .stdout,
        want
    );
}
