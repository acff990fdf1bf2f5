//! `regkit inspect` against the real `skopeo inspect`.

use crate::common::*;

#[test]
fn inspect_matches_skopeo_inspect_from_the_real_registry() {
    let f = sample();
    let reg = Registry::start(&f.root);
    for image in [
        "library/alpine:3.19",
        "team/app:v2",
        "a/b/c/deep:1.0",
        "multi/docker-list:1",
        "multi/oci-index:1",
    ] {
        let ours = regkit(["inspect", f.root.to_str().unwrap(), image])
            .ok()
            .json();
        let theirs = skopeo(&[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{}/{image}", reg.host()),
        ])
        .ok()
        .json();
        let sorted = |v: &serde_json::Value| {
            let mut t: Vec<String> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect();
            t.sort();
            t
        };
        assert_eq!(
            sorted(&ours["RepoTags"]),
            sorted(&theirs["RepoTags"]),
            "{image}: RepoTags"
        );
        for field in [
            "Digest",
            "Created",
            "Architecture",
            "Os",
            "Layers",
            "Env",
            "Labels",
        ] {
            assert_eq!(ours[field], theirs[field], "{image}: {field}");
        }
        assert_eq!(ours["Name"], image.split(':').next().unwrap());
    }
}

#[test]
fn inspect_raw_and_config_print_exact_bytes() {
    let f = sample();
    let root = f.root.to_str().unwrap();
    let raw = regkit(["inspect", root, "multi/docker-list:1", "--raw"]).ok();
    assert_eq!(
        format!("sha256:{}", sha256_hex(&raw.raw_stdout)),
        f.digest("multi/docker-list:1")
    );

    let child = f.image("multi/docker-list:1")["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["platform"].as_str() == Some("linux/arm64/v8"))
        .expect("arm64 child in sidecar")
        .clone();
    let raw = regkit([
        "inspect",
        root,
        "multi/docker-list:1",
        "--raw",
        "--platform",
        "linux/arm64",
    ])
    .ok();
    assert_eq!(
        format!("sha256:{}", sha256_hex(&raw.raw_stdout)),
        child["digest"].as_str().unwrap()
    );

    let cfg = regkit(["inspect", root, "team/app:v1", "--config"]).ok();
    assert_eq!(
        format!("sha256:{}", sha256_hex(&cfg.raw_stdout)),
        f.image("team/app:v1")["config"]["digest"].as_str().unwrap()
    );
    let arm = regkit([
        "inspect",
        root,
        "multi/docker-list:1",
        "--platform",
        "linux/arm/v7",
    ])
    .ok()
    .json();
    assert_eq!(
        (arm["Architecture"].as_str(), arm["Os"].as_str()),
        (Some("arm"), Some("linux"))
    );

    let none = regkit([
        "inspect",
        root,
        "multi/docker-list:1",
        "--platform",
        "linux/s390x",
    ])
    .fails(1);
    assert!(none.stderr.contains("linux/arm64/v8"), "{}", none.stderr);
}
