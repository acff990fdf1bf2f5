//! A name is what the tree holds: a mirror's repositories are named after
//! their upstream (`registry.k8s.io/pause`, `docker.io/library/nginx`), and
//! every name `regkit ls` prints is taken back verbatim by every command,
//! in `--list` files and in `push --map`.

use std::collections::BTreeSet;
use std::fs;

use crate::common::*;

fn mirror() -> &'static Fixture {
    built("mirror")
}

/// What `regkit ls --json` lists: (name, repository, digest).
fn listed(f: &Fixture) -> Vec<(String, String, String)> {
    let v = regkit(["ls", f.root.to_str().unwrap(), "--json"])
        .ok()
        .json();
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["repository"].as_str().unwrap().to_string(),
                e["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn every_name_ls_prints_is_taken_back_by_every_command() {
    let f = mirror();
    let root = f.root.to_str().unwrap();
    let names = listed(f);
    let refs: BTreeSet<String> = f.images().into_iter().map(|(r, _, _)| r).collect();
    assert_eq!(
        names.iter().map(|n| n.0.clone()).collect::<BTreeSet<_>>(),
        refs
    );
    for upstream in [
        "registry.k8s.io/pause:3.9",
        "quay.io/coreos/etcd:v3.5.9",
        "docker.io/library/nginx:1.25",
        "localhost/app:v1",
    ] {
        assert!(refs.contains(upstream), "{upstream} not in the fixture");
    }
    let t = tempdir();
    let mut checked = 0;
    for (name, repo, digest) in &names {
        let out = t.path().join(format!("x{checked}"));
        let o = out.to_str().unwrap();
        // extract: the folder holds that image, which skopeo copies.
        let j = regkit(["-q", "extract", root, o, name, "--json"])
            .ok()
            .json();
        assert_eq!(j["images"][0]["repository"], repo.as_str(), "{name}");
        let dir = out.join(name);
        assert_eq!(sha256_file(&dir.join("manifest.json")), *digest, "{name}");
        assert_eq!(
            skopeo_copy_all(&format!("dir:{}", dir.display())).unwrap(),
            *digest,
            "{name}"
        );
        // select, pack, export, verify, inspect name the same image.
        let sel = t.path().join(format!("s{checked}"));
        let j = regkit(["-q", "select", root, sel.to_str().unwrap(), name, "--json"])
            .ok()
            .json();
        assert_eq!(j["images"][0]["digest"], digest.as_str(), "{name}");
        let bundle = t.path().join(format!("b{checked}.tar"));
        regkit(["-q", "pack", root, bundle.to_str().unwrap(), name]).ok();
        let manifest: serde_json::Value = serde_json::from_slice(
            &fs::read(t.path().join(format!("b{checked}.tar.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(manifest["images"][0]["name"], name.as_str());
        let oci = t.path().join(format!("o{checked}"));
        let j = regkit([
            "-q",
            "export",
            root,
            oci.to_str().unwrap(),
            "--format",
            "oci",
            name,
            "--json",
        ])
        .ok()
        .json();
        assert!(j.to_string().contains(digest.as_str()), "{name}: {j}");
        let j = regkit(["verify", root, name, "--json"]).ok().json();
        assert_eq!(j["images"], 1, "{name}");
        let j = regkit(["inspect", root, name]).ok().json();
        assert_eq!(
            (&j["Name"], &j["Digest"]),
            (&repo.as_str().into(), &digest.as_str().into()),
            "{name}"
        );
        checked += 1;
    }
    assert_eq!(checked, refs.len());
    assert!(checked >= 7, "{checked}");

    // A list file of every name: extract and select take each verbatim,
    // and the real registry serves each under its name.
    let lines: Vec<&str> = names.iter().map(|n| n.0.as_str()).collect();
    let list = write_list(t.path(), "mirror.list", &lines);
    let all = t.path().join("all");
    regkit([
        "-q",
        "extract",
        root,
        all.to_str().unwrap(),
        "--list",
        list.to_str().unwrap(),
    ])
    .ok();
    for (name, _, digest) in &names {
        assert_eq!(sha256_file(&all.join(name).join("manifest.json")), *digest);
    }
    let tree = t.path().join("tree");
    regkit([
        "-q",
        "select",
        root,
        tree.to_str().unwrap(),
        "--list",
        list.to_str().unwrap(),
    ])
    .ok();
    assert_serves_tags(&tree, f, &[]);

    // push with a map from the names ls prints.
    let dst = tempdir();
    let reg = Registry::start(dst.path());
    let map = write_list(
        t.path(),
        "push.map",
        &[
            "registry.k8s.io/pause mirrored/pause",
            "docker.io/library/nginx:1.25 hub/nginx:stable",
            "nginx web/nginx",
            "localhost/app:v1 apps/app:v1",
        ],
    );
    regkit([
        "-q",
        "push",
        root,
        &reg.host(),
        "--tls-verify=false",
        "--list",
        list.to_str().unwrap(),
        "--map",
        map.to_str().unwrap(),
    ])
    .ok();
    for (dest, src) in [
        ("mirrored/pause:3.9", "registry.k8s.io/pause:3.9"),
        ("hub/nginx:stable", "docker.io/library/nginx:1.25"),
        ("web/nginx:1.25", "nginx:1.25"),
        ("web/nginx:latest", "nginx:latest"),
        ("apps/app:v1", "localhost/app:v1"),
        ("quay.io/coreos/etcd:v3.5.9", "quay.io/coreos/etcd:v3.5.9"),
    ] {
        let got = skopeo_copy_all(&format!("docker://{}/{dest}", reg.host()))
            .unwrap_or_else(|e| panic!("{dest}: {e}"));
        assert_eq!(got, f.digest(src), "{dest}");
    }

    // delete takes them too.
    let copy = copy_fixture(f, t.path(), "copy");
    let mut args = vec!["delete", copy.root.to_str().unwrap()];
    args.extend(lines.iter().copied());
    regkit(args).ok();
    assert!(listed(&copy).is_empty());
}

#[test]
fn a_name_means_its_own_repository_before_a_shorter_one() {
    let f = mirror();
    let root = f.root.to_str().unwrap();
    let repo_of = |reference: &str| -> String {
        let t = tempdir();
        let out = t.path().join("o");
        let j = regkit([
            "-q",
            "extract",
            root,
            out.to_str().unwrap(),
            reference,
            "--json",
        ])
        .ok()
        .json();
        j["images"][0]["name"].as_str().unwrap().to_string()
    };
    let cases = [
        // The exact name wins when the tree has it.
        (
            "docker.io/library/nginx:1.25",
            "docker.io/library/nginx:1.25",
        ),
        ("nginx:1.25", "nginx:1.25"),
        // Otherwise the host is dropped, then `library/` tried.
        ("docker.io/nginx:1.25", "nginx:1.25"),
        ("docker.io/busybox:1.36", "library/busybox:1.36"),
        ("busybox:1.36", "library/busybox:1.36"),
        (
            "harbor.local:5000/registry.k8s.io/pause:3.9",
            "registry.k8s.io/pause:3.9",
        ),
    ];
    for (reference, want) in cases {
        assert_eq!(repo_of(reference), want, "{reference}");
    }
    assert_ne!(
        f.digest("docker.io/library/nginx:1.25"),
        f.digest("nginx:1.25")
    );
    // A name the tree lacks suggests the names it has, not itself.
    let t = tempdir();
    let out = t.path().join("o");
    let r = regkit([
        "extract",
        root,
        out.to_str().unwrap(),
        "registry.k8s.io/pause:3.8",
    ])
    .fails(1);
    assert!(
        r.stderr.contains("did you mean: registry.k8s.io/pause:3.9"),
        "{}",
        r.stderr
    );
    // `./x` and `../x` are not registry hosts.
    for bad in ["./nginx:1.25", "../nginx:1.25"] {
        let r = regkit(["extract", root, out.to_str().unwrap(), bad]).fails(2);
        assert!(r.stderr.contains(bad), "{}", r.stderr);
    }
    assert!(!out.exists());
}
