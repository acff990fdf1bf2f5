//! A small token issuer, as Harbor's core and Docker Hub's auth service run
//! one: `GET /token?service=S&scope=repository:NAME:pull,push...` with Basic
//! credentials answers a JWT (RS256, `x5c` = its certificate, which the
//! registry trusts through `auth.token.rootcertbundle`). Signing is done by
//! the openssl CLI. Repositories under a denied project get no access, as
//! Harbor grants nothing in a project that does not exist.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::json;

pub const SERVICE: &str = "regkit-test-registry";
pub const ISSUER: &str = "regkit-test-issuer";

pub struct Issuer {
    pub port: u16,
    pub cert: PathBuf,
    /// Token requests answered (granted or refused).
    pub requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Config {
    key: PathBuf,
    x5c: String,
    user: String,
    pass: String,
    denied_project: String,
}

impl Issuer {
    /// Starts the issuer on 127.0.0.1, with a new RSA key and certificate in
    /// `dir`, accepting `user`/`pass` and granting nothing under
    /// `denied_project/`.
    pub fn start(dir: &Path, user: &str, pass: &str, denied_project: &str) -> Issuer {
        let key = dir.join("token.key");
        let cert = dir.join("token.crt");
        let ok = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=regkit-test-token-issuer", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "openssl req");
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .unwrap()
            .stdout;
        let config = Arc::new(Config {
            key,
            x5c: base64::engine::general_purpose::STANDARD.encode(der),
            user: user.into(),
            pass: pass.into(),
            denied_project: denied_project.into(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, requests) = (stop.clone(), requests.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    requests.fetch_add(1, Ordering::SeqCst);
                    let config = config.clone();
                    std::thread::spawn(move || serve(conn, &config));
                }
            })
        };
        Issuer {
            port,
            cert,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// The registry configuration that trusts this issuer.
    pub fn registry_yaml(&self) -> String {
        format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            self.port,
            self.cert.display()
        )
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut conn: TcpStream, config: &Config) {
    let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut authorization = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("authorization") {
                authorization = Some(v.trim().to_string());
            }
        }
    }
    let (status, body) = answer(&target, authorization.as_deref(), config);
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn answer(target: &str, authorization: Option<&str>, config: &Config) -> (&'static str, String) {
    let (_, query) = target.split_once('?').unwrap_or((target, ""));
    let mut service = String::new();
    let mut scopes = Vec::new();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "service" => service = decode(v),
            "scope" => scopes.push(decode(v)),
            _ => {}
        }
    }
    let user = match authorization.and_then(|a| a.strip_prefix("Basic ")) {
        Some(b64) => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap_or_default();
            let raw = String::from_utf8_lossy(&raw).into_owned();
            if raw != format!("{}:{}", config.user, config.pass) {
                return (
                    "401 Unauthorized",
                    json!({"details": "invalid username or password"}).to_string(),
                );
            }
            config.user.clone()
        }
        None => String::new(),
    };
    let mut access = Vec::new();
    for s in &scopes {
        let mut parts = s.splitn(2, ':');
        let (Some("repository"), Some(rest)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Some((name, actions)) = rest.rsplit_once(':') else {
            continue;
        };
        let denied = name.starts_with(&format!("{}/", config.denied_project));
        let actions: Vec<&str> = if user.is_empty() || denied {
            vec![]
        } else {
            actions.split(',').collect()
        };
        access.push(json!({"type": "repository", "name": name, "actions": actions}));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [config.x5c]});
    let claims = json!({
        "iss": ISSUER, "sub": user, "aud": service,
        "exp": now + 300, "nbf": now - 10, "iat": now,
        "jti": format!("{now}-{}", std::process::id()),
        "access": access,
    });
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = sign(&config.key, signing_input.as_bytes());
    let token = format!("{signing_input}.{}", b64(&signature));
    (
        "200 OK",
        json!({"token": token, "access_token": token, "expires_in": 300}).to_string(),
    )
}

/// RS256: RSASSA-PKCS1-v1_5 over SHA-256, which `openssl dgst -sign` makes
/// with an RSA key.
fn sign(key: &Path, input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl dgst -sign");
    out.stdout
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
