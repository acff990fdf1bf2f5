//! `regkit serve` over a tree and over bundles (regkit's .tar, .tar.gz,
//! .tar.zst and a plain `tar -czf`), pulled by skopeo and containerd and
//! checked header by header with raw HTTP; and "a bundle is a ROOT": the
//! reading commands give from a bundle what they give from its tree.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

/// A running `regkit serve`, stopped with SIGINT when dropped.
struct Serve {
    child: Option<Child>,
    port: u16,
    started: Value,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Serve {
    fn start(root: &Path, extra: &[&str]) -> Serve {
        let dir = tempdir();
        let log = dir.path().join("serve.log");
        let mut child = Command::new(regkit_path())
            .arg("serve")
            .arg(root)
            .args(["--addr", "127.0.0.1:0", "--json"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("start regkit serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let started: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            let _ = child.kill();
            panic!(
                "no start-up line ({e}): {line:?}\n{}",
                fs::read_to_string(&log).unwrap_or_default()
            )
        });
        let port = started["address"]
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        Serve {
            child: Some(child),
            port,
            started,
            log,
            _dir: dir,
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        raw(self.port, "GET", path, headers)
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the server as Ctrl-C does; its exit code.
    fn stop(&mut self) -> i32 {
        let child = self.child.take().expect("running");
        interrupt(&child);
        let out = wait_with_deadline(child, Duration::from_secs(30));
        out.status.code().unwrap_or(-1)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One HTTP/1.1 reply.
struct Reply {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    /// The body ended before its Content-Length.
    short: bool,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The registry error code of an error reply.
    fn code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

/// Every manifest type, as containerd and skopeo ask.
const ALL_TYPES: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

/// A raw request with `Connection: close`.
fn raw(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if matches!(method, "PUT" | "POST" | "PATCH") {
        req.push_str("Content-Length: 2\r\n\r\n{}");
    } else {
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a reply head");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let headers: BTreeMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = buf[split + 4..].to_vec();
    let short = method != "HEAD"
        && headers
            .get("content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .is_some_and(|n| n > body.len());
    Reply {
        status,
        headers,
        body,
        short,
    }
}

/// The roots one suite runs over: the tree, regkit's bundles in every
/// compression, and plain archives of the tree made with tar.
fn roots(dir: &Path, kinds: &[&str]) -> Vec<(String, PathBuf)> {
    let src = sample();
    let mut out = Vec::new();
    for kind in kinds {
        let p = dir.join(kind);
        match *kind {
            "tree" => out.push((kind.to_string(), src.root.clone())),
            "bundle.tar" | "bundle.tar.gz" | "bundle.tar.zst" => {
                regkit([
                    "pack",
                    src.root.to_str().unwrap(),
                    p.to_str().unwrap(),
                    "-q",
                ])
                .ok();
                out.push((kind.to_string(), p));
            }
            "docker.tar.gz" | "docker.tar.zst" | "dot.tar" => {
                // As people make them: `tar -czf docker.tar.gz docker`,
                // `tar -C /var/lib/registry -cf r.tar .`.
                let (flags, what) = match *kind {
                    "docker.tar.gz" => ("-czf", "docker"),
                    "docker.tar.zst" => ("--zstd -cf", "docker"),
                    _ => ("-cf", "."),
                };
                let flags: Vec<&str> = flags.split(' ').collect();
                let (root, archive) = (src.root.to_str().unwrap(), p.to_str().unwrap());
                let mut args = vec!["-C", root];
                args.extend(&flags);
                args.extend([archive, what]);
                run_cmd("tar", &args).ok();
                out.push((kind.to_string(), p));
            }
            other => panic!("no root kind {other}"),
        }
    }
    out
}

fn blob_bytes(digest: &str) -> Vec<u8> {
    fs::read(blob_path(&sample().root, digest)).unwrap()
}

/// Images of the sample fixture that cover each manifest kind.
const KINDS: [&str; 6] = [
    "library/alpine:3.19",
    "team/app:v2",
    "a/b/c/deep:1.0",
    "multi/docker-list:1",
    "multi/oci-index:1",
    "artifacts/app:v1",
];

#[test]
fn skopeo_copies_every_image_with_its_digest_from_a_tree_and_from_bundles() {
    let t = tempdir();
    let src = sample();
    let mut checked = 0;
    for (kind, root) in roots(
        t.path(),
        &[
            "tree",
            "bundle.tar",
            "bundle.tar.gz",
            "bundle.tar.zst",
            "docker.tar.gz",
        ],
    ) {
        let s = Serve::start(&root, &[]);
        // Every copyable tag from the tree and the uncompressed bundle;
        // one image of each kind from the others.
        let images: Vec<(String, String)> = src
            .images()
            .into_iter()
            .filter(|(r, _, copyable)| {
                *copyable && (kind == "tree" || kind == "bundle.tar" || KINDS.contains(&r.as_str()))
            })
            .map(|(r, d, _)| (r, d))
            .collect();
        assert!(images.len() >= KINDS.len(), "{kind}: {}", images.len());
        for (r, d) in &images {
            let got = skopeo_copy_all(&format!("docker://{}/{r}", s.host()))
                .unwrap_or_else(|e| panic!("{kind}: skopeo copy {r}: {e}"));
            assert_eq!(&got, d, "{kind}: {r}");
            checked += 1;
        }
    }
    // 39 copyable tags twice, 6 kinds three times.
    assert!(checked >= 2 * 30 + 3 * 6, "{checked}");
}

#[test]
fn containerd_pulls_over_plain_http_and_over_tls_with_a_ca_made_here() {
    let t = tempdir();
    let src = sample();
    let (certs, crt, key) = crate::push::make_tls(t.path());
    let ca = certs.join("ca.crt");
    let ca = ca.as_path();
    let c = Containerd::start();
    let mut pulled = 0;
    for (kind, root) in roots(t.path(), &["tree", "bundle.tar"]) {
        let plain = Serve::start(&root, &[]);
        let tls = Serve::start(
            &root,
            &[
                "--tls-cert",
                crt.to_str().unwrap(),
                "--tls-key",
                key.to_str().unwrap(),
            ],
        );
        assert_eq!(tls.started["tls"], true);
        // ctr talks plain http to 127.0.0.1 unless a hosts.toml says https
        // (containerd's hosts configuration, as a site would write it).
        let hosts = |name: &str, ca: Option<&Path>| -> PathBuf {
            let dir = t.path().join(format!("{kind}-{name}"));
            fs::create_dir_all(dir.join(tls.host())).unwrap();
            let ca = ca.map_or(String::new(), |c| format!("  ca = \"{}\"\n", c.display()));
            fs::write(
                dir.join(tls.host()).join("hosts.toml"),
                format!(
                    "server = \"https://{0}\"\n[host.\"https://{0}\"]\n  capabilities = [\"pull\", \"resolve\"]\n{ca}",
                    tls.host()
                ),
            )
            .unwrap();
            dir
        };
        let with_ca = hosts("ca", Some(ca));
        let without_ca = hosts("no-ca", None);
        for r in ["team/app:v1", "multi/oci-index:1", "multi/docker-list:1"] {
            for (s, flags) in [
                (&plain, vec!["--plain-http"]),
                (&tls, vec!["--hosts-dir", with_ca.to_str().unwrap()]),
            ] {
                let name = format!("{}/{r}", s.host());
                let mut args = vec!["images", "pull", "--all-platforms"];
                args.extend(flags.iter().copied());
                args.push(&name);
                let run = c.ctr(&args);
                assert_eq!(
                    run.code, 0,
                    "{kind}: ctr pull {name}: {}{}",
                    run.stdout, run.stderr
                );
                assert_eq!(
                    c.images().get(&name),
                    Some(&src.digest(r)),
                    "{kind}: {name}"
                );
                pulled += 1;
            }
        }
        // Without the CA, the certificate is refused.
        let name = format!("{}/team/app:v2", tls.host());
        let run = c.ctr(&[
            "images",
            "pull",
            "--hosts-dir",
            without_ca.to_str().unwrap(),
            &name,
        ]);
        assert_ne!(
            run.code, 0,
            "{kind}: pulled over TLS without trusting the CA"
        );
        assert!(run.stderr.contains("x509"), "{kind}: {}", run.stderr);
    }
    assert_eq!(pulled, 2 * 3 * 2);
}

/// The pull API, header by header, over one root.
fn check_raw_api(kind: &str, s: &Serve, referrers: usize) -> usize {
    let src = sample();
    let mut n = 0;
    let mut ok = |cond: bool, what: &str| {
        assert!(cond, "{kind}: {what}");
        n += 1;
    };
    let accept = [("Accept", ALL_TYPES)];

    let base = s.get("/v2/", &[]);
    ok(base.status == 200, "GET /v2/ is 200");
    ok(
        base.header("docker-distribution-api-version") == "registry/2.0",
        "API version header",
    );

    // Manifests by tag and digest: the stored bytes and their headers.
    for r in KINDS {
        let img = src.image(r);
        let (repo, tag) = r.split_once(':').unwrap();
        let digest = img["digest"].as_str().unwrap();
        let bytes = blob_bytes(digest);
        for reference in [tag, digest] {
            let path = format!("/v2/{repo}/manifests/{reference}");
            let g = s.get(&path, &accept);
            ok(g.status == 200, &format!("GET {path}"));
            ok(g.body == bytes, &format!("{path}: the stored bytes"));
            ok(
                g.header("content-type") == img["media_type"].as_str().unwrap(),
                &format!("{path}: Content-Type"),
            );
            ok(
                g.header("docker-content-digest") == digest,
                "Docker-Content-Digest",
            );
            ok(
                g.header("content-length") == bytes.len().to_string(),
                "Content-Length",
            );
            ok(g.header("etag") == format!("\"{digest}\""), "ETag");
            let h = raw(s.port, "HEAD", &path, &accept);
            ok(h.status == 200 && h.body.is_empty(), "HEAD has no body");
            ok(
                h.header("content-length") == bytes.len().to_string(),
                "HEAD Content-Length",
            );
            ok(h.header("docker-content-digest") == digest, "HEAD digest");
            let etag = format!("\"{digest}\"");
            let nm = s.get(&path, &[("Accept", ALL_TYPES), ("If-None-Match", &etag)]);
            ok(
                nm.status == 304 && nm.body.is_empty(),
                "If-None-Match gives 304",
            );
        }
    }
    // Accept as distribution: an OCI index needs its type named; a Docker
    // list asked for by tag without the list type is its linux/amd64 image.
    let oci = s.get(
        "/v2/multi/oci-index/manifests/1",
        &[(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )],
    );
    ok(
        oci.status == 404 && oci.code() == "MANIFEST_UNKNOWN",
        "OCI index without Accept",
    );
    let list = src.image("multi/docker-list:1");
    let amd64 = list["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["platform"] == "linux/amd64")
        .unwrap()["digest"]
        .as_str()
        .unwrap();
    let old = s.get(
        "/v2/multi/docker-list/manifests/1",
        &[(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )],
    );
    ok(
        old.status == 200 && old.header("docker-content-digest") == amd64,
        "a list by tag to an old client is its amd64 image",
    );

    // Blobs: whole, ranges, 416, ETag.
    let layer = src.image("team/app:v2")["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let bytes = blob_bytes(&layer);
    let size = bytes.len();
    let path = format!("/v2/team/app/blobs/{layer}");
    let g = s.get(&path, &[]);
    ok(g.status == 200 && g.body == bytes && !g.short, "blob GET");
    ok(
        g.header("docker-content-digest") == layer,
        "blob digest header",
    );
    ok(
        g.header("content-length") == size.to_string(),
        "blob Content-Length",
    );
    ok(g.header("accept-ranges") == "bytes", "Accept-Ranges");
    let h = raw(s.port, "HEAD", &path, &[]);
    ok(
        h.status == 200 && h.header("content-length") == size.to_string(),
        "blob HEAD",
    );
    for (range, first, last) in [
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, size - 1),
        ("bytes=-10", size - 10, size - 1),
        (&format!("bytes=5-{}", size + 50) as &str, 5, size - 1),
    ] {
        let r = s.get(&path, &[("Range", range)]);
        ok(r.status == 206, &format!("{range}: 206"));
        ok(
            r.body == bytes[first..=last],
            &format!("{range}: the bytes"),
        );
        ok(
            r.header("content-range") == format!("bytes {first}-{last}/{size}"),
            &format!("{range}: Content-Range"),
        );
    }
    let r = s.get(&path, &[("Range", &format!("bytes={size}-"))]);
    ok(r.status == 416, "unsatisfiable range: 416");
    ok(
        r.header("content-range") == format!("bytes */{size}"),
        "416 Content-Range",
    );
    let etag = format!("\"{layer}\"");
    ok(
        s.get(&path, &[("If-None-Match", &etag)]).status == 304,
        "blob 304",
    );

    // Tags, sorted, paged with Link until the end.
    let want: Vec<String> = {
        let mut v: Vec<String> = src
            .images()
            .iter()
            .filter_map(|(r, _, _)| r.strip_prefix("many/tags:").map(str::to_string))
            .collect();
        v.sort();
        v
    };
    let all = s.get("/v2/many/tags/tags/list", &[]).json();
    let listed: Vec<String> = all["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    ok(
        listed == want && want.len() == 30,
        "tags/list sorted, all tags",
    );
    let mut paged = Vec::new();
    let mut next = Some("/v2/many/tags/tags/list?n=7".to_string());
    let mut pages = 0;
    while let Some(url) = next.take() {
        let r = s.get(&url, &[]);
        ok(r.status == 200, &format!("GET {url}"));
        let page = r.json();
        let tags = page["tags"].as_array().unwrap();
        ok(tags.len() <= 7, "a page has at most n tags");
        paged.extend(tags.iter().map(|t| t.as_str().unwrap().to_string()));
        let link = r.header("link");
        if !link.is_empty() {
            ok(link.ends_with("; rel=\"next\""), "Link rel=next");
            next = Some(link[1..link.find('>').unwrap()].to_string());
        }
        pages += 1;
    }
    ok(
        paged == want && pages == 5,
        "pages of 7 give the 30 tags in 5 pages",
    );
    let last = s
        .get(&format!("/v2/many/tags/tags/list?last={}", want[14]), &[])
        .json();
    ok(
        last["tags"].as_array().unwrap().len() == 15,
        "last= skips up to it",
    );

    // _catalog likewise.
    let mut repos = Vec::new();
    let mut next = Some("/v2/_catalog?n=3".to_string());
    while let Some(url) = next.take() {
        let r = s.get(&url, &[]);
        repos.extend(
            r.json()["repositories"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string()),
        );
        let link = r.header("link");
        if !link.is_empty() {
            next = Some(link[1..link.find('>').unwrap()].to_string());
        }
    }
    let mut want_repos: Vec<String> = src
        .images()
        .iter()
        .map(|(r, _, _)| r.split_once(':').unwrap().0.to_string())
        .collect();
    want_repos.sort();
    want_repos.dedup();
    ok(repos == want_repos, "_catalog pages give every repository");

    // Referrers: both of artifacts/app:v1's, filtered by artifactType.
    let subject = src.digest("artifacts/app:v1");
    let path = format!("/v2/artifacts/app/referrers/{subject}");
    let r = s.get(&path, &[]);
    ok(r.status == 200, "referrers 200");
    ok(
        r.header("content-type") == "application/vnd.oci.image.index.v1+json",
        "referrers Content-Type",
    );
    let list = r.json();
    let manifests = list["manifests"].as_array().unwrap();
    ok(manifests.len() == referrers, "every referrer");
    for m in manifests {
        let d = m["digest"].as_str().unwrap();
        ok(m["size"] == blob_bytes(d).len(), "referrer size");
    }
    let at = manifests[0]["artifactType"].as_str().unwrap().to_string();
    let f = s.get(&format!("{path}?artifactType={at}"), &[]);
    ok(
        f.header("oci-filters-applied") == "artifactType",
        "OCI-Filters-Applied",
    );
    let filtered = f.json();
    let fm = filtered["manifests"].as_array().unwrap();
    ok(
        fm.len() == 1 && fm[0]["artifactType"] == at.as_str(),
        "artifactType filter",
    );
    let none = s.get(
        &format!("/v2/artifacts/app/referrers/sha256:{}", "0".repeat(64)),
        &[],
    );
    ok(
        none.status == 200 && none.json()["manifests"].as_array().unwrap().is_empty(),
        "no referrers: an empty index",
    );

    // Errors.
    let zero = format!("sha256:{}", "0".repeat(64));
    for (path, status, code) in [
        ("/v2/no/such/tags/list", 404, "NAME_UNKNOWN"),
        ("/v2/no/such/manifests/v1", 404, "NAME_UNKNOWN"),
        ("/v2/team/app/manifests/nope", 404, "MANIFEST_UNKNOWN"),
        (
            &format!("/v2/team/app/manifests/{zero}") as &str,
            404,
            "MANIFEST_UNKNOWN",
        ),
        (&format!("/v2/team/app/blobs/{zero}"), 404, "BLOB_UNKNOWN"),
        ("/v2/team/app/blobs/sha256:xyz", 400, "DIGEST_INVALID"),
        ("/v2/team/app/manifests/sha256:xyz", 400, "DIGEST_INVALID"),
        ("/v2/team/app/referrers/nope", 400, "DIGEST_INVALID"),
        // Traversal: never a path outside the tree.
        ("/v2/../../../etc/manifests/passwd", 400, "NAME_INVALID"),
        (
            "/v2/team/%2e%2e/%2e%2e/app/manifests/v1",
            400,
            "NAME_INVALID",
        ),
        ("/v2/team%2Fapp/manifests/v1", 400, "NAME_INVALID"),
        (
            "/v2/team/app%2F..%2F..%2Fx/blobs/sha256:00",
            400,
            "NAME_INVALID",
        ),
    ] {
        let r = s.get(path, &accept);
        ok(
            r.status == status && r.code() == code,
            &format!("{path}: {status} {code}"),
        );
    }
    // A blob of another repository is not served through this one.
    let alpine_layer = src.image("library/alpine:3.19")["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.get(&format!("/v2/a/b/c/deep/blobs/{alpine_layer}"), &[]);
    ok(
        r.status == 404 && r.code() == "BLOB_UNKNOWN",
        "a blob not linked here",
    );
    // Writes.
    for (method, path) in [
        ("PUT", "/v2/team/app/manifests/v9"),
        ("DELETE", "/v2/team/app/manifests/v1"),
        ("POST", "/v2/team/app/blobs/uploads/"),
        ("PATCH", "/v2/team/app/blobs/uploads/1"),
        ("DELETE", &format!("/v2/team/app/blobs/{layer}") as &str),
    ] {
        let r = raw(s.port, method, path, &[]);
        ok(
            r.status == 405 && r.code() == "UNSUPPORTED",
            &format!("{method} {path}: 405"),
        );
    }
    n
}

#[test]
fn raw_http_gets_every_header_and_error_code_from_a_tree_and_a_bundle() {
    let t = tempdir();
    let mut checks = 0;
    for (kind, root) in roots(
        t.path(),
        &["tree", "bundle.tar", "bundle.tar.zst", "dot.tar"],
    ) {
        let mut s = Serve::start(&root, &[]);
        // regkit's bundles hold what tags reach: the tagged referrer only.
        let referrers = if kind.starts_with("bundle") { 1 } else { 2 };
        checks += check_raw_api(&kind, &s, referrers);
        // One access log line per request.
        let log = s.log();
        assert!(log.contains("\"GET /v2/\" 200 2 "), "{kind}: {log}");
        assert!(
            log.contains("\"PUT /v2/team/app/manifests/v9\" 405"),
            "{kind}: {log}"
        );
        // Ctrl-C ends it cleanly.
        assert_eq!(s.stop(), 0, "{kind}: {}", s.log());
    }
    assert!(checks > 4 * 150, "{checks}");
}

#[test]
fn a_symlink_in_the_tree_leading_out_is_never_followed() {
    let src = sample();
    let t = tempdir();
    let root = t.path().join("tree");
    copy_tree(&src.root, &root);
    // Files outside the tree with the very bytes the blobs should have: a
    // server following the links would serve them as good.
    let layer = src.image("team/app:v2")["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let other = src.image("team/app:v2")["config"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let copy = outside.join("layer");
    fs::copy(blob_path(&root, &layer), &copy).unwrap();
    let data = blob_path(&root, &layer);
    fs::remove_file(&data).unwrap();
    std::os::unix::fs::symlink(&copy, &data).unwrap();
    // A blob folder that is a symlink out of the tree.
    let folder = blob_path(&root, &other).parent().unwrap().to_path_buf();
    let away = outside.join("folder");
    fs::create_dir(&away).unwrap();
    fs::copy(blob_path(&root, &other), away.join("data")).unwrap();
    fs::remove_dir_all(&folder).unwrap();
    std::os::unix::fs::symlink(&away, &folder).unwrap();
    let s = Serve::start(&root, &[]);
    let mut checked = 0;
    for d in [&layer, &other] {
        let r = s.get(&format!("/v2/team/app/blobs/{d}"), &[]);
        assert_ne!(
            r.status, 200,
            "{d} served through a symlink out of the tree"
        );
        checked += 1;
    }
    assert_eq!(checked, 2);
}

#[test]
fn a_damaged_blob_is_never_served_as_good() {
    let src = sample();
    let t = tempdir();
    let root = t.path().join("tree");
    copy_tree(&src.root, &root);
    let img = src.image("team/app:v2");
    let flipped = img["layers"][1]["digest"].as_str().unwrap().to_string();
    let truncated = img["layers"][0]["digest"].as_str().unwrap().to_string();
    let mut bytes = fs::read(blob_path(&root, &flipped)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(blob_path(&root, &flipped), &bytes).unwrap();
    let mut short = fs::read(blob_path(&root, &truncated)).unwrap();
    short.truncate(short.len() - 1);
    fs::write(blob_path(&root, &truncated), &short).unwrap();

    let s = Serve::start(&root, &[]);
    // Same size, wrong bytes: the first read is cut short, the next refused.
    let first = s.get(&format!("/v2/team/app/blobs/{flipped}"), &[]);
    assert_eq!(first.status, 200);
    assert!(first.short, "the damaged body was sent whole");
    let again = s.get(&format!("/v2/team/app/blobs/{flipped}"), &[]);
    assert_eq!((again.status, again.code().as_str()), (500, "UNKNOWN"));
    // A range of it, once known damaged, is refused too.
    let range = s.get(
        &format!("/v2/team/app/blobs/{flipped}"),
        &[("Range", "bytes=0-9")],
    );
    assert_eq!(range.status, 500);
    // Wrong size: refused at once, HEAD too.
    let r = s.get(&format!("/v2/team/app/blobs/{truncated}"), &[]);
    assert_eq!((r.status, r.code().as_str()), (500, "UNKNOWN"));
    assert_eq!(
        raw(
            s.port,
            "HEAD",
            &format!("/v2/team/app/blobs/{truncated}"),
            &[]
        )
        .status,
        500
    );
    assert!(s.log().contains(&truncated), "{}", s.log());
    // skopeo cannot copy the image.
    assert!(skopeo_copy_all(&format!("docker://{}/team/app:v2", s.host())).is_err());

    // --verify finds both up front, and a range of a flipped blob is refused
    // before any byte is sent.
    let v = Serve::start(&root, &["--verify"]);
    let damaged: Vec<String> = v.started["damaged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    assert_eq!(damaged.len(), 2, "{damaged:?}");
    assert!(
        damaged.iter().any(|d| d.starts_with(&flipped)),
        "{damaged:?}"
    );
    assert!(
        damaged.iter().any(|d| d.starts_with(&truncated)),
        "{damaged:?}"
    );
    assert!(v.started["verified"].as_u64().unwrap() >= 40);
    let r = v.get(&format!("/v2/team/app/blobs/{flipped}"), &[]);
    assert_eq!(r.status, 500);
    // Without --verify, a range read of a blob not yet read checks it whole.
    let w = Serve::start(&root, &[]);
    let r = w.get(
        &format!("/v2/team/app/blobs/{flipped}"),
        &[("Range", "bytes=0-9")],
    );
    assert_eq!(r.status, 500);
}

#[test]
fn htpasswd_asks_every_request_for_basic_auth() {
    let t = tempdir();
    let htpasswd = t.path().join("htpasswd");
    let r = run_cmd(
        "htpasswd",
        &["-Bbc", htpasswd.to_str().unwrap(), "alice", "s3cret"],
    );
    assert_eq!(r.code, 0, "htpasswd (apache2-utils): {}", r.stderr);
    let mut checked = 0;
    for (kind, root) in roots(t.path(), &["tree", "bundle.tar"]) {
        let s = Serve::start(&root, &["--htpasswd", htpasswd.to_str().unwrap()]);
        let good = format!(
            "Basic {}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "alice:s3cret")
        );
        let bad = format!(
            "Basic {}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "alice:nope")
        );
        for (path, auth) in [
            ("/v2/", None),
            ("/v2/", Some(bad.as_str())),
            ("/v2/team/app/manifests/v1", None),
            ("/v2/_catalog", Some("Bearer x")),
        ] {
            let headers: Vec<(&str, &str)> =
                auth.map(|a| ("Authorization", a)).into_iter().collect();
            let r = s.get(path, &headers);
            assert_eq!(
                (r.status, r.code().as_str()),
                (401, "UNAUTHORIZED"),
                "{kind} {path}"
            );
            assert_eq!(
                r.header("www-authenticate"),
                "Basic realm=\"regkit\"",
                "{kind}"
            );
            checked += 1;
        }
        assert_eq!(s.get("/v2/", &[("Authorization", &good)]).status, 200);
        let d = skopeo(&[
            "copy",
            "--all",
            "--src-tls-verify=false",
            "--src-creds",
            "alice:s3cret",
            &format!("docker://{}/team/app:v1", s.host()),
            &format!("dir:{}", t.path().join(format!("{kind}.out")).display()),
        ]);
        assert_eq!(d.code, 0, "{kind}: {}", d.stderr);
        assert_eq!(
            sha256_file(&t.path().join(format!("{kind}.out/manifest.json"))),
            sample().digest("team/app:v1")
        );
    }
    assert_eq!(checked, 8);
}

#[test]
fn every_reading_command_reads_a_bundle_as_its_tree() {
    let t = tempdir();
    let run_on = |root: &str, args: &[&str]| -> String {
        let mut full = vec![args[0], root];
        full.extend_from_slice(&args[1..]);
        regkit(&full).ok().stdout
    };
    let mut compared = 0;
    for (kind, root) in roots(
        t.path(),
        &[
            "bundle.tar",
            "bundle.tar.gz",
            "bundle.tar.zst",
            "docker.tar.gz",
            "dot.tar",
        ],
    ) {
        let b = root.to_str().unwrap();
        // What the bundle holds, unpacked by tar.
        let unpacked = t.path().join(format!("{kind}.unpacked"));
        fs::create_dir_all(&unpacked).unwrap();
        run_cmd("tar", &["-xf", b, "-C", unpacked.to_str().unwrap()]).ok();
        let tree = unpacked.to_str().unwrap();
        for args in [
            vec!["ls"],
            vec!["ls", "--json"],
            vec!["inspect", "team/app:v1"],
            vec!["inspect", "multi/oci-index:1", "--raw"],
            vec![
                "inspect",
                "multi/docker-list:1",
                "--platform",
                "linux/arm64",
                "--config",
            ],
        ] {
            assert_eq!(run_on(b, &args), run_on(tree, &args), "{kind}: {args:?}");
            compared += 1;
        }
        // verify: the same counts.
        let v = regkit(["verify", b, "--json"]).ok().json();
        let w = regkit(["verify", tree, "--json"]).ok().json();
        for k in [
            "ok",
            "images",
            "manifests",
            "blobs",
            "hashed_bytes",
            "links",
        ] {
            assert_eq!(v[k], w[k], "{kind}: verify {k}");
        }
        compared += 1;
        // extract, select and export: the same files.
        for (cmd, extra) in [
            ("extract", vec![]),
            ("select", vec![]),
            ("export", vec!["--format", "oci"]),
        ] {
            let (a, bdir) = (
                t.path().join(format!("{kind}.{cmd}.bundle")),
                t.path().join(format!("{kind}.{cmd}.tree")),
            );
            let mut args = vec![cmd, b, a.to_str().unwrap(), "-q"];
            args.extend(extra.iter().copied());
            regkit(&args).ok();
            let mut args = vec![cmd, tree, bdir.to_str().unwrap(), "-q"];
            args.extend(extra.iter().copied());
            regkit(&args).ok();
            let r = run_cmd("diff", &["-r", a.to_str().unwrap(), bdir.to_str().unwrap()]);
            assert_eq!(r.code, 0, "{kind}: {cmd} differs: {}", r.stdout);
            compared += 1;
        }
        // du: every figure (gc's too) but the path it names.
        let du = |root: &str| {
            let mut v = regkit(["du", root, "--json"]).ok().json();
            v.as_object_mut().unwrap().remove("root");
            v
        };
        assert_eq!(du(b), du(tree), "{kind}: du");
        compared += 1;
        // diff against its own tree: nothing added, removed or changed.
        let d = regkit(["diff", tree, b, "--json"]).ok().json();
        for k in ["added", "removed", "changed"] {
            assert_eq!(
                d[k].as_array().map(Vec::len),
                Some(0),
                "{kind}: diff {k}: {d}"
            );
        }
        compared += 1;
    }
    assert_eq!(compared, 5 * 11);
}

#[test]
fn regkits_compressed_bundles_are_read_in_place_and_other_compressed_archives_with_a_note() {
    let t = tempdir();
    let mut checked = 0;
    for (kind, root) in roots(
        t.path(),
        &[
            "bundle.tar",
            "bundle.tar.gz",
            "bundle.tar.zst",
            "docker.tar.gz",
            "docker.tar.zst",
        ],
    ) {
        let r = regkit(["ls", root.to_str().unwrap()]).ok();
        let noted = r.stderr.contains("decompressing it to a temporary file");
        let in_place = kind.starts_with("bundle.");
        assert_eq!(noted, !in_place, "{kind}: {}", r.stderr);
        assert_eq!(
            r.stdout.lines().count(),
            40 + 1,
            "{kind}: a header and 40 tags"
        );
        checked += 1;
    }
    // The in-place bundles are standard streams still: gzip, tar and zstd
    // read them whole (zstd skipping the seek table), with every member.
    let listed = |args: &[&str]| run_cmd("tar", args).ok().stdout.lines().count();
    let (gz, zst) = (
        t.path().join("bundle.tar.gz"),
        t.path().join("bundle.tar.zst"),
    );
    let (gz, zst) = (gz.to_str().unwrap(), zst.to_str().unwrap());
    run_cmd("gzip", &["-t", gz]).ok();
    run_cmd("zstd", &["-q", "-t", zst]).ok();
    let plain = listed(&["-tf", t.path().join("bundle.tar").to_str().unwrap()]);
    assert!(plain > 100, "{plain} members");
    assert_eq!(listed(&["-tzf", gz]), plain);
    assert_eq!(listed(&["--zstd", "-tf", zst]), plain);
    assert_eq!(checked, 5);
}

#[test]
fn writing_commands_refuse_a_bundle_and_leave_it_as_it_was() {
    let src = sample();
    let t = tempdir();
    let mut refused = 0;
    for (kind, root) in roots(t.path(), &["bundle.tar", "docker.tar.gz"]) {
        let b = root.to_str().unwrap();
        let before = sha256_file(&root);
        let dir_image = t.path().join(format!("{kind}.img"));
        regkit([
            "extract",
            src.root.to_str().unwrap(),
            dir_image.to_str().unwrap(),
            "team/app:v1",
            "-q",
        ])
        .ok();
        let one = dir_image.join("team/app:v1");
        for args in [
            vec!["gc", b],
            vec!["delete", b, "team/app:v1"],
            vec!["import", one.to_str().unwrap(), b, "--repo", "x/y:1"],
            vec!["unpack", b, b],
            vec!["select", src.root.to_str().unwrap(), b, "team/app:v1"],
        ] {
            let r = regkit(&args);
            assert_eq!(r.code, 1, "{kind}: {args:?}: {}{}", r.stdout, r.stderr);
            assert!(
                r.stderr.contains("bundle"),
                "{kind}: {args:?}: {}",
                r.stderr
            );
            refused += 1;
        }
        assert_eq!(sha256_file(&root), before, "{kind} changed");
    }
    assert_eq!(refused, 2 * 5);
}

#[test]
fn push_from_a_plain_tarball_of_a_registry_is_the_harbor_migration() {
    let src = sample();
    let t = tempdir();
    let dst = t.path().join("dst");
    fs::create_dir_all(&dst).unwrap();
    let reg = Registry::start(&dst);
    let mut copied = 0;
    for (kind, root) in roots(t.path(), &["docker.tar.gz", "bundle.tar"]) {
        let dest = format!("http://{}/{}", reg.host(), kind.replace('.', "-"));
        let r = regkit([
            "push",
            root.to_str().unwrap(),
            &dest,
            "team/app",
            "multi/oci-index:1",
            "-q",
        ]);
        assert_eq!(r.code, 0, "{kind}: {}{}", r.stdout, r.stderr);
        for image in ["team/app:v1", "team/app:v2", "multi/oci-index:1"] {
            let from = format!("docker://{}/{}/{image}", reg.host(), kind.replace('.', "-"));
            let got = skopeo_copy_all(&from).unwrap();
            assert_eq!(got, src.digest(image), "{kind}: {image}");
            copied += 1;
        }
    }
    assert_eq!(copied, 6);
}
