//! `regkit push` against the real registry: no auth, Basic auth over TLS,
//! the Bearer token flow with a token issuer, the registry dying in the
//! middle of a push, and a proxy in front of it that answers 503 and 429,
//! changes digests or stalls. Every result is read back with skopeo or GETs.

mod issuer;
mod proxy;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use proxy::{Act, Proxy};

use base64::Engine as _;
use serde_json::Value;

use crate::common::*;

/// `skopeo copy --all` from the destination; the sha256 of the top manifest.
fn copy_digest(src: &str, extra: &[&str]) -> String {
    let t = tempdir();
    let dst = format!("dir:{}", t.path().join("img").display());
    let mut args = vec!["copy", "--all", "-q"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[src, &dst]);
    let r = skopeo(&args);
    assert_eq!(r.code, 0, "skopeo copy {src}: {}", r.stderr);
    sha256_file(&t.path().join("img/manifest.json"))
}

/// GETs `repo`'s manifest `reference`, checks it hashes to `want`, then
/// every child manifest and every blob it names, recursively.
fn assert_served(reg: &Registry, repo: &str, reference: &str, want: &str) {
    let (status, body) = reg.get(&format!("/v2/{repo}/manifests/{reference}"));
    assert_eq!(status, 200, "GET {repo} manifest {reference}");
    assert_eq!(
        format!("sha256:{}", sha256_hex(&body)),
        want,
        "{repo}:{reference}"
    );
    let m: Value = serde_json::from_slice(&body).unwrap();
    for c in m["manifests"].as_array().into_iter().flatten() {
        let d = c["digest"].as_str().unwrap();
        assert_served(reg, repo, d, d);
    }
    let blobs = m["config"]
        .as_object()
        .map(|_| &m["config"])
        .into_iter()
        .chain(m["layers"].as_array().into_iter().flatten());
    for b in blobs {
        let d = b["digest"].as_str().unwrap();
        let (status, data) = reg.get(&format!("/v2/{repo}/blobs/{d}"));
        assert_eq!(status, 200, "GET {repo} blob {d}");
        assert_eq!(format!("sha256:{}", sha256_hex(&data)), d);
    }
}

fn split_ref(r: &str) -> (&str, &str) {
    r.rsplit_once(':').unwrap()
}

#[test]
fn push_without_auth_sends_every_image_exactly_then_nothing() {
    let src = sample();
    let before = Snapshot::take(&src.root);
    let dst = tempdir();
    let reg = Registry::start(dst.path());
    let root = src.root.to_str().unwrap();
    let host = reg.host();
    let args = [
        "push",
        root,
        &host,
        "--tls-verify=false",
        "--chunk-size",
        "16KiB",
        "--json",
    ];
    let j = regkit(args).ok().json();
    assert_eq!(j["auth"], "anonymous");
    assert_eq!(
        j["registry"],
        format!("http://{host}"),
        "https failed, http was tried"
    );
    let t = &j["totals"];
    assert_eq!(t["images"], src.images().len());
    assert_eq!(t["pushed"], src.images().len());
    assert!(t["blobs_chunked"].as_u64().unwrap() >= 1, "{t}");
    assert!(t["blobs_mounted"].as_u64().unwrap() >= 1, "{t}");

    for (r, digest, copyable) in src.images() {
        let (repo, tag) = split_ref(&r);
        assert_served(&reg, repo, tag, &digest);
        if copyable {
            let got = copy_digest(&format!("docker://{host}/{r}"), &["--src-tls-verify=false"]);
            assert_eq!(got, digest, "{r}");
        }
    }
    // The artifact still names its subject.
    let sig = src
        .images()
        .into_iter()
        .find(|(r, _, _)| r.ends_with(".sig"))
        .unwrap();
    let (_, body) = reg.get(&format!(
        "/v2/artifacts/app/manifests/{}",
        split_ref(&sig.0).1
    ));
    let m: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(m["subject"]["digest"], src.digest("artifacts/app:v1"));
    assert_eq!(Snapshot::take(&src.root), before, "ROOT was written to");

    // A second run finds everything there and sends nothing.
    let j = regkit(args).ok().json();
    let t = &j["totals"];
    assert_eq!(t["up_to_date"], src.images().len(), "{t}");
    assert_eq!(t["bytes_sent"], 0);
    assert_eq!(t["blobs_uploaded"], 0);
    assert_eq!(t["manifests_pushed"], 0);

    // --platform keeps one image of an index: that image is tagged, as
    // `skopeo copy` without --all does.
    let arm = &src.image("multi/oci-index:1")["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["platform"] == "linux/arm64/v8")
        .unwrap()["digest"];
    let one = [
        "push",
        root,
        &host,
        "--tls-verify=false",
        "--dest-prefix",
        "one",
        "multi/oci-index:1",
        "--platform",
        "linux/arm64",
    ];
    regkit(one).ok();
    assert_served(&reg, "one/multi/oci-index", "1", arm.as_str().unwrap());

    // An untagged referrer goes by digest.
    let untagged = &src.sidecar["untagged"].as_array().unwrap();
    let art = untagged
        .iter()
        .find(|u| u["repo"] == "artifacts/app")
        .unwrap();
    let d = art["digest"].as_str().unwrap();
    let r = regkit([
        "push",
        root,
        &host,
        "--tls-verify=false",
        &format!("artifacts/app@{d}"),
    ])
    .ok();
    assert!(r.stdout.contains("pushed 1 of 1"), "{}", r.stdout);
    assert_served(&reg, "artifacts/app", d, d);
}

/// A CA and a server certificate for 127.0.0.1 signed by it: (folder with
/// only `ca.crt`, server cert, server key).
pub fn make_tls(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let certs = dir.join("certs.d");
    fs::create_dir_all(&certs).unwrap();
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ca = certs.join("ca.crt");
    for args in [
        vec![
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=regkit-test-ca",
            "-keyout",
            &p("ca.key"),
            "-out",
            ca.to_str().unwrap(),
        ],
        vec![
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            &p("server.key"),
            "-out",
            &p("server.csr"),
        ],
        vec![
            "x509",
            "-req",
            "-in",
            &p("server.csr"),
            "-CA",
            ca.to_str().unwrap(),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &p("ext.cnf"),
            "-out",
            &p("server.crt"),
        ],
    ] {
        let r = run_cmd("openssl", &args);
        assert_eq!(r.code, 0, "openssl {args:?}: {}", r.stderr);
    }
    (certs, dir.join("server.crt"), dir.join("server.key"))
}

fn auth_json(host: &str, user: &str, pass: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    format!(r#"{{"auths": {{"{host}": {{"auth": "{b64}"}}}}}}"#)
}

const SUBSET: [&str; 5] = [
    "library/alpine:3.19",
    "team/app:v1",
    "team/app:v2",
    "multi/docker-list:1",
    "artifacts/app",
];

#[test]
fn push_with_basic_auth_over_tls() {
    let src = sample();
    let t = tempdir();
    let (certs, crt, key) = make_tls(t.path());
    let htpasswd = t.path().join("htpasswd");
    let r = run_cmd(
        "htpasswd",
        &["-Bbc", htpasswd.to_str().unwrap(), "alice", "s3cret"],
    );
    assert_eq!(r.code, 0, "htpasswd (apache2-utils): {}", r.stderr);
    let dst = t.path().join("dst");
    let reg = Registry::start_custom(
        &dst,
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
    let host = reg.host();
    let root = src.root.to_str().unwrap();
    let certs_s = certs.to_str().unwrap();
    // No credentials anywhere: HOME and XDG folders are empty.
    let empty = t.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    let env = [
        ("HOME", empty.as_path()),
        ("XDG_RUNTIME_DIR", empty.as_path()),
        ("XDG_CONFIG_HOME", empty.as_path()),
    ];

    // An unknown CA is refused, with the way out.
    let r = regkit_env(
        &[
            "push",
            root,
            &host,
            "team/app:v1",
            "--creds",
            "alice:s3cret",
        ],
        &env,
    )
    .fails(1);
    assert!(r.stderr.contains("TLS with 127.0.0.1"), "{}", r.stderr);
    assert!(r.stderr.contains("--cert-dir"), "{}", r.stderr);

    // No credentials, then a wrong password from --authfile: clear errors.
    let r = regkit_env(
        &["push", root, &host, "team/app:v1", "--cert-dir", certs_s],
        &env,
    )
    .fails(1);
    assert!(
        r.stderr
            .contains("asks for credentials and none were found"),
        "{}",
        r.stderr
    );
    let wrong = t.path().join("wrong.json");
    fs::write(&wrong, auth_json(&host, "alice", "wrong")).unwrap();
    let r = regkit_env(
        &[
            "push",
            root,
            &host,
            "team/app:v1",
            "--cert-dir",
            certs_s,
            "--authfile",
            wrong.to_str().unwrap(),
        ],
        &env,
    )
    .fails(1);
    assert!(
        r.stderr.contains("refused the credentials of user `alice`"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("images failed"),
        "stopped before any image: {}",
        r.stderr
    );

    // Right: the CA from --cert-dir, --creds.
    let mut args = vec![
        "push",
        root,
        &host,
        "--cert-dir",
        certs_s,
        "--creds",
        "alice:s3cret",
        "--chunk-size",
        "16KiB",
        "--json",
    ];
    args.extend(SUBSET);
    let j = regkit_env(&args, &env).ok().json();
    assert_eq!(j["auth"], "basic");
    assert_eq!(j["registry"], format!("https://{host}"));
    assert_eq!(j["totals"]["failed"], 0);

    // --tls-verify=false, credentials from $XDG_RUNTIME_DIR/containers/auth.json,
    // into another namespace.
    let xdg = t.path().join("xdg");
    fs::create_dir_all(xdg.join("containers")).unwrap();
    fs::write(
        xdg.join("containers/auth.json"),
        auth_json(&host, "alice", "s3cret"),
    )
    .unwrap();
    let env2 = [
        ("HOME", empty.as_path()),
        ("XDG_RUNTIME_DIR", xdg.as_path()),
    ];
    let mut args = vec![
        "push",
        root,
        &host,
        "--tls-verify=false",
        "--dest-prefix",
        "again/",
    ];
    args.extend(SUBSET);
    regkit_env(&args, &env2).ok();

    let copy = ["--src-cert-dir", certs_s, "--src-creds", "alice:s3cret"];
    for (r, digest, _) in src.images() {
        if !SUBSET
            .iter()
            .any(|s| r == *s || r.starts_with(&format!("{s}:")))
        {
            continue;
        }
        assert_eq!(
            copy_digest(&format!("docker://{host}/{r}"), &copy),
            digest,
            "{r}"
        );
        assert_eq!(
            copy_digest(&format!("docker://{host}/again/{r}"), &copy),
            digest,
            "again/{r}"
        );
    }
}

#[test]
fn push_with_bearer_tokens_from_a_token_issuer() {
    let src = sample();
    let t = tempdir();
    let issuer = issuer::Issuer::start(t.path(), "alice", "s3cret", "nope");
    let dst = t.path().join("dst");
    let reg = Registry::start_custom(&dst, "", &issuer.registry_yaml());
    let host = reg.host();
    let root = src.root.to_str().unwrap();
    let mut args = vec![
        "push",
        root,
        &host,
        "--tls-verify=false",
        "--creds",
        "alice:s3cret",
        "--json",
    ];
    args.extend(SUBSET);
    let j = regkit(&args).ok().json();
    assert_eq!(j["auth"], "bearer");
    // team/app:v1 shares its base layer with library/alpine: mounted, with a
    // token that also grants pull on the source repository.
    assert!(
        j["totals"]["blobs_mounted"].as_u64().unwrap() >= 1,
        "{}",
        j["totals"]
    );
    let asked = issuer.requests.load(std::sync::atomic::Ordering::SeqCst);
    assert!(asked >= 2, "tokens were asked for: {asked}");
    // Tokens are reused: far fewer than the requests made.
    assert!(asked < 20, "one token per scope, reused: {asked}");

    let copy = ["--src-tls-verify=false", "--src-creds", "alice:s3cret"];
    for (r, digest, _) in src.images() {
        if SUBSET
            .iter()
            .any(|s| r == *s || r.starts_with(&format!("{s}:")))
        {
            assert_eq!(
                copy_digest(&format!("docker://{host}/{r}"), &copy),
                digest,
                "{r}"
            );
        }
    }
    let j = regkit(&args).ok().json();
    assert_eq!(j["totals"]["up_to_date"], j["totals"]["images"]);

    // A wrong password: refused by the token service, at once.
    let r = regkit([
        "push",
        root,
        &host,
        "--tls-verify=false",
        "--creds",
        "alice:nope",
        "team/app:v1",
    ])
    .fails(1);
    assert!(
        r.stderr.contains("refused the credentials of user `alice`"),
        "{}",
        r.stderr
    );

    // A project the account has no access to (as Harbor answers for a
    // project that does not exist): each image fails, naming the project.
    let r = regkit([
        "push",
        root,
        &host,
        "--tls-verify=false",
        "--creds",
        "alice:s3cret",
        "--dest-prefix",
        "nope/",
        "team/app:v1",
        "library/alpine:3.19",
    ])
    .fails(1);
    assert!(
        r.stderr.contains("denied push to `nope/team/app`"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("create the project `nope`"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("2 of 2 images failed"), "{}", r.stderr);
}

#[test]
fn push_resumes_after_the_destination_dies_midway() {
    let t = tempdir();
    let src = t.path().join("src");
    let script = repo_dir().join("scripts/fixture.py");
    let r = run_cmd(
        "python3",
        &[
            script.to_str().unwrap(),
            "generate",
            "bench",
            "--tags",
            "120",
            src.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let sidecar: Value =
        serde_json::from_slice(&fs::read(t.path().join("src.json")).unwrap()).unwrap();
    let dst = t.path().join("dst");
    let mut reg = Registry::start(&dst);
    let host = reg.host();
    let child = Command::new(regkit_path())
        .args([
            "push",
            src.to_str().unwrap(),
            &host,
            "--tls-verify=false",
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
    // Kill the registry as soon as the first tag has landed.
    let repos = dst.join("docker/registry/v2/repositories");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let tagged = walkdir::WalkDir::new(&repos)
            .into_iter()
            .filter_map(|e| e.ok())
            .any(|e| {
                e.file_name() == "link" && e.path().parent().is_some_and(|p| p.ends_with("current"))
            });
        if tagged {
            break;
        }
        assert!(Instant::now() < deadline, "no tag was ever pushed");
        std::thread::sleep(Duration::from_millis(5));
    }
    reg.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot reach") || stderr.contains("stopped answering"),
        "{stderr}"
    );
    assert!(stderr.contains("run again"), "{stderr}");
    let first: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(first["totals"]["failed"].as_u64().unwrap() > 0);

    // The same storage served again (on another port): the rerun completes.
    let reg = Registry::start(&dst);
    let host = reg.host();
    let j = regkit([
        "push",
        src.to_str().unwrap(),
        &host,
        "--tls-verify=false",
        "--json",
    ])
    .ok()
    .json();
    assert_eq!(j["totals"]["failed"], 0);
    assert!(
        j["totals"]["up_to_date"].as_u64().unwrap() >= 1,
        "the first tag was kept"
    );
    let images = sidecar["images"].as_array().unwrap();
    assert_eq!(images.len(), 120);
    for i in images {
        let (r, d) = (i["ref"].as_str().unwrap(), i["digest"].as_str().unwrap());
        let (repo, tag) = split_ref(r);
        assert_served(&reg, repo, tag, d);
    }
    for i in [&images[0], &images[7], &images[119]] {
        let r = i["ref"].as_str().unwrap();
        let got = copy_digest(&format!("docker://{host}/{r}"), &["--src-tls-verify=false"]);
        assert_eq!(got, i["digest"].as_str().unwrap(), "{r}");
    }
}

#[test]
fn push_reports_each_refused_image_and_pushes_the_others() {
    // Schema1 (stored without its signature) and a foreign layer (not in
    // storage, URLs not allowed by the destination) are refused by the
    // registry; the five other images of `edge` are pushed.
    let src = edge();
    let dst = tempdir();
    let reg = Registry::start(dst.path());
    let root = src.root.to_str().unwrap();
    let r = regkit([
        "push",
        root,
        &reg.host(),
        "--tls-verify=false",
        "--retries",
        "0",
    ])
    .fails(1);
    assert!(r.stderr.contains("= image: legacy/old:1.0"), "{}", r.stderr);
    assert!(r.stderr.contains("schema1"), "{}", r.stderr);
    assert!(
        r.stderr.contains("= image: win/foreign:ltsc2019"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("foreign layer"), "{}", r.stderr);
    assert!(r.stderr.contains("2 of 7 images failed"), "{}", r.stderr);
    assert!(r.stdout.contains("pushed 5 of 7"), "{}", r.stdout);
    for (r, digest, _) in src.images() {
        if !r.starts_with("legacy/") && !r.starts_with("win/") {
            let (repo, tag) = split_ref(&r);
            assert_served(&reg, repo, tag, &digest);
        }
    }
}

/// The image the proxy tests push: an OCI image of three small blobs.
const DEEP: &str = "a/b/c/deep:1.0";

/// A rule answering the first request `method path*` with `act`, and
/// passing everything else on.
fn first(
    method: &'static str,
    path_has: &'static str,
    act: impl Fn() -> Act + Send + Sync + 'static,
) -> impl Fn(&str, &str) -> Act + Send + Sync + 'static {
    let n = AtomicUsize::new(0);
    move |m, p| {
        if m == method && p.contains(path_has) && n.fetch_add(1, Ordering::SeqCst) == 0 {
            act()
        } else {
            Act::Forward
        }
    }
}

fn answer(status: u16, headers: &[(&str, &str)]) -> Act {
    Act::Answer {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// Reads every blob PUT and never answers it.
fn stall_blob_puts(method: &str, path: &str) -> Act {
    if method == "PUT" && path.contains("/blobs/uploads/") {
        Act::Stall
    } else {
        Act::Forward
    }
}

/// A blob upload's PUT, the one that carries the bytes or ends the upload.
fn is_blob_put(s: &proxy::Seen) -> bool {
    s.method == "PUT" && s.path.contains("/blobs/uploads/")
}

#[test]
fn push_tries_the_ping_again_after_a_503() {
    let src = sample();
    let dst = tempdir();
    let reg = Registry::start(dst.path());
    let proxy = Proxy::start(reg.port, first("GET", "/v2/", || answer(503, &[])));
    let root = src.root.to_str().unwrap();
    regkit(["push", root, &proxy.dest(), DEEP]).ok();
    let pings: Vec<u16> = proxy
        .seen()
        .iter()
        .filter(|s| s.path == "/v2/")
        .map(|s| s.status)
        .collect();
    assert_eq!(pings, [503, 200], "one 503, then the ping again");
    let (repo, tag) = split_ref(DEEP);
    assert_served(&reg, repo, tag, &src.digest(DEEP));
}

#[test]
fn push_refuses_a_blob_the_registry_stored_under_another_digest() {
    let src = sample();
    let dst = tempdir();
    let reg = Registry::start(dst.path());
    let wrong = format!("sha256:{}", "0".repeat(64));
    let value = wrong.clone();
    let proxy = Proxy::start(reg.port, move |m, p| {
        if m == "PUT" && p.contains("/blobs/uploads/") {
            Act::Rewrite {
                header: "Docker-Content-Digest".into(),
                value: value.clone(),
            }
        } else {
            Act::Forward
        }
    });
    let root = src.root.to_str().unwrap();
    let r = regkit(["push", root, &proxy.dest(), DEEP, "--retries", "0"]).fails(1);
    assert!(
        r.stderr.contains(&format!(
            "the registry stored the blob as {wrong}, not sha256:"
        )),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!("= image: {DEEP}")),
        "{}",
        r.stderr
    );
    let puts = proxy.seen().iter().filter(|s| is_blob_put(s)).count();
    assert!(puts >= 1, "{puts} blob PUTs");
    let (repo, tag) = split_ref(DEEP);
    assert_eq!(
        manifest_status(&reg, repo, tag),
        404,
        "no tag for an image whose blob is wrong"
    );
}

#[test]
fn push_waits_the_retry_after_a_429_names() {
    let src = sample();
    let dst = tempdir();
    let reg = Registry::start(dst.path());
    let proxy = Proxy::start(
        reg.port,
        first("POST", "/blobs/uploads/", || {
            answer(429, &[("Retry-After", "1")])
        }),
    );
    let root = src.root.to_str().unwrap();
    // One blob at a time: the request after the 429 is its retry.
    regkit(["push", root, &proxy.dest(), DEEP, "-j", "1"]).ok();
    let seen = proxy.seen();
    let refused: Vec<usize> = (0..seen.len()).filter(|&i| seen[i].status == 429).collect();
    assert_eq!(refused.len(), 1, "{seen:#?}");
    let (limited, next) = (&seen[refused[0]], &seen[refused[0] + 1]);
    assert!(
        next.at.duration_since(limited.at) >= Duration::from_secs(1),
        "the retry came {:?} after the 429: {seen:#?}",
        next.at.duration_since(limited.at)
    );
    let (repo, tag) = split_ref(DEEP);
    assert_served(&reg, repo, tag, &src.digest(DEEP));
}

#[test]
fn push_failure_summary_counts_the_bytes_the_registry_received() {
    // One blob PUT is read and answered 500 (sent again), every manifest
    // PUT is refused with 400: the image fails, and the summary's bytes
    // are every request body the registry side read, manifests included.
    let src = sample();
    let dst = tempdir();
    let reg = Registry::start(dst.path());
    let failed_once = AtomicUsize::new(0);
    let proxy = Proxy::start(reg.port, move |m, p| {
        if m == "PUT" && p.contains("/manifests/") {
            answer(400, &[])
        } else if m == "PUT"
            && p.contains("/blobs/uploads/")
            && failed_once.fetch_add(1, Ordering::SeqCst) == 0
        {
            answer(500, &[])
        } else {
            Act::Forward
        }
    });
    let root = src.root.to_str().unwrap();
    let r = regkit(["push", root, &proxy.dest(), DEEP, "--json"]).fails(1);
    let j = r.json();
    let seen = proxy.seen();
    let received: u64 = seen.iter().map(|s| s.body).sum();
    let manifest_bytes: u64 = seen
        .iter()
        .filter(|s| s.path.contains("/manifests/"))
        .map(|s| s.body)
        .sum();
    assert!(manifest_bytes > 0, "a manifest was sent: {seen:#?}");
    assert!(
        seen.iter()
            .any(|s| is_blob_put(s) && s.status == 500 && s.body > 0),
        "a blob was sent twice: {seen:#?}"
    );
    assert_eq!(j["totals"]["bytes_sent"], received, "{}", r.stdout);
    assert_eq!(j["totals"]["failed"], 1);
}

#[test]
fn push_gives_up_on_a_registry_that_stalls_naming_it_and_the_image() {
    let src = sample();
    let dst = tempdir();
    let reg = Registry::start(dst.path());
    let proxy = Proxy::start(reg.port, stall_blob_puts);
    let root = src.root.to_str().unwrap();
    let r = regkit([
        "push",
        root,
        &proxy.dest(),
        DEEP,
        "--timeout",
        "2s",
        "--retries",
        "1",
    ])
    .fails(1);
    let host = format!("127.0.0.1:{}", proxy.port);
    assert!(
        r.stderr.contains("the registry sent nothing for 2 s"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(&format!("PUT http://{host}/v2/a/b/c/deep/blobs/uploads/")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!("= image: {DEEP}")),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--timeout"), "{}", r.stderr);
    let stalled = proxy.seen().iter().filter(|s| is_blob_put(s)).count();
    assert!(stalled >= 2, "one try and one retry: {stalled} PUTs");
}

#[test]
fn push_interrupted_while_the_registry_stalls_exits_130() {
    let src = sample();
    let dst = tempdir();
    let reg = Registry::start(dst.path());
    let proxy = Proxy::start(reg.port, stall_blob_puts);
    let root = src.root.to_str().unwrap();
    // A stall timeout far beyond the test's patience: only Ctrl-C can end
    // the wait.
    let child = Command::new(regkit_path())
        .args(["push", root, &proxy.dest(), DEEP, "--timeout", "10m"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !proxy.seen().iter().any(|s| is_blob_put(s) && s.body > 0) {
        assert!(Instant::now() < deadline, "no blob was ever sent");
        std::thread::sleep(Duration::from_millis(20));
    }
    interrupt(&child);
    let out = wait_with_deadline(child, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
}

#[test]
fn push_runs_the_credential_helpers_a_docker_config_names() {
    let src = sample();
    let t = tempdir();
    let htpasswd = t.path().join("htpasswd");
    let r = run_cmd(
        "htpasswd",
        &["-Bbc", htpasswd.to_str().unwrap(), "alice", "s3cret"],
    );
    assert_eq!(r.code, 0, "htpasswd (apache2-utils): {}", r.stderr);
    let reg = Registry::start_with(
        &t.path().join("dst"),
        &format!(
            "auth:\n  htpasswd:\n    realm: regkit-test\n    path: {}\n",
            htpasswd.display()
        ),
    );
    let host = reg.host();
    // Two helpers, as docker-credential-helpers' programs behave: one
    // knows alice for this registry, one knows nothing. Each logs what it
    // was asked.
    let bin = t.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    let log = t.path().join("helper.log");
    for (name, answer) in [
        (
            "regkit-test",
            format!(
                r#"if [ "$server" = "{host}" ]; then printf '{{"ServerURL":"%s","Username":"alice","Secret":"s3cret"}}' "$server"; else echo "credentials not found in native keychain"; exit 1; fi"#
            ),
        ),
        (
            "regkit-empty",
            "echo \"credentials not found in native keychain\"; exit 1".to_string(),
        ),
    ] {
        let script = bin.join(format!("docker-credential-{name}"));
        fs::write(
            &script,
            format!(
                "#!/bin/sh\n[ \"$1\" = get ] || exit 3\nserver=$(cat)\necho \"{name} get $server\" >> {}\n{answer}\n",
                log.display()
            ),
        )
        .unwrap();
        run_cmd("chmod", &["+x", script.to_str().unwrap()]).ok();
    }
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let empty = t.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    let root = src.root.to_str().unwrap();
    let dest = format!("http://{host}");
    let cases = [
        (
            format!(r#"{{"credHelpers": {{"{host}": "regkit-test"}}}}"#),
            "regkit-test",
            None,
        ),
        (
            r#"{"credsStore": "regkit-test"}"#.to_string(),
            "regkit-test",
            None,
        ),
        (
            r#"{"credsStore": "regkit-empty"}"#.to_string(),
            "regkit-empty",
            Some("asks for credentials and none were found"),
        ),
        (
            format!(r#"{{"credHelpers": {{"{host}": "regkit-absent"}}}}"#),
            "",
            Some("`docker-credential-regkit-absent` that this file names is not on PATH"),
        ),
    ];
    let mut checked = 0;
    for (i, (config, helper, failure)) in cases.iter().enumerate() {
        // Found where docker looks: $DOCKER_CONFIG/config.json.
        let dir = t.path().join(format!("docker-{i}"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("config.json"), config).unwrap();
        let _ = fs::remove_file(&log);
        let env = [
            ("HOME", empty.as_path()),
            ("XDG_RUNTIME_DIR", empty.as_path()),
            ("XDG_CONFIG_HOME", empty.as_path()),
            ("DOCKER_CONFIG", dir.as_path()),
            ("PATH", Path::new(&path)),
        ];
        let tag = "team/app:v1";
        let r = regkit_env(
            &["push", root, &dest, tag, "--dest-prefix", &format!("c{i}")],
            &env,
        );
        match failure {
            None => {
                r.ok();
                let got = copy_digest(
                    &format!("docker://{host}/c{i}/{tag}"),
                    &["--src-tls-verify=false", "--src-creds", "alice:s3cret"],
                );
                assert_eq!(got, src.digest(tag), "{config}");
            }
            Some(message) => {
                let r = r.fails(1);
                assert!(r.stderr.contains(message), "{config}: {}", r.stderr);
            }
        }
        let asked = fs::read_to_string(&log).unwrap_or_default();
        if helper.is_empty() {
            assert_eq!(asked, "", "{config}");
        } else {
            assert_eq!(
                asked,
                format!("{helper} get {host}\n"),
                "{config}: asked once, for {host}"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 4);
}
