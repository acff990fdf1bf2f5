//! A blocking HTTP client for one registry (ureq, rustls), as
//! go-containerregistry's `remote/transport` is: a `/v2/` ping with the
//! https → http fallback, authorization on every request, retries around
//! whole operations, and bodies streamed both ways (a request body from any
//! reader of known length; a reply body read as a stream with
//! [`Client::open`], or read whole when small).
//!
//! Nothing waits forever: a transfer that moves no byte for
//! [`ClientOptions::timeout`] fails (and is retried), and Ctrl-C shuts every
//! connection of the client at once, so requests in flight end promptly.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ureq::http;

use crate::error::{Error, Result};
use crate::interrupt;
use crate::remote::auth::{Auth, Credentials, Scope};
use crate::remote::error::{missing_project, RemoteError};
use crate::remote::{retry, tls, Scheme};

/// How to talk to the destination.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub tls_verify: bool,
    /// `--cert-dir`; `None` searches containers' and docker's certs.d.
    pub cert_dir: Option<std::path::PathBuf>,
    pub creds: Option<Credentials>,
    /// Retries of an operation after its first try.
    pub retries: u32,
    /// Connections kept open (one per worker).
    pub connections: usize,
    /// A transfer that sends or receives no byte for this long fails.
    pub timeout: Duration,
}

/// The stall timeout when none is given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A request body.
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// A stream of exactly this many bytes.
    Stream(&'a mut dyn Read, u64),
}

/// A response, with its body read: API answers, error documents and tokens,
/// which are small (a blob is read with [`Client::open`]).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The registry's error document as `CODE: message`, or the body's
    /// start.
    pub fn message(&self) -> String {
        if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&self.body) {
            if let Some(errs) = doc.get("errors").and_then(|e| e.as_array()) {
                let parts: Vec<String> = errs
                    .iter()
                    .map(|e| {
                        let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
                        let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
                        match (code, msg) {
                            ("", m) => m.to_string(),
                            (c, "") => c.to_string(),
                            (c, m) => format!("{c}: {m}"),
                        }
                    })
                    .collect();
                if !parts.is_empty() {
                    return parts.join("; ");
                }
            }
            for k in ["details", "message", "error"] {
                if let Some(m) = doc.get(k).and_then(|m| m.as_str()) {
                    return m.to_string();
                }
            }
        }
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim();
        if text.is_empty() {
            http::StatusCode::from_u16(self.status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("no message")
                .to_string()
        } else {
            text.chars().take(300).collect()
        }
    }
}

/// The largest reply body read whole.
const SMALL_BODY: u64 = 4 << 20;

/// A response whose body is still on the wire, to be read as a stream.
pub struct Response {
    pub status: u16,
    pub headers: http::HeaderMap,
    url: String,
    body: ureq::Body,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as a reader: every read is bounded by the stall timeout and
    /// stops at Ctrl-C (with [`interrupt::io_error`]).
    pub fn into_reader(self) -> BodyReader {
        BodyReader {
            url: self.url,
            inner: self.body.into_reader(),
        }
    }

    /// Reads the body whole (at most 4 MiB: error documents, tokens, API
    /// answers).
    pub fn into_reply(mut self, method: &str) -> Result<Reply> {
        let body = if method == "HEAD" {
            Vec::new()
        } else {
            self.body
                .with_config()
                .limit(SMALL_BODY)
                .read_to_vec()
                .map_err(|e| transport_error(method, &self.url, e))?
        };
        Ok(Reply {
            status: self.status,
            headers: self.headers,
            body,
        })
    }
}

/// A reply body streamed from the registry.
pub struct BodyReader {
    url: String,
    inner: ureq::BodyReader<'static>,
}

impl BodyReader {
    /// The URL the body comes from, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        interrupt::check_io()?;
        self.inner.read(buf)
    }
}

/// Sends one request; the reply's body is left on the wire. Connection,
/// TLS and stall failures become [`RemoteError`]s; a local read error of a
/// streamed request body is reported by the caller that owns the stream.
pub fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    authorization: Option<&str>,
    body: Body<'_>,
) -> Result<Response> {
    let mut b = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    if let Some(a) = authorization {
        b = b.header("authorization", a);
    }
    let built = |e: http::Error| {
        RemoteError::Protocol {
            url: url.into(),
            message: format!("cannot build the request: {e}"),
        }
        .into_error()
    };
    // Bodies of known length get a Content-Length (never chunked encoding,
    // which some proxies in front of registries refuse).
    let sent = match body {
        Body::Empty if method == "GET" || method == "HEAD" => agent.run(b.body(()).map_err(built)?),
        Body::Empty => agent.run(b.body(&[][..]).map_err(built)?),
        Body::Bytes(bytes) => agent.run(b.body(bytes).map_err(built)?),
        Body::Stream(reader, len) => agent.run(
            b.header("content-length", len.to_string())
                .body(ureq::SendBody::from_reader(reader))
                .map_err(built)?,
        ),
    };
    let response = sent.map_err(|e| transport_error(method, url, e))?;
    let (parts, body) = response.into_parts();
    Ok(Response {
        status: parts.status.as_u16(),
        headers: parts.headers,
        url: url.into(),
        body,
    })
}

/// Sends one request and reads the (small) reply.
pub fn exchange(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    authorization: Option<&str>,
    body: Body<'_>,
) -> Result<Reply> {
    call(agent, method, url, headers, authorization, body)?.into_reply(method)
}

fn transport_error(method: &str, url: &str, e: ureq::Error) -> Error {
    if interrupt::interrupted() {
        // Ctrl-C shut the connection down; that is why it failed.
        return Error::Interrupted;
    }
    let host = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or(url)
        .to_string();
    match &e {
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) => RemoteError::Tls {
            host,
            reason: e.to_string(),
        },
        ureq::Error::Io(io) if is_tls_io(io) => RemoteError::Tls {
            host,
            reason: io.to_string(),
        },
        ureq::Error::Timeout(t @ (ureq::Timeout::PerRead | ureq::Timeout::PerWrite)) => {
            RemoteError::Stalled {
                method: method.into(),
                url: url.into(),
                sending: *t == ureq::Timeout::PerWrite,
                after: Duration::ZERO,
            }
        }
        _ => RemoteError::Unreachable {
            url: url.into(),
            reason: e.to_string(),
        },
    }
    .into_error()
}

/// rustls reports handshake failures through `io::Error`s wrapping its own
/// error type.
fn is_tls_io(io: &std::io::Error) -> bool {
    io.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
}

/// A connected, authorized client for one registry.
/// The one HTTP agent of every network client (registries, object stores):
/// rustls with `tls`, up to `connections` kept open, a stalled transfer
/// (no byte for `timeout`) an error, and every request in flight ended on
/// Ctrl-C (the returned watch does it until it is dropped).
pub fn new_agent(
    tls: ureq::tls::TlsConfig,
    connections: usize,
    timeout: Duration,
) -> (ureq::Agent, interrupt::Watch) {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(tls)
        .max_redirects(4)
        .max_idle_connections_per_host(connections.max(1) * 2)
        .max_idle_connections(connections.max(1) * 4)
        .timeout_connect(Some(Duration::from_secs(30)))
        // A stalled transfer, not a slow one: each read and write of the
        // connection gets the whole timeout again.
        .timeout_per_read(Some(timeout))
        .timeout_per_write(Some(timeout))
        .user_agent(concat!("regkit/", env!("CARGO_PKG_VERSION")))
        .build();
    let agent = ureq::Agent::new_with_config(config);
    let watched = agent.clone();
    (agent, interrupt::watch(move || watched.shutdown()))
}

pub struct Client {
    agent: ureq::Agent,
    /// `scheme://host[:port]`.
    pub base: String,
    pub host: String,
    auth: Auth,
    retries: u32,
    timeout: Duration,
    /// Set once an operation found the registry unreachable after every
    /// retry; later operations are not tried.
    down: AtomicBool,
    /// Request body bytes put on the wire, every try counted.
    sent: AtomicU64,
    /// Bytes of reply bodies read as streams (blobs).
    received: AtomicU64,
    /// The last rate limit the registry named (Docker Hub's
    /// `RateLimit-Remaining`).
    rate_limit: std::sync::Mutex<Option<crate::remote::api::RateLimit>>,
    /// Shuts the agent's connections down on Ctrl-C.
    _watch: interrupt::Watch,
}

impl Client {
    /// Pings `/v2/` of `host` (https, then http when `--tls-verify=false`
    /// and no scheme is named) and checks the credentials, once, before any
    /// work. The ping is retried like any request (a 503 while the registry
    /// starts is not "no registry here").
    pub fn connect(host: &str, scheme: Option<Scheme>, opts: &ClientOptions) -> Result<Client> {
        let dirs = match &opts.cert_dir {
            Some(d) => vec![d.clone()],
            None => tls::default_cert_dirs(host),
        };
        let (agent, watch) = new_agent(
            tls::config(opts.tls_verify, &dirs)?,
            opts.connections,
            opts.timeout,
        );
        let schemes = match scheme {
            Some(s) => vec![s],
            None if !opts.tls_verify => vec![Scheme::Https, Scheme::Http],
            None => vec![Scheme::Https],
        };
        let mut client = Client {
            agent,
            base: String::new(),
            host: host.to_string(),
            auth: Auth::new(host, opts.creds.clone()),
            retries: opts.retries,
            timeout: opts.timeout,
            down: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            rate_limit: std::sync::Mutex::new(None),
            _watch: watch,
        };
        let mut first_err: Option<Error> = None;
        for (i, scheme) in schemes.iter().enumerate() {
            client.base = format!("{}://{host}", scheme.as_str());
            let url = client.url("/v2/");
            let ping = client.retrying(|| {
                let r = exchange(&client.agent, "GET", &url, &[], None, Body::Empty)?;
                match r.status {
                    s if s >= 500 || s == 429 => {
                        Err(RemoteError::status("GET", &url, &r).into_error())
                    }
                    _ => Ok(r),
                }
            });
            match ping {
                Ok(reply) => return client.after_ping(reply, &url),
                // Only a registry that cannot be talked to over https is
                // tried over http; one that answers is speaking https.
                Err(e) if i + 1 < schemes.len() && no_answer(&e) => {
                    first_err.get_or_insert(e);
                    client.down.store(false, Ordering::Relaxed);
                }
                Err(e) => return Err(first_err.filter(|_| no_answer(&e)).unwrap_or(e)),
            }
        }
        unreachable!("at least one scheme is tried")
    }

    fn after_ping(self, reply: Reply, url: &str) -> Result<Client> {
        match reply.status {
            200 => Ok(self),
            401 => {
                self.auth.login(&self.agent, &self.base, &reply)?;
                Ok(self)
            }
            s => Err(RemoteError::Protocol {
                url: url.into(),
                message: format!(
                    "this is not a registry speaking the Distribution API (GET /v2/ answered {s}: {})",
                    reply.message()
                ),
            }
            .into_error()),
        }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// An upload `Location`, absolute or relative to the registry.
    pub fn resolve(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else if location.starts_with('/') {
            self.url(location)
        } else {
            self.url(&format!("/{location}"))
        }
    }

    /// `auth` mode, for reports.
    pub fn auth_mode(&self) -> &'static str {
        self.auth.mode_name()
    }

    pub fn tokens_fetched(&self) -> u64 {
        self.auth.tokens_fetched()
    }

    /// Request body bytes put on the wire so far, every try counted: a
    /// streamed body's bytes once the connection took them (ureq asked for
    /// more, or the registry answered), a buffered body's once answered.
    pub fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Counts bytes of a reply body read as a stream.
    pub fn add_received(&self, n: u64) {
        self.received.fetch_add(n, Ordering::Relaxed);
    }

    /// Reply body bytes read as streams so far (blobs downloaded, every try
    /// counted).
    pub fn bytes_received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Notes the rate limit a reply names (Docker Hub's on manifest HEADs
    /// and GETs).
    pub fn note_rate_limit(&self, r: &Reply) {
        if let Some(l) = crate::remote::api::RateLimit::of(r) {
            *self.rate_limit.lock().expect("not poisoned") = Some(l);
        }
    }

    /// The last rate limit the registry named, if any.
    pub fn rate_limit(&self) -> Option<crate::remote::api::RateLimit> {
        *self.rate_limit.lock().expect("not poisoned")
    }

    /// Fails when the registry said its rate limit is used up: the GETs
    /// that follow would be refused (Docker Hub counts manifest GETs, not
    /// HEADs).
    pub fn check_rate_limit(&self) -> Result<()> {
        match self.rate_limit() {
            Some(l) if l.remaining == 0 => Err(RemoteError::RateLimited {
                host: self.host.clone(),
                limit: l.limit,
                window_seconds: l.window_seconds,
            }
            .into_error()),
            _ => Ok(()),
        }
    }

    /// Sends an authorized request for `scope` and reads its (small) reply.
    /// A 401 is answered once (new token, or Basic credentials), then it is
    /// an error: wrong credentials or missing rights are never retried.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        scope: &Scope,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Result<Reply> {
        if let Body::Stream(reader, len) = body {
            // A stream cannot be sent twice: authorize first (the POST
            // that opened the upload already did), then one try.
            let auth = self.auth.header(&self.agent, scope)?;
            let mut tally = Tally {
                inner: reader,
                taken: 0,
                pending: 0,
            };
            let body = Body::Stream(&mut tally, len);
            let r = exchange(&self.agent, method, url, headers, auth.as_deref(), body);
            let taken = tally.taken + if r.is_ok() { tally.pending } else { 0 };
            self.sent.fetch_add(taken, Ordering::Relaxed);
            let r = r?;
            if r.status == 401 {
                self.auth.challenged(&r, scope, auth.as_deref())?;
            }
            return Ok(r);
        }
        let bytes: Option<&[u8]> = match body {
            Body::Bytes(b) => Some(b),
            _ => None,
        };
        self.authorized(method, url, scope, headers, bytes)?
            .into_reply(method)
    }

    /// Sends an authorized bodiless request (a GET of a blob or manifest)
    /// and leaves the reply's body on the wire, to be read as a stream.
    /// 401s are answered as by [`Client::send`].
    pub fn open(
        &self,
        method: &str,
        url: &str,
        scope: &Scope,
        headers: &[(&str, &str)],
    ) -> Result<Response> {
        self.authorized(method, url, scope, headers, None)
    }

    fn authorized(
        &self,
        method: &str,
        url: &str,
        scope: &Scope,
        headers: &[(&str, &str)],
        bytes: Option<&[u8]>,
    ) -> Result<Response> {
        let mut answered = false;
        loop {
            let auth = self.auth.header(&self.agent, scope)?;
            let body = bytes.map_or(Body::Empty, Body::Bytes);
            let r = call(&self.agent, method, url, headers, auth.as_deref(), body)?;
            let len = bytes.map_or(0, <[u8]>::len);
            self.sent.fetch_add(len as u64, Ordering::Relaxed);
            if r.status != 401 {
                return Ok(r);
            }
            let r = r.into_reply(method)?;
            if answered {
                return Err(self.auth.refused(&r, scope));
            }
            self.auth.challenged(&r, scope, auth.as_deref())?;
            answered = true;
        }
    }

    /// Runs an operation, trying again while it fails with a connection
    /// error, a stall, a 5xx or a 429: after the `Retry-After` the registry
    /// asked for, else 0.5 s, 1 s, 2 s ... (at most 8 s); Ctrl-C ends the
    /// wait. Once an operation found the registry unreachable every time,
    /// the later ones fail at once.
    pub fn retrying<T>(&self, mut op: impl FnMut() -> Result<T>) -> Result<T> {
        let mut attempt = 0;
        loop {
            if self.down.load(Ordering::Relaxed) {
                return Err(RemoteError::NotTried {
                    host: self.host.clone(),
                }
                .into_error());
            }
            interrupt::check()?;
            match op().map_err(|e| self.with_timeout(e)) {
                Err(e) if transient(&e) && attempt < self.retries => {
                    let asked = match e.root() {
                        Error::Remote(r) => r.retry_after(),
                        _ => None,
                    };
                    interrupt::sleep(retry::pause(attempt, asked))?;
                    attempt += 1;
                }
                Err(e) => {
                    if unreachable(&e) {
                        self.down.store(true, Ordering::Relaxed);
                    }
                    return Err(e);
                }
                ok => return ok,
            }
        }
    }

    /// A stall says how long it waited.
    fn with_timeout(&self, e: Error) -> Error {
        match e {
            Error::Remote(RemoteError::Stalled {
                method,
                url,
                sending,
                ..
            }) => RemoteError::Stalled {
                method,
                url,
                sending,
                after: self.timeout,
            }
            .into_error(),
            e => e,
        }
    }

    /// A GET outside the Distribution API (Harbor's own API), with the
    /// Basic credentials if any; one try.
    pub fn get_with_basic(&self, path: &str, headers: &[(&str, &str)]) -> Result<Reply> {
        let basic = self.auth.basic();
        exchange(
            &self.agent,
            "GET",
            &self.url(path),
            headers,
            basic.as_deref(),
            Body::Empty,
        )
    }

    /// Builds the error for an unexpected reply to `method url`, naming
    /// Harbor's missing project when the registry says so.
    pub fn unexpected(&self, method: &str, url: &str, scope: &Scope, r: &Reply) -> Error {
        let message = r.message();
        if let Some(project) = missing_project(&message) {
            return RemoteError::ProjectMissing {
                host: self.host.clone(),
                project,
                message,
            }
            .into_error();
        }
        match r.status {
            403 => RemoteError::Denied {
                host: self.host.clone(),
                access: scope.access,
                repo: scope.repo.clone(),
                project: scope.project(),
                message,
            },
            _ => RemoteError::status(method, url, r),
        }
        .into_error()
    }
}

/// A request body that counts what the connection took: ureq writes each
/// chunk it read before it reads the next, so a chunk counts once the next
/// is asked for, or once the registry answered.
struct Tally<'a> {
    inner: &'a mut dyn Read,
    taken: u64,
    pending: u64,
}

impl Read for Tally<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.taken += std::mem::take(&mut self.pending);
        let n = self.inner.read(buf)?;
        self.pending = n as u64;
        Ok(n)
    }
}

fn transient(e: &Error) -> bool {
    match e.root() {
        Error::Remote(r) => r.is_transient(),
        _ => false,
    }
}

/// The registry gave no HTTP answer: connection, TLS or stall failures.
fn no_answer(e: &Error) -> bool {
    matches!(
        e.root(),
        Error::Remote(
            RemoteError::Tls { .. } | RemoteError::Unreachable { .. } | RemoteError::Stalled { .. }
        )
    )
}

fn unreachable(e: &Error) -> bool {
    matches!(e.root(), Error::Remote(r) if r.is_unreachable())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: http::HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn reads_registry_error_documents() {
        let r = reply(
            404,
            r#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry","detail":{"name":"x"}}]}"#,
        );
        assert_eq!(
            r.message(),
            "NAME_UNKNOWN: repository name not known to registry"
        );
        assert_eq!(reply(502, "").message(), "Bad Gateway");
        assert_eq!(reply(500, "boom\n").message(), "boom");
    }

    /// Writes one reply to the connection of a request.
    type Answer = Box<dyn FnOnce(&mut std::net::TcpStream) + Send>;

    /// Serves `answers` on a loopback port, one connection per request.
    fn serve(answers: Vec<Answer>) -> String {
        use std::io::{BufRead, BufReader};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for answer in answers {
                let (mut s, _) = listener.accept().unwrap();
                let mut lines = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                while lines.read_line(&mut line).unwrap() > 2 {
                    line.clear();
                }
                answer(&mut s);
            }
        });
        host
    }

    fn options() -> ClientOptions {
        ClientOptions {
            tls_verify: true,
            cert_dir: None,
            creds: None,
            retries: 0,
            connections: 1,
            timeout: Duration::from_secs(20),
        }
    }

    #[test]
    fn streams_a_blob_body_before_it_has_all_arrived() {
        use std::io::Write;
        const FIRST: usize = 64 << 10;
        const TOTAL: usize = 4 << 20;
        let (got_first, wait) = std::sync::mpsc::channel::<()>();
        let (done, streamed) = std::sync::mpsc::channel::<bool>();
        let host = serve(vec![
            Box::new(|s| {
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
                    .unwrap();
            }),
            Box::new(move |s| {
                write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {TOTAL}\r\nConnection: close\r\n\r\n"
                )
                .unwrap();
                s.write_all(&[7u8; FIRST]).unwrap();
                s.flush().unwrap();
                // The rest only once the client has read the start: a
                // client that buffers whole bodies never gets here in time.
                let before = wait.recv_timeout(Duration::from_secs(10)).is_ok();
                s.write_all(&vec![7u8; TOTAL - FIRST]).unwrap();
                done.send(before).unwrap();
            }),
        ]);
        let client = Client::connect(&host, Some(Scheme::Http), &options()).unwrap();
        let url = client.url("/v2/r/blobs/sha256:x");
        let r = client.open("GET", &url, &Scope::pull("r"), &[]).unwrap();
        assert_eq!(r.status, 200);
        let mut body = r.into_reader();
        let mut start = vec![0u8; FIRST];
        body.read_exact(&mut start).unwrap();
        got_first.send(()).unwrap();
        let mut rest = Vec::new();
        body.read_to_end(&mut rest).unwrap();
        assert_eq!(start.len() + rest.len(), TOTAL);
        assert!(
            streamed.recv().unwrap(),
            "the first bytes were read before the rest was sent"
        );
    }

    #[test]
    fn a_reply_that_stops_coming_is_a_stall_naming_the_url() {
        let host = serve(vec![
            Box::new(|s| {
                use std::io::Write;
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
                    .unwrap();
            }),
            Box::new(|_s| {
                // Reads the request, never answers.
                std::thread::sleep(Duration::from_secs(30));
            }),
        ]);
        let opts = ClientOptions {
            timeout: Duration::from_secs(1),
            ..options()
        };
        let client = Client::connect(&host, Some(Scheme::Http), &opts).unwrap();
        let url = client.url("/v2/r/manifests/1");
        let e = client
            .retrying(|| client.send("GET", &url, &Scope::pull("r"), &[], Body::Empty))
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(&url) && text.contains("sent nothing for 1 s"),
            "{text}"
        );
        assert!(e.help().unwrap().contains("--timeout"));
    }
}
