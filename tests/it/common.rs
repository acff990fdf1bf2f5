//! Shared parts of the integration tests: the regkit binary, fixtures made by
//! the real registry (scripts/fixture.py), the real registry and skopeo.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A finished run of a program.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub raw_stdout: Vec<u8>,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            raw_stdout: o.stdout,
        }
    }

    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn fails(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "wrong exit code:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

pub fn regkit_path() -> &'static str {
    env!("CARGO_BIN_EXE_regkit")
}

/// Runs regkit with the given arguments.
pub fn regkit<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Run::from(
        Command::new(regkit_path())
            .args(args)
            .output()
            .expect("run regkit"),
    )
}

/// Runs regkit in a private mount namespace where `ro` is mounted read-only.
pub fn regkit_readonly<I, S>(ro: &Path, args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let o = Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "mount --bind -o ro \"$0\" \"$0\" && exec \"$@\"",
        ])
        .arg(ro)
        .arg(regkit_path())
        .args(args)
        .output()
        .expect("run unshare");
    Run::from(o)
}

pub fn run_cmd(program: &str, args: &[&str]) -> Run {
    Run::from(
        Command::new(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}")),
    )
}

/// A tree made by scripts/fixture.py, with its sidecar description.
pub struct Fixture {
    pub root: PathBuf,
    pub sidecar: Value,
}

impl Fixture {
    /// Every image of the sidecar: (ref, digest, copyable).
    pub fn images(&self) -> Vec<(String, String, bool)> {
        self.sidecar["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["ref"].as_str().unwrap().to_string(),
                    i["digest"].as_str().unwrap().to_string(),
                    i["copyable"].as_bool().unwrap_or(false),
                )
            })
            .collect()
    }

    pub fn image(&self, r: &str) -> &Value {
        self.sidecar["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["ref"] == r)
            .unwrap_or_else(|| panic!("{r} not in sidecar"))
    }

    pub fn digest(&self, r: &str) -> String {
        self.image(r)["digest"].as_str().unwrap().to_string()
    }

    /// The digest of the first untagged manifest of `repo` in the sidecar
    /// (in the sample, `many/tags`: the image `t00` was moved away from).
    pub fn untagged_in(&self, repo: &str) -> String {
        self.sidecar["untagged"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["repo"] == repo)
            .unwrap_or_else(|| panic!("no untagged manifest of {repo}"))["digest"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

/// This test process's folder for the fixtures its tests share (each made
/// once), removed when the process exits.
fn scratch() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    extern "C" fn remove_scratch() {
        if let Some(dir) = DIR.get() {
            let _ = fs::remove_dir_all(dir);
        }
    }
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("regkit-it-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        // SAFETY: registers a plain function, run once at exit, that only
        // removes this folder.
        unsafe { nix::libc::atexit(remove_scratch) };
        dir
    })
    .clone()
}

fn fixture_py(args: &[&str]) {
    let script = repo_dir().join("scripts/fixture.py");
    let r = Run::from(
        Command::new("python3")
            .arg(&script)
            .args(args)
            .output()
            .expect("run scripts/fixture.py"),
    );
    assert_eq!(
        r.code, 0,
        "fixture.py {args:?} failed:\n{}\n{}",
        r.stdout, r.stderr
    );
}

fn load(root: PathBuf) -> Fixture {
    let sidecar_path = PathBuf::from(format!("{}.json", root.display()));
    let sidecar = serde_json::from_slice(&fs::read(&sidecar_path).unwrap()).unwrap();
    Fixture { root, sidecar }
}

/// Builds a recipe with the real registry, once per test process.
pub fn built(recipe: &'static str) -> &'static Fixture {
    static CACHE: OnceLock<std::sync::Mutex<BTreeMap<&'static str, &'static Fixture>>> =
        OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut map = cache.lock().unwrap();
    if let Some(f) = map.get(recipe) {
        return f;
    }
    let root = scratch().join(format!("fixture-{recipe}"));
    fixture_py(&["build", recipe, root.to_str().unwrap(), "--force"]);
    let f: &'static Fixture = Box::leak(Box::new(load(root)));
    map.insert(recipe, f);
    f
}

pub fn sample() -> &'static Fixture {
    built("sample")
}

/// The sample tree with every kind of damage, made once per test process
/// (tests only read it).
pub fn sample_with_every_damage() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| damaged("all", sample(), &scratch()))
}

pub fn edge() -> &'static Fixture {
    built("edge")
}

/// A damaged copy of a fixture, in `dir`.
pub fn damaged(kind: &str, src: &Fixture, dir: &Path) -> Fixture {
    let root = dir.join(format!("damaged-{kind}"));
    fixture_py(&[
        "damage",
        kind,
        src.root.to_str().unwrap(),
        root.to_str().unwrap(),
    ]);
    load(root)
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("regkit-it-")
        .tempdir()
        .unwrap()
}

/// The real registry (Debian's docker-registry) serving `root` on loopback.
pub struct Registry {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start(root: &Path) -> Registry {
        Registry::start_with(root, "")
    }

    /// Starts the registry with extra YAML appended to its configuration.
    pub fn start_with(root: &Path, extra_yaml: &str) -> Registry {
        Registry::start_custom(root, "", extra_yaml)
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn get(&self, path: &str) -> (u16, Vec<u8>) {
        http_get(self.port, path).expect("GET from registry")
    }

    /// The repositories `/v2/_catalog` lists.
    pub fn catalog(&self) -> Vec<String> {
        let (status, body) = self.get("/v2/_catalog?n=1000");
        assert_eq!(status, 200);
        let v: Value = serde_json::from_slice(&body).unwrap();
        v["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    }

    /// The tags `/v2/<repo>/tags/list` lists.
    pub fn tags(&self, repo: &str) -> Vec<String> {
        let (status, body) = self.get(&format!("/v2/{repo}/tags/list"));
        if status == 404 {
            return vec![];
        }
        let v: Value = serde_json::from_slice(&body).unwrap();
        let mut t: Vec<String> = v["tags"]
            .as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        t.sort();
        t
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP/1.0 GET on loopback: (status, body).
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    http_get_with_headers(port, path).map(|(s, _, b)| (s, b))
}

/// A plain HTTP/1.0 GET on loopback: (status, lower-cased headers, body).
pub fn http_get_with_headers(
    port: u16,
    path: &str,
) -> std::io::Result<(u16, BTreeMap<String, String>, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v1+prettyjws, */*\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(buf.len());
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = buf.get(split + 4..).unwrap_or_default().to_vec();
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers, body))
}

pub fn skopeo(args: &[&str]) -> Run {
    let mut full = vec!["--insecure-policy"];
    full.extend_from_slice(args);
    run_cmd("skopeo", &full)
}

/// `skopeo copy --all SRC dir:TMP` and the sha256 of the copied top manifest.
pub fn skopeo_copy_all(src: &str) -> Result<String, String> {
    let t = tempdir();
    let dst = format!("dir:{}", t.path().join("img").display());
    let r = skopeo(&["copy", "--all", "--src-tls-verify=false", "-q", src, &dst]);
    if r.code != 0 {
        return Err(r.stderr);
    }
    Ok(sha256_file(&t.path().join("img/manifest.json")))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn sha256_file(p: &Path) -> String {
    format!("sha256:{}", sha256_hex(&fs::read(p).unwrap()))
}

/// Every file and folder under `root` with its kind, size, mtime and
/// content hash: what "unchanged" means for a source tree.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot(BTreeMap<PathBuf, (char, u64, i64, String)>);

impl Snapshot {
    pub fn take(root: &Path) -> Snapshot {
        let mut map = BTreeMap::new();
        for e in walkdir::WalkDir::new(root).sort_by_file_name() {
            let e = e.unwrap();
            let m = e.path().symlink_metadata().unwrap();
            let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
            let entry = if m.is_dir() {
                ('d', 0, m.mtime(), String::new())
            } else if m.is_file() {
                (
                    'f',
                    m.len(),
                    m.mtime(),
                    sha256_hex(&fs::read(e.path()).unwrap()),
                )
            } else {
                ('o', 0, m.mtime(), String::new())
            };
            map.insert(rel, entry);
        }
        Snapshot(map)
    }
}

/// Every file under `root`, relative, sorted (folders left out).
pub fn files_under(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().strip_prefix(root).unwrap().display().to_string())
        .collect();
    v.sort();
    v
}

/// Whether two paths are the same inode (a hardlink).
pub fn same_inode(a: &Path, b: &Path) -> bool {
    let (a, b) = (fs::metadata(a).unwrap(), fs::metadata(b).unwrap());
    a.dev() == b.dev() && a.ino() == b.ino()
}

pub fn blob_path(root: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    root.join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}

pub fn write_list(dir: &Path, name: &str, lines: &[&str]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, lines.join("\n")).unwrap();
    p
}

impl Registry {
    /// Starts the registry with `http_extra` inside its `http:` mapping
    /// (e.g. `tls: {certificate: C, key: K}`) and `extra_yaml` at the top
    /// level (e.g. `auth: ...`). Ready once `/v2/` answers anything (401
    /// with auth; 400 to plain HTTP with TLS).
    pub fn start_custom(root: &Path, http_extra: &str, extra_yaml: &str) -> Registry {
        let dir = tempdir();
        for _attempt in 0..5 {
            let port = free_port();
            let config = dir.path().join("config.yml");
            let http_extra = if http_extra.is_empty() {
                String::new()
            } else {
                format!(", {http_extra}")
            };
            fs::write(
                &config,
                format!(
                    "version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\nhttp: {{addr: 127.0.0.1:{port}{http_extra}}}\n{extra_yaml}",
                    root.display()
                ),
            )
            .unwrap();
            let log = fs::File::create(dir.path().join("registry.log")).unwrap();
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start docker-registry (run scripts/install-deps.sh)");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if http_get(port, "/v2/").map(|(s, _)| s > 0).unwrap_or(false) {
                    return Registry {
                        port,
                        child,
                        _dir: dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default();
        panic!("docker-registry did not start:\n{log}");
    }

    /// Kills the registry at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `scripts/fixture.py compare A B`: the two trees are exactly equal
/// (paths, kinds, contents, empty folders).
#[track_caller]
pub fn assert_same_tree(a: &Path, b: &Path) {
    let script = repo_dir().join("scripts/fixture.py");
    let r = Run::from(
        Command::new("python3")
            .arg(&script)
            .args(["compare"])
            .arg(a)
            .arg(b)
            .output()
            .expect("run scripts/fixture.py compare"),
    );
    assert_eq!(
        r.code,
        0,
        "{} and {} differ:\n{}{}",
        a.display(),
        b.display(),
        r.stdout,
        r.stderr
    );
}

/// `cp -a SRC DST`: a private copy of a tree to write into.
pub fn copy_tree(src: &Path, dst: &Path) {
    run_cmd("cp", &["-a", src.to_str().unwrap(), dst.to_str().unwrap()]).ok();
}

/// Debian's containerd, started for one test with its own config, root,
/// state and socket in a temp folder (no systemd, no CRI). The sockets are
/// owned by the running user, so that it also runs without root
/// (`--no-unpack` imports need no snapshotter).
pub struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Containerd {
    pub fn start() -> Containerd {
        let dir = tempdir();
        let p = dir.path();
        let config = p.join("config.toml");
        fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{0}/c.sock\"\n  uid = {1}\n  gid = {2}\n[ttrpc]\n  address = \"{0}/c.ttrpc.sock\"\n  uid = {1}\n  gid = {2}\n",
                p.display(),
                fs::metadata(p).unwrap().uid(),
                fs::metadata(p).unwrap().gid(),
            ),
        )
        .unwrap();
        let log = fs::File::create(p.join("containerd.log")).unwrap();
        let mut child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd (run scripts/install-deps.sh)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                let log = fs::read_to_string(p.join("containerd.log")).unwrap_or_default();
                panic!("containerd exited ({status}):\n{log}");
            }
            if p.join("c.sock").exists() {
                let probe = Command::new("ctr")
                    .arg("--address")
                    .arg(p.join("c.sock"))
                    .arg("version")
                    .output();
                if probe.map(|o| o.status.success()).unwrap_or(false) {
                    return Containerd { child, dir };
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        let log = fs::read_to_string(p.join("containerd.log")).unwrap_or_default();
        panic!("containerd did not start:\n{log}");
    }

    /// `ctr --address SOCK -n test ARGS...`
    pub fn ctr(&self, args: &[&str]) -> Run {
        let sock = self.dir.path().join("c.sock");
        let mut full = vec!["--address", sock.to_str().unwrap(), "-n", "test"];
        full.extend_from_slice(args);
        run_cmd("ctr", &full)
    }

    /// The images `ctr images ls` lists: name → digest.
    pub fn images(&self) -> BTreeMap<String, String> {
        let r = self.ctr(&["images", "ls"]).ok();
        r.stdout
            .lines()
            .skip(1)
            .filter_map(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                Some((cols.first()?.to_string(), cols.get(2)?.to_string()))
            })
            .collect()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs regkit with extra environment variables.
pub fn regkit_env(args: &[&str], env: &[(&str, &Path)]) -> Run {
    let mut c = Command::new(regkit_path());
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    Run::from(c.output().expect("run regkit"))
}

// ---------------------------------------------------------------------------
// verify, gc and delete

pub fn gc_fixture() -> &'static Fixture {
    built("gc")
}

/// A copy of a fixture (tree and sidecar) in `dir`, named `name`.
pub fn copy_fixture(src: &Fixture, dir: &Path, name: &str) -> Fixture {
    let root = dir.join(name);
    let r = run_cmd(
        "cp",
        &["-a", src.root.to_str().unwrap(), root.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "cp -a: {}", r.stderr);
    Fixture {
        root,
        sidecar: src.sidecar.clone(),
    }
}

/// The digests of every blob with a `data` file.
pub fn blob_set(root: &Path) -> std::collections::BTreeSet<String> {
    let blobs = root.join("docker/registry/v2/blobs/sha256");
    walkdir::WalkDir::new(&blobs)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file() && e.file_name() == "data")
        .map(|e| {
            let hex = e.path().parent().unwrap().file_name().unwrap();
            format!("sha256:{}", hex.to_string_lossy())
        })
        .collect()
}

/// Runs the real `docker-registry garbage-collect` on `root`.
pub fn registry_gc(root: &Path, delete_untagged: bool) -> Run {
    let dir = tempdir();
    let config = dir.path().join("config.yml");
    fs::write(
        &config,
        format!(
            "version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\nhttp: {{addr: 127.0.0.1:0}}\n",
            root.display()
        ),
    )
    .unwrap();
    let mut args = vec!["garbage-collect"];
    if delete_untagged {
        args.push("--delete-untagged");
    }
    let config = config.to_str().unwrap().to_string();
    args.push(&config);
    run_cmd("docker-registry", &args)
}

/// Every manifest and blob digest a sidecar node reaches (itself,
/// children, config, stored layers).
pub fn node_reach(node: &Value, out: &mut std::collections::BTreeSet<String>) {
    if let Some(d) = node["digest"].as_str() {
        out.insert(d.to_string());
    }
    if let Some(c) = node["config"]["digest"].as_str() {
        out.insert(c.to_string());
    }
    for l in node["layers"].as_array().into_iter().flatten() {
        if l["urls"].is_null() {
            out.insert(l["digest"].as_str().unwrap().to_string());
        }
    }
    for c in node["children"].as_array().into_iter().flatten() {
        node_reach(c, out);
    }
}

/// Starts the real registry on `root` and copies every copyable tag of the
/// sidecar (but `except`) with `skopeo copy --all`, checking its digest;
/// returns how many it copied, which must be at least half of the tags.
pub fn assert_serves_tags(root: &Path, f: &Fixture, except: &[&str]) -> usize {
    let reg = Registry::start(root);
    let images = f.images();
    let mut checked = 0;
    for (r, digest, copyable) in &images {
        let (r, digest, copyable) = (r.clone(), digest.clone(), *copyable);
        if !copyable || except.contains(&r.as_str()) {
            continue;
        }
        let got = skopeo_copy_all(&format!("docker://{}/{r}", reg.host()))
            .unwrap_or_else(|e| panic!("{r} is not served: {e}"));
        // The registry re-signs schema1 manifests on every GET.
        if !f.image(&r)["media_type"]
            .as_str()
            .unwrap()
            .ends_with("v1+prettyjws")
        {
            assert_eq!(got, digest, "{r}");
        }
        checked += 1;
    }
    assert!(
        checked > 0 && checked * 2 >= images.len(),
        "served {checked} of {} tags",
        images.len()
    );
    checked
}

/// GETs every manifest and blob the registry serves from `top` down (for
/// what skopeo 1.9 cannot copy, such as nested indexes), checking each
/// manifest's digest; returns how many manifests it fetched.
pub fn served_by_digest(reg: &Registry, repo: &str, top: &str) -> usize {
    let mut todo = vec![top.to_string()];
    let mut seen = 0;
    while let Some(d) = todo.pop() {
        let (status, body) = reg.get(&format!("/v2/{repo}/manifests/{d}"));
        assert_eq!(status, 200, "{d}");
        assert_eq!(format!("sha256:{}", sha256_hex(&body)), d);
        seen += 1;
        let m: Value = serde_json::from_slice(&body).unwrap();
        for c in m["manifests"].as_array().into_iter().flatten() {
            todo.push(c["digest"].as_str().unwrap().to_string());
        }
        for b in m["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(m.get("config"))
        {
            let digest = b["digest"].as_str().unwrap();
            let (status, _) = reg.get(&format!("/v2/{repo}/blobs/{digest}"));
            assert_eq!(status, 200, "{digest}");
        }
    }
    seen
}

/// The HTTP status of `GET /v2/<repo>/manifests/<reference>`.
pub fn manifest_status(reg: &Registry, repo: &str, reference: &str) -> u16 {
    reg.get(&format!("/v2/{repo}/manifests/{reference}")).0
}

/// Sends SIGINT to a child, as Ctrl-C does.
pub fn interrupt(child: &Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("send SIGINT");
}

/// Waits for a child to end; one still running after `patience` is a hang:
/// it is killed and the test fails.
pub fn wait_with_deadline(child: Child, patience: Duration) -> Output {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output().unwrap()));
    match rx.recv_timeout(patience) {
        Ok(out) => out,
        Err(_) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            panic!("still running after {patience:?}: it hangs");
        }
    }
}

/// Starts regkit in the background, each step of its work slowed down by
/// `delay_ms` (`REGKIT_TEST_STEP_DELAY_MS`); standard output and error are
/// kept for [`finish`].
pub fn spawn_slowed(args: &[&str], delay_ms: u64) -> Child {
    Command::new(regkit_path())
        .args(args)
        .env("REGKIT_TEST_STEP_DELAY_MS", delay_ms.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run regkit")
}

/// Waits for a run started by [`spawn_slowed`].
pub fn finish(child: Child) -> Run {
    Run::from(child.wait_with_output().expect("wait for regkit"))
}

/// Polls until `cond` holds; fails the test after a minute.
#[track_caller]
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `scripts/fixture.py generate bench --tags N OUT`: a tree as the real
/// registry writes it after pushing N generated tags.
pub fn generate_bench(out: &Path, tags: usize) {
    let script = repo_dir().join("scripts/fixture.py");
    let tags = tags.to_string();
    let r = run_cmd(
        "python3",
        &[
            script.to_str().unwrap(),
            "generate",
            "bench",
            "--tags",
            &tags,
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// Waits until a tag's `current` link exists in the tree at `root` (a
/// registry's storage or a pulled ROOT); fails after two minutes.
pub fn wait_for_a_tag(root: &Path) {
    let repos = root.join("docker/registry/v2/repositories");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let tagged = walkdir::WalkDir::new(&repos)
            .into_iter()
            .filter_map(|e| e.ok())
            .any(|e| {
                e.file_name() == "link" && e.path().parent().is_some_and(|p| p.ends_with("current"))
            });
        if tagged {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no tag ever landed in {}",
            root.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
