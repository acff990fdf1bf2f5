//! `regkit select` into registry trees that the real registry serves.

use std::fs;

use crate::common::*;

#[test]
fn select_serves_exactly_the_selected_images_to_skopeo() {
    let f = sample();
    let t = tempdir();
    let out = t.path().join("release");
    let picked = [
        "multi/docker-list:1",
        "multi/oci-index:1",
        "team/app:v1",
        "a/b/c/deep:1.0",
        "artifacts/app:v1",
    ];
    let before = Snapshot::take(&f.root);
    let mut args = vec![
        "-q",
        "select",
        f.root.to_str().unwrap(),
        out.to_str().unwrap(),
    ];
    args.extend(picked);
    regkit(args).ok();
    assert_eq!(Snapshot::take(&f.root), before, "ROOT changed");

    let reg = Registry::start(&out);
    let mut repos = reg.catalog();
    repos.sort();
    assert_eq!(
        repos,
        [
            "a/b/c/deep",
            "artifacts/app",
            "multi/docker-list",
            "multi/oci-index",
            "team/app"
        ]
    );
    assert_eq!(reg.tags("team/app"), ["v1"]);
    assert_eq!(reg.tags("artifacts/app"), ["v1"]);
    for r in picked {
        assert_eq!(
            skopeo_copy_all(&format!("docker://{}/{r}", reg.host())).unwrap(),
            f.digest(r),
            "{r}"
        );
    }
    // Not selected: not served, neither by tag nor by digest.
    let (status, _) = reg.get("/v2/team/app/manifests/v2");
    assert_eq!(status, 404);
    let (status, _) = reg.get(&format!(
        "/v2/team/app/manifests/{}",
        f.digest("team/app:v2")
    ));
    assert_eq!(status, 404);
    // Every blob is a hardlink of the source's.
    let d = f.digest("team/app:v1");
    assert!(same_inode(&blob_path(&out, &d), &blob_path(&f.root, &d)));
}

#[test]
fn select_links_index_children_as_revisions_and_their_blobs_as_layers() {
    let f = sample();
    let t = tempdir();
    let out = t.path().join("release");
    regkit([
        "-q",
        "select",
        f.root.to_str().unwrap(),
        out.to_str().unwrap(),
        "multi/docker-list:1",
    ])
    .ok();
    let repo = out.join("docker/registry/v2/repositories/multi/docker-list");
    let list = f.image("multi/docker-list:1");
    for c in list["children"].as_array().unwrap() {
        let d = c["digest"].as_str().unwrap();
        let link = repo
            .join("_manifests/revisions/sha256")
            .join(d.trim_start_matches("sha256:"))
            .join("link");
        assert_eq!(fs::read_to_string(&link).unwrap(), d);
        for l in c["layers"].as_array().unwrap() {
            let d = l["digest"].as_str().unwrap();
            let link = repo
                .join("_layers/sha256")
                .join(d.trim_start_matches("sha256:"))
                .join("link");
            assert_eq!(fs::read_to_string(&link).unwrap(), d);
        }
    }
    let reg = Registry::start(&out);
    for c in list["children"].as_array().unwrap() {
        let (status, body) = reg.get(&format!(
            "/v2/multi/docker-list/manifests/{}",
            c["digest"].as_str().unwrap()
        ));
        assert_eq!(status, 200);
        assert_eq!(
            format!("sha256:{}", sha256_hex(&body)),
            c["digest"].as_str().unwrap()
        );
    }
}

#[test]
fn select_of_a_nested_index_serves_every_level_by_digest() {
    // skopeo 1.9 cannot copy nested indexes, so fetch every manifest and blob over HTTP.
    let f = sample();
    let t = tempdir();
    let out = t.path().join("release");
    regkit([
        "-q",
        "select",
        f.root.to_str().unwrap(),
        out.to_str().unwrap(),
        "multi/nested:1",
    ])
    .ok();
    let reg = Registry::start(&out);
    let seen = served_by_digest(&reg, "multi/nested", &f.digest("multi/nested:1"));
    assert!(seen >= 4, "walked {seen} manifests");
}

#[test]
fn select_into_an_existing_tree_adds_and_refuses_what_differs() {
    let f = sample();
    let t = tempdir();
    let out = t.path().join("release");
    regkit([
        "-q",
        "select",
        f.root.to_str().unwrap(),
        out.to_str().unwrap(),
        "team/app:v1",
    ])
    .ok();
    let r = regkit([
        "select",
        f.root.to_str().unwrap(),
        out.to_str().unwrap(),
        "team/app:v1",
        "team/app:v2",
        "--json",
    ])
    .ok();
    assert!(r.json()["report"]["existing"].as_u64().unwrap() > 0);
    let reg = Registry::start(&out);
    assert_eq!(reg.tags("team/app"), ["v1", "v2"]);
    drop(reg);

    // A tag link that differs is refused, naming both, and nothing is written.
    let link = out.join("docker/registry/v2/repositories/team/app/_manifests/tags/v1/current/link");
    let other = f.digest("team/app:v2");
    fs::write(&link, &other).unwrap();
    let before = Snapshot::take(&out);
    let r = regkit([
        "select",
        f.root.to_str().unwrap(),
        out.to_str().unwrap(),
        "team/app:v1",
        "library/alpine:3.19",
    ])
    .fails(1);
    assert!(r.stderr.contains(link.to_str().unwrap()), "{}", r.stderr);
    assert!(
        r.stderr.contains(&other) && r.stderr.contains(&f.digest("team/app:v1")),
        "{}",
        r.stderr
    );
    assert_eq!(Snapshot::take(&out), before);
}

#[test]
fn select_all_then_registry_serves_every_copyable_tag() {
    let f = sample();
    let t = tempdir();
    let out = t.path().join("all");
    regkit([
        "-q",
        "select",
        f.root.to_str().unwrap(),
        out.to_str().unwrap(),
    ])
    .ok();
    let reg = Registry::start(&out);
    let mut copied = 0;
    for (r, d, copyable) in f.images() {
        if copyable && !r.contains('@') {
            assert_eq!(
                skopeo_copy_all(&format!("docker://{}/{r}", reg.host())).unwrap(),
                d,
                "{r}"
            );
            copied += 1;
        }
    }
    // Every tag of the sample but the nested index, which skopeo cannot copy.
    assert!(copied >= 39, "copied {copied} images");
}

#[test]
fn select_serves_schema1_foreign_layers_and_odd_names() {
    // The edge tree: a schema1 manifest, a foreign layer, a repository named
    // `tools/current`, a tag named `current`, a 128-character tag.
    let f = edge();
    let t = tempdir();
    let out = t.path().join("edge");
    let r = regkit(["select", f.root.to_str().unwrap(), out.to_str().unwrap()]).ok();
    assert!(r.stderr.contains("foreign layer"), "{}", r.stderr);
    let reg = Registry::start(&out);
    for (name, digest, _) in f.images() {
        let (repo, tag) = name.rsplit_once(':').unwrap();
        let (status, headers, _) =
            http_get_with_headers(reg.port, &format!("/v2/{repo}/manifests/{tag}")).unwrap();
        assert_eq!(status, 200, "{name}");
        assert_eq!(
            headers.get("docker-content-digest"),
            Some(&digest),
            "{name}"
        );
    }
}
