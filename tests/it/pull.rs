//! `regkit pull` against the real registry as the upstream: anonymous,
//! Basic over TLS, Bearer tokens from the push tests' issuer, the registry
//! dying mid-run, and the misbehaving proxy in front of it (429 with
//! `Retry-After`, a corrupted body, Docker Hub's rate-limit headers, the
//! OCI referrers API). The core check: the tree pulled is, file by file,
//! the tree `regkit select` writes for the same images out of the
//! upstream registry's own storage.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;
use crate::push::issuer::Issuer;
use crate::push::proxy::{Act, Proxy};
use crate::push::{answer, auth_json, first, make_tls};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A private copy of a fixture's tree, served by the real registry.
struct Upstream {
    dir: tempfile::TempDir,
    reg: Registry,
}

impl Upstream {
    fn of(f: &Fixture) -> Upstream {
        Upstream::with(f, "", "")
    }

    fn with(f: &Fixture, http_extra: &str, extra_yaml: &str) -> Upstream {
        let dir = tempdir();
        copy_tree(&f.root, &dir.path().join("up"));
        let reg = Registry::start_custom(&dir.path().join("up"), http_extra, extra_yaml);
        Upstream { dir, reg }
    }

    /// The registry's own storage.
    fn root(&self) -> PathBuf {
        self.dir.path().join("up")
    }

    fn from(&self) -> String {
        format!("http://{}", self.reg.host())
    }
}

/// `regkit select` of `images` (all when empty) out of `root` into a new,
/// empty folder (which select merges into, as pull does).
fn selected(root: &Path, images: &[&str], extra: &[&str], out: &Path) {
    fs::create_dir_all(out).unwrap();
    let mut args = vec!["-q", "select", s(root), s(out)];
    args.extend_from_slice(images);
    args.extend_from_slice(extra);
    regkit(&args).ok();
}

/// Runs `regkit pull ARGS --json` and returns its summary.
fn pull_json(args: &[&str]) -> Value {
    let mut a = vec!["pull"];
    a.extend_from_slice(args);
    a.push("--json");
    regkit(&a).ok().json()
}

#[test]
fn pull_writes_exactly_the_tree_select_writes_out_of_the_registrys_storage() {
    let mut checked = 0;
    for f in [sample(), edge()] {
        let up = Upstream::of(f);
        let t = tempdir();
        let root = t.path().join("root");
        // Every repository the catalog lists, in pages of 3.
        let out = Command::new(regkit_path())
            .args(["pull", s(&root), "--from", &up.from(), "--json"])
            .env("REGKIT_TEST_PAGE_SIZE", "3")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let j: Value = serde_json::from_slice(&out.stdout).unwrap();
        let n = f.images().len();
        assert_eq!(j["totals"]["pulled"], n, "{}", j["totals"]);
        assert_eq!(j["totals"]["failed"], 0);
        let want = t.path().join("selected");
        selected(&up.root(), &[], &[], &want);
        assert_same_tree(&root, &want);

        // Again: one HEAD per tag, nothing downloaded, nothing written.
        let j = pull_json(&[s(&root), "--from", &up.from()]);
        assert_eq!(j["totals"]["up_to_date"], n, "{}", j["totals"]);
        assert_eq!(j["totals"]["bytes_downloaded"], 0);
        assert_eq!(j["totals"]["files_written"], 0);
        assert_same_tree(&root, &want);
        checked += n;
    }
    assert!(checked >= 47, "{checked} images");
}

#[test]
fn pull_names_tags_filters_platforms_and_renames() {
    let f = sample();
    let up = Upstream::of(f);
    let t = tempdir();
    let host = up.reg.host();
    // A list as the seeds write them: a byte order mark, comments,
    // image-syncer's tag lists, a host named in front.
    let list = t.path().join("images.list");
    fs::write(
        &list,
        format!("\u{feff}# release\nteam/app:v1,v2\n{host}/a/b/c/deep:1.0 # full name\n"),
    )
    .unwrap();
    let root = t.path().join("root");
    let j = pull_json(&[
        "library/alpine",
        "many/tags",
        "multi/oci-index:1",
        s(&root),
        "--list",
        s(&list),
        "--from",
        &up.from(),
        "--tag-regex",
        "^(3|t1)",
        "--platform",
        "linux/arm64",
    ]);
    // alpine: 3.19 (not latest); many/tags: t10..t19; two of team/app; deep;
    // the arm64 image of multi/oci-index.
    assert_eq!(j["totals"]["pulled"], 1 + 10 + 2 + 1 + 1, "{}", j["totals"]);
    let want = t.path().join("selected");
    let mut names: Vec<String> = vec![
        "library/alpine:3.19".into(),
        "team/app:v1".into(),
        "team/app:v2".into(),
        "a/b/c/deep:1.0".into(),
        "multi/oci-index:1".into(),
    ];
    names.extend((10..20).map(|i| format!("many/tags:t{i}")));
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    selected(&up.root(), &refs, &["--platform", "linux/arm64"], &want);
    assert_same_tree(&root, &want);

    // --semver over a repository's tags; --from with a namespace; --map.
    let map = t.path().join("map");
    fs::write(&map, "tags renamed/tags\n").unwrap();
    let root2 = t.path().join("root2");
    let j = pull_json(&[
        "tags",
        s(&root2),
        "--from",
        &format!("{}/many", up.from()),
        "--map",
        s(&map),
        "--tag-regex",
        "^t0",
    ]);
    assert_eq!(j["totals"]["pulled"], 10);
    let stored: Vec<&str> = j["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert!(stored.contains(&"renamed/tags:t00"), "{stored:?}");
    let r = regkit(["ls", s(&root2), "--json"]).ok().json();
    assert_eq!(r.as_array().unwrap().len(), 10);

    let root3 = t.path().join("root3");
    let j = pull_json(&[
        "library/alpine",
        s(&root3),
        "--from",
        &up.from(),
        "--semver",
        ">=3.10, <4",
    ]);
    let got: Vec<&str> = j["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["library/alpine:3.19"], "latest is not a version");

    // --dry-run resolves and writes nothing.
    let dry = t.path().join("dry");
    let r = regkit([
        "pull",
        "team/app",
        s(&dry),
        "--from",
        &up.from(),
        "--dry-run",
    ])
    .ok();
    assert!(r.stdout.contains("would pull 2 image(s)"), "{}", r.stdout);
    assert!(!dry.exists(), "a dry run wrote ROOT");
}

#[test]
fn pull_names_what_the_registry_lacks_and_writes_nothing() {
    let up = Upstream::of(sample());
    let t = tempdir();
    let root = t.path().join("root");
    let list = write_list(
        t.path(),
        "x.list",
        &["team/app:v1", "team/app:v9", "no/such"],
    );
    let r = regkit(["pull", s(&root), "--list", s(&list), "--from", &up.from()]).fails(1);
    assert!(
        r.stderr
            .contains("x.list:2: tag `team/app:v9` is not on 127.0.0.1"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("did you mean: v1"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("x.list:3: repository `no/such` is not on"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("nothing was pulled"), "{}", r.stderr);
    assert!(!root.exists(), "ROOT was created");
    // --skip-missing pulls the rest.
    let r = regkit([
        "pull",
        s(&root),
        "--list",
        s(&list),
        "--from",
        &up.from(),
        "--skip-missing",
    ])
    .ok();
    assert!(
        r.stderr.contains("x.list:2: tag `team/app:v9`"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("pulled 1 of 1"), "{}", r.stdout);
}

#[test]
fn pull_with_basic_auth_over_tls_checks_credentials_first() {
    let f = sample();
    let t = tempdir();
    let (certs, crt, key) = make_tls(t.path());
    let htpasswd = t.path().join("htpasswd");
    let r = run_cmd("htpasswd", &["-Bbc", s(&htpasswd), "alice", "s3cret"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let up = Upstream::with(
        f,
        &format!(
            "tls: {{certificate: {}, key: {}}}",
            crt.display(),
            key.display()
        ),
        &format!(
            "auth:\n  htpasswd:\n    realm: regkit-test\n    path: {}\n",
            htpasswd.display()
        ),
    );
    let host = up.reg.host();
    let empty = t.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    let env = [
        ("HOME", empty.as_path()),
        ("XDG_RUNTIME_DIR", empty.as_path()),
        ("XDG_CONFIG_HOME", empty.as_path()),
    ];
    let root = t.path().join("root");
    let image = format!("{host}/team/app:v1");
    let certs_s = s(&certs);
    // A wrong password: refused at once, ROOT not even created.
    let wrong = t.path().join("wrong.json");
    fs::write(&wrong, auth_json(&host, "alice", "wrong")).unwrap();
    let r = regkit_env(
        &[
            "pull",
            &image,
            s(&root),
            "--cert-dir",
            certs_s,
            "--authfile",
            s(&wrong),
        ],
        &env,
    )
    .fails(1);
    assert!(
        r.stderr.contains("refused the credentials of user `alice`"),
        "{}",
        r.stderr
    );
    assert!(!root.exists(), "ROOT was created");
    let r = regkit_env(&["pull", &image, s(&root), "--cert-dir", certs_s], &env).fails(1);
    assert!(
        r.stderr
            .contains("asks for credentials and none were found"),
        "{}",
        r.stderr
    );
    // Right: over TLS with the CA of --cert-dir.
    let j = regkit_env(
        &[
            "pull",
            &image,
            &format!("{host}/multi/docker-list:1"),
            s(&root),
            "--cert-dir",
            certs_s,
            "--creds",
            "alice:s3cret",
            "--json",
        ],
        &env,
    )
    .ok()
    .json();
    assert_eq!(j["registries"][0]["auth"], "basic");
    assert_eq!(j["registries"][0]["base"], format!("https://{host}"));
    assert_eq!(j["totals"]["pulled"], 2);
    let want = t.path().join("selected");
    selected(
        &up.root(),
        &["team/app:v1", "multi/docker-list:1"],
        &[],
        &want,
    );
    assert_same_tree(&root, &want);
}

#[test]
fn pull_with_bearer_tokens_and_a_missing_right() {
    let f = sample();
    let t = tempdir();
    let issuer = Issuer::start(t.path(), "alice", "s3cret", "team");
    let up = Upstream::with(f, "", &issuer.registry_yaml());
    let host = up.reg.host();
    let root = t.path().join("root");
    let j = pull_json(&[
        "multi/nested:1",
        "library/alpine",
        s(&root),
        "--from",
        &format!("http://{host}"),
        "--creds",
        "alice:s3cret",
    ]);
    assert_eq!(j["registries"][0]["auth"], "bearer");
    assert_eq!(j["totals"]["pulled"], 3);
    let want = t.path().join("selected");
    selected(
        &up.root(),
        &["multi/nested:1", "library/alpine"],
        &[],
        &want,
    );
    assert_same_tree(&root, &want);
    // The account has no rights in `team`: an error at once, nothing
    // written, not even the images it may pull.
    let root2 = t.path().join("root2");
    let r = regkit([
        "pull",
        "library/alpine:3.19",
        "team/app:v1",
        s(&root2),
        "--from",
        &format!("http://{host}"),
        "--creds",
        "alice:s3cret",
    ])
    .fails(1);
    assert!(
        r.stderr.contains("denied pull from `team/app`"),
        "{}",
        r.stderr
    );
    assert!(!root2.exists(), "ROOT was created");
    // A wrong password: the token service refuses it.
    let r = regkit([
        "pull",
        "library/alpine:3.19",
        s(&root2),
        "--from",
        &format!("http://{host}"),
        "--creds",
        "alice:nope",
    ])
    .fails(1);
    assert!(
        r.stderr.contains("refused the credentials of user `alice`"),
        "{}",
        r.stderr
    );
    assert!(!root2.exists());
}

/// The tree has no tag, revision or `_layers` link naming `digest`, and no
/// blob of it.
fn assert_not_linked(root: &Path, digest: &str) {
    let hex = digest.strip_prefix("sha256:").unwrap();
    let found: Vec<String> = files_under(root)
        .into_iter()
        .filter(|p| {
            p.contains(hex) || { fs::read_to_string(root.join(p)).is_ok_and(|c| c == digest) }
        })
        .collect();
    assert!(found.is_empty(), "{digest} is in the tree: {found:?}");
}

#[test]
fn pull_refuses_a_blob_or_manifest_that_does_not_match_its_digest() {
    let f = sample();
    let up = Upstream::of(f);
    let deep = f.image("a/b/c/deep:1.0");
    let layer = deep["layers"][0]["digest"].as_str().unwrap().to_string();
    let mut checked = 0;
    for (what, target) in [
        ("blob", layer.clone()),
        ("manifest", f.digest("a/b/c/deep:1.0")),
    ] {
        let path = if what == "blob" {
            format!("/blobs/{target}")
        } else {
            format!("/manifests/{target}")
        };
        let proxy = Proxy::start(up.reg.port, move |m, p| {
            if m == "GET" && p.ends_with(&path) {
                Act::Corrupt
            } else {
                Act::Forward
            }
        });
        let t = tempdir();
        let root = t.path().join("root");
        let r = regkit([
            "pull",
            "a/b/c/deep:1.0",
            s(&root),
            "--from",
            &proxy.dest(),
            "--retries",
            "0",
        ])
        .fails(1);
        assert!(r.stderr.contains(target.as_str()), "{what}: {}", r.stderr);
        assert!(
            r.stderr.contains("= image: 127.0.0.1"),
            "{what}: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains(&format!(
                "--> http://127.0.0.1:{}/v2/a/b/c/deep/",
                proxy.port
            )),
            "{what}: the URL is named: {}",
            r.stderr
        );
        assert_not_linked(&root, &target);
        assert!(
            !root
                .join("docker/registry/v2/repositories/a/b/c/deep/_manifests/tags")
                .exists(),
            "{what}: a tag was written"
        );
        checked += 1;
    }
    assert_eq!(checked, 2);
}

#[test]
fn pull_waits_the_retry_after_a_429_names() {
    let f = sample();
    let up = Upstream::of(f);
    let proxy = Proxy::start(
        up.reg.port,
        first("GET", "/blobs/", || answer(429, &[("Retry-After", "1")])),
    );
    let t = tempdir();
    let root = t.path().join("root");
    regkit([
        "pull",
        "a/b/c/deep:1.0",
        s(&root),
        "--from",
        &proxy.dest(),
        "-j",
        "1",
    ])
    .ok();
    let seen = proxy.seen();
    let refused: Vec<usize> = (0..seen.len()).filter(|&i| seen[i].status == 429).collect();
    assert_eq!(refused.len(), 1, "{seen:#?}");
    let limited = &seen[refused[0]];
    let retry = seen[refused[0] + 1..]
        .iter()
        .find(|x| x.path == limited.path)
        .expect("the blob was asked for again");
    assert!(
        retry.at.duration_since(limited.at) >= Duration::from_secs(1),
        "the retry came {:?} after the 429",
        retry.at.duration_since(limited.at)
    );
    let want = t.path().join("selected");
    selected(&up.root(), &["a/b/c/deep:1.0"], &[], &want);
    assert_same_tree(&root, &want);
}

#[test]
fn pull_reads_docker_hubs_rate_limit_from_heads() {
    let f = sample();
    let up = Upstream::of(f);
    let t = tempdir();
    let mut checked = 0;
    for (remaining, ok) in [("57;w=21600", true), ("0;w=21600", false)] {
        let value = remaining.to_string();
        let proxy = Proxy::start(up.reg.port, move |m, p| {
            if m == "HEAD" && p.contains("/manifests/") {
                Act::Rewrite {
                    header: "RateLimit-Remaining".into(),
                    value: value.clone(),
                }
            } else {
                Act::Forward
            }
        });
        let root = t.path().join(format!("root-{checked}"));
        let r = regkit([
            "pull",
            "team/app:v1",
            s(&root),
            "--from",
            &proxy.dest(),
            "--json",
        ]);
        let gets = proxy
            .seen()
            .iter()
            .filter(|x| x.method == "GET" && x.path.contains("/manifests/"))
            .count();
        if ok {
            let j = r.ok().json();
            assert_eq!(j["registries"][0]["rate_limit"]["remaining"], 57);
            assert_eq!(j["registries"][0]["rate_limit"]["window_seconds"], 21600);
            assert!(gets >= 1);
        } else {
            let r = r.fails(1);
            assert!(
                r.stderr.contains("pull rate limit is used up"),
                "{}",
                r.stderr
            );
            assert_eq!(gets, 0, "no GET once the limit is used up");
            assert!(!root.join("docker/registry/v2/repositories/team").exists());
        }
        checked += 1;
    }
    assert_eq!(checked, 2);
}

#[test]
fn pull_keeps_what_finished_when_the_registry_dies_and_a_rerun_completes() {
    let t = tempdir();
    let up_root = t.path().join("up");
    generate_bench(&up_root, 120);
    let mut reg = Registry::start(&up_root);
    let root = t.path().join("root");
    let child = Command::new(regkit_path())
        .args([
            "pull",
            s(&root),
            "--from",
            &format!("http://{}", reg.host()),
            "-j",
            "2",
            "--retries",
            "1",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the registry as soon as the first tag has landed in ROOT.
    wait_for_a_tag(&root);
    reg.kill();
    let out = wait_with_deadline(child, Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot reach") || stderr.contains("stopped answering"),
        "{stderr}"
    );
    assert!(
        stderr.contains("not pulled"),
        "the rest is listed: {stderr}"
    );
    let first: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pulled = first["totals"]["pulled"].as_u64().unwrap();
    assert!(first["totals"]["failed"].as_u64().unwrap() > 0);
    // What was pulled is whole: the registry serves it.
    let partial = Registry::start(&root);
    let mut served = 0;
    for i in first["images"].as_array().unwrap() {
        if i["status"] == "pulled" {
            let name = i["name"].as_str().unwrap();
            let (repo, tag) = name.rsplit_once(':').unwrap();
            assert_eq!(manifest_status(&partial, repo, tag), 200, "{name}");
            served += 1;
        }
    }
    assert_eq!(served as u64, pulled);
    drop(partial);
    // The upstream again (another port): the rerun completes the tree.
    let reg = Registry::start(&up_root);
    let j = pull_json(&[s(&root), "--from", &format!("http://{}", reg.host())]);
    assert_eq!(j["totals"]["failed"], 0);
    assert_eq!(j["totals"]["up_to_date"].as_u64().unwrap(), pulled);
    assert_eq!(j["totals"]["images"], 120);
    let want = t.path().join("selected");
    selected(&up_root, &[], &[], &want);
    assert_same_tree(&root, &want);
}

/// Harbor's answer to `GET /api/v2.0/...?page=P&page_size=N`: page P of
/// `names` as `[{"name": ...}]`.
fn harbor_page(names: &[String], query: &str) -> Act {
    let arg = |k: &str| -> usize {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    let (page, size) = (arg("page"), arg("page_size"));
    let entries: Vec<Value> = names
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .map(|n| serde_json::json!({ "name": n }))
        .collect();
    Act::Reply {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: serde_json::to_vec(&entries).unwrap(),
    }
}

#[test]
fn pull_lists_a_harbors_projects_where_it_refuses_the_catalog() {
    let f = sample();
    let up = Upstream::of(f);
    let repos = up.reg.catalog();
    let mut projects: Vec<String> = repos
        .iter()
        .map(|r| r.split('/').next().unwrap().to_string())
        .collect();
    projects.dedup();
    let proxy = Proxy::start(up.reg.port, move |m, p| {
        let (path, query) = p.split_once('?').unwrap_or((p, ""));
        if m == "GET" && path == "/v2/_catalog" {
            return answer(403, &[]);
        }
        if path == "/api/v2.0/projects" {
            return harbor_page(&projects, query);
        }
        if let Some(project) = path
            .strip_prefix("/api/v2.0/projects/")
            .and_then(|r| r.strip_suffix("/repositories"))
        {
            let names: Vec<String> = repos
                .iter()
                .filter(|r| r.starts_with(&format!("{project}/")))
                .cloned()
                .collect();
            return harbor_page(&names, query);
        }
        Act::Forward
    });
    let t = tempdir();
    let mut checked = 0;
    for (from, below) in [
        (format!("{}/multi", proxy.dest()), true),
        (proxy.dest(), false),
    ] {
        let root = t.path().join(format!("root-{checked}"));
        let out = Command::new(regkit_path())
            .args(["pull", s(&root), "--from", &from, "--json"])
            .env("REGKIT_TEST_PAGE_SIZE", "2")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if !below {
            let want = t.path().join("selected");
            selected(&up.root(), &[], &[], &want);
            assert_same_tree(&root, &want);
        } else {
            // Below `multi`: stored without it.
            let j: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(j["totals"]["pulled"], 3);
            let names: Vec<&str> = j["images"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["name"].as_str().unwrap())
                .collect();
            assert_eq!(names, ["docker-list:1", "nested:1", "oci-index:1"]);
        }
        checked += 1;
    }
    let asked = proxy
        .seen()
        .iter()
        .filter(|x| x.path.starts_with("/api/v2.0/"))
        .count();
    assert!(asked >= 6, "Harbor's API was walked page by page: {asked}");
    assert_eq!(checked, 2);
}

#[test]
fn pull_interrupted_while_a_blob_stalls_exits_130_and_leaves_root_valid() {
    let f = sample();
    let up = Upstream::of(f);
    let proxy = Proxy::start(up.reg.port, |m, p| {
        if m == "GET" && p.contains("/blobs/") {
            Act::Stall
        } else {
            Act::Forward
        }
    });
    let t = tempdir();
    let root = t.path().join("root");
    let child = Command::new(regkit_path())
        .args([
            "pull",
            "team/app:v1",
            s(&root),
            "--from",
            &proxy.dest(),
            "--timeout",
            "10m",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !proxy.seen().iter().any(|x| x.path.contains("/blobs/")) {
        assert!(Instant::now() < deadline, "no blob was ever asked for");
        std::thread::sleep(Duration::from_millis(20));
    }
    interrupt(&child);
    let out = wait_with_deadline(child, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    // No tag, no link, no temporary file left.
    let files = files_under(&root);
    assert!(
        files.iter().all(|p| !p.contains("/_manifests/")
            && !p.contains("/_layers/")
            && !p.contains(".regkit-tmp")),
        "{files:?}"
    );
}

#[test]
fn two_pulls_into_one_root_at_once_both_finish_with_the_tree_select_writes() {
    let f = sample();
    let up = Upstream::of(f);
    let t = tempdir();
    let want = t.path().join("selected");
    selected(&up.root(), &[], &[], &want);
    let mut rounds = 0;
    for round in 0..8 {
        let root = t.path().join(format!("root{round}"));
        let start = || {
            Command::new(regkit_path())
                .args(["-q", "pull", s(&root), "--from", &up.from()])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (start(), start());
        for (name, child) in [("first", a), ("second", b)] {
            let o = child.wait_with_output().unwrap();
            assert!(
                o.status.success(),
                "round {round}, {name} pull: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        assert_same_tree(&root, &want);
        regkit(["-q", "verify", s(&root)]).ok();
        rounds += 1;
    }
    assert_eq!(rounds, 8);
}
