//! A small HTTP proxy on loopback in front of the real registry, to make it
//! misbehave the ways registries and the proxies before them do: answer
//! one request itself (a 503 on the ping, a 429 with `Retry-After`), change
//! a header of the registry's answer (a wrong `Docker-Content-Digest`), or
//! read a request and never answer (a stall). Every request is logged with
//! when it arrived and how many body bytes it carried.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What the proxy does with one request.
pub enum Act {
    /// Passes it to the registry and its answer back.
    Forward,
    /// Answers it itself (after reading its body).
    Answer {
        status: u16,
        headers: Vec<(String, String)>,
    },
    /// Passes it on, and replaces this header in the registry's answer
    /// (adds it when the answer has none).
    Rewrite { header: String, value: String },
    /// Answers it itself with this body.
    Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Passes it on, and flips the last byte of the registry's answer.
    Corrupt,
    /// Reads it whole and never answers.
    Stall,
}

/// One request the proxy received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// When its first line arrived.
    pub at: Instant,
    /// Request body bytes read from the client.
    pub body: u64,
    /// The status sent back (0: none, a stall).
    pub status: u16,
}

type Rule = dyn Fn(&str, &str) -> Act + Send + Sync;

pub struct Proxy {
    pub port: u16,
    log: Arc<Mutex<Vec<Seen>>>,
}

impl Proxy {
    /// Listens on 127.0.0.1 and sends what `rule(method, path)` allows to
    /// the registry on `upstream`.
    pub fn start(upstream: u16, rule: impl Fn(&str, &str) -> Act + Send + Sync + 'static) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let rule: Arc<Rule> = Arc::new(rule);
        let shared = log.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (rule, log) = (rule.clone(), shared.clone());
                std::thread::spawn(move || serve(conn, upstream, &*rule, &log));
            }
        });
        Proxy { port, log }
    }

    /// `http://127.0.0.1:PORT`: DEST for regkit, plain http.
    pub fn dest(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }
}

/// A request read from a connection: head lines and body.
struct Request {
    /// When its first line had arrived.
    at: Instant,
    method: String,
    path: String,
    lines: Vec<String>,
    body: Vec<u8>,
}

fn read_request(r: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut first = String::new();
    if r.read_line(&mut first).ok()? == 0 {
        return None;
    }
    let at = Instant::now();
    let mut parts = first.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut lines = Vec::new();
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            assert_ne!(k, "transfer-encoding", "regkit sends bodies with a length");
            if k == "content-length" {
                len = v.trim().parse().ok()?;
            }
        }
        lines.push(line);
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    Some(Request {
        at,
        method,
        path,
        lines,
        body,
    })
}

fn serve(conn: TcpStream, upstream: u16, rule: &Rule, log: &Mutex<Vec<Seen>>) {
    let mut out = conn.try_clone().unwrap();
    let mut input = BufReader::new(conn);
    loop {
        let Some(req) = read_request(&mut input) else {
            return;
        };
        let act = rule(&req.method, &req.path);
        let mut seen = Seen {
            method: req.method.clone(),
            path: req.path.clone(),
            at: req.at,
            body: req.body.len() as u64,
            status: 0,
        };
        let reply = match act {
            Act::Stall => {
                log.lock().unwrap().push(seen);
                // Until the client goes away.
                let mut rest = Vec::new();
                let _ = input.read_to_end(&mut rest);
                return;
            }
            Act::Answer { status, headers } => {
                let mut head = format!("HTTP/1.1 {status} Proxy Says So\r\n");
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                let body = br#"{"errors":[{"code":"UNAVAILABLE","message":"the proxy says so"}]}"#;
                head.push_str(&format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                ));
                seen.status = status;
                let mut bytes = head.into_bytes();
                if req.method != "HEAD" {
                    bytes.extend_from_slice(body);
                }
                bytes
            }
            Act::Forward => forward(&req, upstream, None, &mut seen),
            Act::Rewrite { header, value } => {
                forward(&req, upstream, Some((&header, &value)), &mut seen)
            }
            Act::Corrupt => {
                let mut bytes = forward(&req, upstream, None, &mut seen);
                if let Some(last) = bytes.last_mut() {
                    *last ^= 0x20;
                }
                bytes
            }
            Act::Reply {
                status,
                headers,
                body,
            } => {
                let mut head = format!("HTTP/1.1 {status} Proxy Says So\r\n");
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
                seen.status = status;
                let mut bytes = head.into_bytes();
                if req.method != "HEAD" {
                    bytes.extend_from_slice(&body);
                }
                bytes
            }
        };
        log.lock().unwrap().push(seen);
        if out.write_all(&reply).is_err() {
            return;
        }
    }
}

/// Sends the request to the registry over HTTP/1.0 (so that its answer
/// ends with the connection, never chunked) and frames the answer again
/// with a Content-Length for the client's kept-alive connection.
fn forward(
    req: &Request,
    upstream: u16,
    rewrite: Option<(&str, &str)>,
    seen: &mut Seen,
) -> Vec<u8> {
    let mut up = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
    let mut head = format!("{} {} HTTP/1.0\r\n", req.method, req.path);
    for l in &req.lines {
        if !l.to_ascii_lowercase().starts_with("connection:") {
            head.push_str(l);
            head.push_str("\r\n");
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    up.write_all(head.as_bytes()).unwrap();
    up.write_all(&req.body).unwrap();
    let mut answer = Vec::new();
    up.read_to_end(&mut answer).unwrap();
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("the registry answered a head");
    let text = String::from_utf8_lossy(&answer[..split]).into_owned();
    let body = &answer[split + 4..];
    let mut lines = text.lines();
    let status_line = lines.next().unwrap().replacen("HTTP/1.0", "HTTP/1.1", 1);
    seen.status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut out = format!("{status_line}\r\n");
    let mut rewritten = false;
    for l in lines {
        let name = l
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if name == "connection" || name == "transfer-encoding" {
            continue;
        }
        if name == "content-length" && req.method != "HEAD" {
            continue;
        }
        if let Some((h, v)) = rewrite.filter(|(h, _)| h.eq_ignore_ascii_case(&name)) {
            out.push_str(&format!("{h}: {v}\r\n"));
            rewritten = true;
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    if let Some((h, v)) = rewrite.filter(|_| !rewritten) {
        out.push_str(&format!("{h}: {v}\r\n"));
    }
    if req.method != "HEAD" {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if req.method != "HEAD" {
        bytes.extend_from_slice(body);
    }
    bytes
}
