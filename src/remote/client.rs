//! A blocking HTTP client for one destination registry (ureq, rustls):
//! `/v2/` ping with the https → http fallback, authorization on every
//! request, and retries with exponential backoff around whole operations.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ureq::http;

use crate::error::{Error, Result};
use crate::remote::auth::{Auth, Credentials, Scope};
use crate::remote::error::RemoteError;
use crate::remote::tls;
use crate::remote::Scheme;

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
}

/// A request body.
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// A stream of exactly this many bytes.
    Stream(&'a mut dyn Read, u64),
}

/// A response, with its body read (error documents and tokens are small;
/// nothing large is ever downloaded).
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

/// Sends one request and reads the reply. Connection and TLS failures
/// become [`RemoteError`]s; a local read error of a streamed body is
/// reported by the caller that owns the stream.
pub fn exchange(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    authorization: Option<&str>,
    body: Body<'_>,
) -> Result<Reply> {
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
    let mut response = sent.map_err(|e| transport_error(url, e))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = if method == "HEAD" {
        Vec::new()
    } else {
        response
            .body_mut()
            .with_config()
            .limit(4 << 20)
            .read_to_vec()
            .map_err(|e| transport_error(url, e))?
    };
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn transport_error(url: &str, e: ureq::Error) -> Error {
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
pub struct Client {
    agent: ureq::Agent,
    /// `scheme://host[:port]`.
    pub base: String,
    pub host: String,
    auth: Auth,
    retries: u32,
    /// Set once an operation found the registry unreachable after every
    /// retry; later operations are not tried.
    down: AtomicBool,
}

impl Client {
    /// Pings `/v2/` of `host` (https, then http when `--tls-verify=false`
    /// and no scheme is named) and checks the credentials, once, before any
    /// work.
    pub fn connect(host: &str, scheme: Option<Scheme>, opts: &ClientOptions) -> Result<Client> {
        let dirs = match &opts.cert_dir {
            Some(d) => vec![d.clone()],
            None => tls::default_cert_dirs(host),
        };
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls::config(opts.tls_verify, &dirs)?)
            .max_redirects(4)
            .max_idle_connections_per_host(opts.connections.max(1) * 2)
            .max_idle_connections(opts.connections.max(1) * 4)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(300)))
            .user_agent(concat!("regkit/", env!("CARGO_PKG_VERSION")))
            .build();
        let agent = ureq::Agent::new_with_config(config);
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
            down: AtomicBool::new(false),
        };
        let mut first_err: Option<Error> = None;
        for (i, scheme) in schemes.iter().enumerate() {
            client.base = format!("{}://{host}", scheme.as_str());
            let url = client.url("/v2/");
            let ping =
                client.retrying(|| exchange(&client.agent, "GET", &url, &[], None, Body::Empty));
            match ping {
                Ok(reply) => return client.after_ping(reply, &url),
                Err(e) if i + 1 < schemes.len() => {
                    first_err.get_or_insert(e);
                    client.down.store(false, Ordering::Relaxed);
                }
                Err(e) => return Err(first_err.unwrap_or(e)),
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

    /// Sends an authorized request for `scope`. A 401 is answered once (new
    /// token, or Basic credentials), then it is an error: wrong credentials
    /// or no right to push are never retried.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        scope: &Scope,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Result<Reply> {
        if let Body::Stream(..) = body {
            // A stream cannot be sent twice: authorize first (the POST
            // that opened the upload already did), then one try.
            let auth = self.auth.header(&self.agent, scope)?;
            let r = exchange(&self.agent, method, url, headers, auth.as_deref(), body)?;
            if r.status == 401 {
                self.auth.challenged(&r, scope, auth.as_deref())?;
            }
            return Ok(r);
        }
        let bytes: Option<&[u8]> = match body {
            Body::Bytes(b) => Some(b),
            _ => None,
        };
        let mut answered = false;
        loop {
            let auth = self.auth.header(&self.agent, scope)?;
            let body = bytes.map_or(Body::Empty, Body::Bytes);
            let r = exchange(&self.agent, method, url, headers, auth.as_deref(), body)?;
            if r.status != 401 {
                return Ok(r);
            }
            if answered {
                return Err(self.auth.refused(&r, scope));
            }
            self.auth.challenged(&r, scope, auth.as_deref())?;
            answered = true;
        }
    }

    /// Runs an operation, trying again after 0.5 s, 1 s, 2 s ... (at most
    /// 8 s) while it fails with a connection error, a 5xx or a 429. Once an
    /// operation found the registry unreachable every time, the later ones
    /// fail at once.
    pub fn retrying<T>(&self, mut op: impl FnMut() -> Result<T>) -> Result<T> {
        let mut attempt = 0;
        loop {
            if self.down.load(Ordering::Relaxed) {
                return Err(RemoteError::NotTried {
                    host: self.host.clone(),
                }
                .into_error());
            }
            crate::interrupt::check()?;
            match op() {
                Err(e) if transient(&e) && attempt < self.retries => {
                    let pause = Duration::from_millis(500u64 << attempt.min(4));
                    std::thread::sleep(pause);
                    attempt += 1;
                }
                Err(e) => {
                    if matches!(e.root(), Error::Remote(r) if matches!(r, RemoteError::Unreachable { .. }))
                    {
                        self.down.store(true, Ordering::Relaxed);
                    }
                    return Err(e);
                }
                ok => return ok,
            }
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
                repo: scope.repo.clone(),
                project: scope.project(),
                message,
            },
            status => RemoteError::Status {
                method: method.into(),
                url: url.into(),
                status,
                message,
            },
        }
        .into_error()
    }
}

fn transient(e: &Error) -> bool {
    match e.root() {
        Error::Remote(r) => r.is_transient(),
        _ => false,
    }
}

/// Harbor says `project <name> not found` when pushing into a project that
/// does not exist.
pub fn missing_project(message: &str) -> Option<String> {
    let lower = message.to_ascii_lowercase();
    let start = lower.find("project ")? + "project ".len();
    let rest = &message[start..];
    let name = rest.split_whitespace().next()?;
    let after = lower[start + name.len()..].trim_start();
    if !(after.starts_with("not found") || after.starts_with("does not exist")) {
        return None;
    }
    let name = name.trim_matches(|c: char| matches!(c, '\'' | '"' | '`'));
    (!name.is_empty()).then(|| name.to_string())
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

    #[test]
    fn finds_harbor_missing_projects() {
        assert_eq!(
            missing_project("NOT_FOUND: project migr not found").as_deref(),
            Some("migr")
        );
        assert_eq!(
            missing_project("unknown: project 'team' not found: project team not found").as_deref(),
            Some("team")
        );
        assert_eq!(
            missing_project("NAME_UNKNOWN: repository name not known"),
            None
        );
        assert_eq!(missing_project("project quota exceeded"), None);
    }
}
