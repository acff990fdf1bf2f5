//! Authentication as registries do it: anonymous, Basic, and the Bearer
//! token flow announced by `WWW-Authenticate` (realm, service, scope), with
//! one token per scope reused until it nears expiry. Credentials come from
//! `--creds`, `--authfile`, or the files skopeo and docker read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::error::{Error, Result};
use crate::push::client::{exchange, Body, Reply};
use crate::push::error::RemoteError;

/// A user and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub pass: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}:***)", self.user)
    }
}

impl Credentials {
    /// `USER:PASS`, as `--creds` takes it.
    pub fn parse(s: &str) -> Result<Credentials> {
        match s.split_once(':') {
            Some((u, p)) if !u.is_empty() => Ok(Credentials {
                user: u.into(),
                pass: p.into(),
            }),
            _ => Err(Error::BadReference {
                input: "--creds".into(),
                reason: "expected USER:PASSWORD".into(),
            }),
        }
    }

    /// The `Authorization` header value for Basic auth.
    pub fn basic(&self) -> String {
        let raw = format!("{}:{}", self.user, self.pass);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// The credential files skopeo (containers/image) and docker read, in the
/// order they are searched: `$REGISTRY_AUTH_FILE`,
/// `$XDG_RUNTIME_DIR/containers/auth.json`,
/// `$XDG_CONFIG_HOME/containers/auth.json` (`~/.config`), and
/// `~/.docker/config.json`.
pub fn default_auth_files() -> Vec<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let home = env("HOME");
    let mut out = Vec::new();
    out.extend(env("REGISTRY_AUTH_FILE"));
    out.extend(env("XDG_RUNTIME_DIR").map(|d| d.join("containers/auth.json")));
    out.extend(
        env("XDG_CONFIG_HOME")
            .or_else(|| home.as_ref().map(|h| h.join(".config")))
            .map(|d| d.join("containers/auth.json")),
    );
    out.extend(home.map(|h| h.join(".docker/config.json")));
    out
}

/// Finds credentials for `host` (and the repository path `ns`, for
/// namespaced entries) in `authfile`, or else in the default files.
pub fn lookup(host: &str, ns: &str, authfile: Option<&Path>) -> Result<Option<Credentials>> {
    let files = match authfile {
        Some(f) => vec![f.to_path_buf()],
        None => default_auth_files(),
    };
    for f in files {
        let text = match std::fs::read_to_string(&f) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && authfile.is_none() => continue,
            Err(e) => return Err(Error::io("read credentials file", &f, e)),
        };
        match from_auth_json(&text, host, ns) {
            Ok(Some(c)) => return Ok(Some(c)),
            Ok(None) => continue,
            Err(message) => {
                return Err(Error::Invalid {
                    message,
                    path: Some(f),
                })
            }
        }
    }
    Ok(None)
}

/// Reads the entry for `host[/ns...]` from an auth.json / config.json text:
/// `{"auths": {"<key>": {"auth": base64("user:pass")}}}`. Keys may carry a
/// scheme and a path (`https://index.docker.io/v1/`); the longest
/// `host/namespace` prefix wins, as in containers/image.
pub fn from_auth_json(
    text: &str,
    host: &str,
    ns: &str,
) -> std::result::Result<Option<Credentials>, String> {
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("credentials file is not JSON: {e}"))?;
    let Some(auths) = doc.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    let normalize = |k: &str| {
        let k = k
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        let k = k.trim_end_matches('/');
        let k = k
            .strip_suffix("/v1")
            .or_else(|| k.strip_suffix("/v2"))
            .unwrap_or(k);
        match k {
            "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
            k => k.to_string(),
        }
    };
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        h => h,
    };
    let mut wanted: Vec<String> = Vec::new();
    let mut path = String::from(host);
    wanted.push(path.clone());
    for comp in ns.split('/').filter(|c| !c.is_empty()) {
        path = format!("{path}/{comp}");
        wanted.push(path.clone());
    }
    let mut best: Option<(usize, &serde_json::Value)> = None;
    for (k, v) in auths {
        let k = normalize(k);
        if let Some(rank) = wanted.iter().position(|w| *w == k) {
            if best.is_none_or(|(r, _)| rank > r) {
                best = Some((rank, v));
            }
        }
    }
    let Some((_, entry)) = best else {
        return Ok(None);
    };
    let Some(auth) = entry.get("auth").and_then(|a| a.as_str()) else {
        return Ok(None);
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|e| format!("the `auth` entry for {host} is not base64: {e}"))?;
    let raw =
        String::from_utf8(raw).map_err(|_| format!("the `auth` entry for {host} is not UTF-8"))?;
    match raw.split_once(':') {
        Some((u, p)) => Ok(Some(Credentials {
            user: u.into(),
            pass: p.into(),
        })),
        None => Err(format!("the `auth` entry for {host} is not user:password")),
    }
}

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Basic realm="x"` or `Bearer realm="..",service="..",scope=".."`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        _ => None,
    }
}

fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            (v, &q[end.min(q.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.insert(key, value);
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// What a request needs access to: push and pull on `repo`, and pull on
/// `from` for a cross-repository mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub repo: String,
    pub from: Option<String>,
}

impl Scope {
    pub fn push(repo: &str) -> Scope {
        Scope {
            repo: repo.into(),
            from: None,
        }
    }

    pub fn mount(repo: &str, from: &str) -> Scope {
        Scope {
            repo: repo.into(),
            from: Some(from.into()).filter(|f: &String| f != repo),
        }
    }

    /// The token scopes: `repository:<repo>:pull,push` (and
    /// `repository:<from>:pull`).
    pub fn strings(&self) -> Vec<String> {
        let mut v = vec![format!("repository:{}:pull,push", self.repo)];
        if let Some(f) = &self.from {
            v.push(format!("repository:{f}:pull"));
        }
        v
    }

    /// Harbor's project: the first path component, when there are several.
    pub fn project(&self) -> Option<String> {
        self.repo.split_once('/').map(|(p, _)| p.to_string())
    }
}

#[derive(Debug, Clone)]
enum Mode {
    Anonymous,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

struct Token {
    value: String,
    renew_after: Instant,
}

/// How requests to one registry are authorized.
pub struct Auth {
    host: String,
    creds: Option<Credentials>,
    mode: RwLock<Mode>,
    tokens: Mutex<HashMap<String, Token>>,
    fetched: std::sync::atomic::AtomicU64,
}

impl Auth {
    pub fn new(host: &str, creds: Option<Credentials>) -> Auth {
        Auth {
            host: host.into(),
            creds,
            mode: RwLock::new(Mode::Anonymous),
            tokens: Mutex::new(HashMap::new()),
            fetched: Default::default(),
        }
    }

    /// The Basic `Authorization` value of the credentials, if any.
    pub fn basic(&self) -> Option<String> {
        self.creds.as_ref().map(Credentials::basic)
    }

    /// How many tokens were fetched so far.
    pub fn tokens_fetched(&self) -> u64 {
        self.fetched.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A description of the mode, for reports: `anonymous`, `basic`, `bearer`.
    pub fn mode_name(&self) -> &'static str {
        match &*self.mode.read().expect("not poisoned") {
            Mode::Anonymous => "anonymous",
            Mode::Basic => "basic",
            Mode::Bearer { .. } => "bearer",
        }
    }

    /// The `Authorization` header for a request needing `scope`, fetching
    /// a token when none is cached or the cached one nears expiry.
    pub fn header(&self, agent: &ureq::Agent, scope: &Scope) -> Result<Option<String>> {
        let mode = self.mode.read().expect("not poisoned").clone();
        match mode {
            Mode::Anonymous => Ok(None),
            Mode::Basic => Ok(self.creds.as_ref().map(Credentials::basic)),
            Mode::Bearer { realm, service } => {
                let key = scope.strings().join(" ");
                if let Some(t) = self.tokens.lock().expect("not poisoned").get(&key) {
                    if Instant::now() < t.renew_after {
                        return Ok(Some(format!("Bearer {}", t.value)));
                    }
                }
                let t = self.fetch_token(agent, &realm, service.as_deref(), &scope.strings())?;
                let value = format!("Bearer {}", t.value);
                self.tokens.lock().expect("not poisoned").insert(key, t);
                Ok(Some(value))
            }
        }
    }

    /// Handles a 401 to a request for `scope`: adopts the challenge's
    /// scheme and drops the cached token, so that the next `header` asks
    /// for a new one. Fails when there is nothing new to try.
    pub fn challenged(&self, reply: &Reply, scope: &Scope, sent: Option<&str>) -> Result<()> {
        let challenge = reply
            .header("www-authenticate")
            .and_then(parse_challenge)
            .ok_or_else(|| {
                RemoteError::Status {
                    method: "request".into(),
                    url: self.host.clone(),
                    status: 401,
                    message: format!(
                        "unauthorized, with no usable WWW-Authenticate challenge: {}",
                        reply.message()
                    ),
                }
                .into_error()
            })?;
        match challenge {
            Challenge::Basic => {
                let Some(c) = &self.creds else {
                    return Err(RemoteError::NoCredentials {
                        host: self.host.clone(),
                    }
                    .into_error());
                };
                if sent.is_some_and(|s| s.starts_with("Basic ")) {
                    return Err(RemoteError::BadCredentials {
                        host: self.host.clone(),
                        user: Some(c.user.clone()),
                        detail: reply.message(),
                    }
                    .into_error());
                }
                *self.mode.write().expect("not poisoned") = Mode::Basic;
            }
            Challenge::Bearer { realm, service, .. } => {
                *self.mode.write().expect("not poisoned") = Mode::Bearer { realm, service };
                self.tokens
                    .lock()
                    .expect("not poisoned")
                    .remove(&scope.strings().join(" "));
            }
        }
        Ok(())
    }

    /// The error for a request still refused after a fresh authorization.
    pub fn refused(&self, reply: &Reply, scope: &Scope) -> Error {
        let insufficient = reply
            .header("www-authenticate")
            .is_some_and(|h| h.contains("insufficient_scope"));
        let message = if insufficient && reply.body.is_empty() {
            "the token grants no access to this repository (insufficient_scope)".to_string()
        } else {
            reply.message()
        };
        let mode = self.mode.read().expect("not poisoned").clone();
        match (mode, &self.creds) {
            (Mode::Basic, Some(c)) => RemoteError::BadCredentials {
                host: self.host.clone(),
                user: Some(c.user.clone()),
                detail: reply.message(),
            },
            (_, None) => RemoteError::NoCredentials {
                host: self.host.clone(),
            },
            (_, Some(_)) => RemoteError::Denied {
                host: self.host.clone(),
                repo: scope.repo.clone(),
                project: scope.project(),
                message,
            },
        }
        .into_error()
    }

    /// Checks the credentials once, before any work, the way `login` does:
    /// Basic against `/v2/`, Bearer by asking the realm for a token with no
    /// scope.
    pub fn login(&self, agent: &ureq::Agent, base: &str, ping: &Reply) -> Result<()> {
        let scope = Scope::push("");
        self.challenged(ping, &scope, None)?;
        let mode = self.mode.read().expect("not poisoned").clone();
        match mode {
            Mode::Anonymous => Ok(()),
            Mode::Basic => {
                let h = self.creds.as_ref().map(Credentials::basic);
                let url = format!("{base}/v2/");
                let r = exchange(agent, "GET", &url, &[], h.as_deref(), Body::Empty)?;
                match r.status {
                    200 => Ok(()),
                    401 => Err(self.refused(&r, &scope)),
                    s => Err(RemoteError::Status {
                        method: "GET".into(),
                        url,
                        status: s,
                        message: r.message(),
                    }
                    .into_error()),
                }
            }
            Mode::Bearer { realm, service } => {
                if self.creds.is_some() {
                    self.fetch_token(agent, &realm, service.as_deref(), &[])?;
                }
                Ok(())
            }
        }
    }

    fn fetch_token(
        &self,
        agent: &ureq::Agent,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<Token> {
        let mut query: Vec<String> = Vec::new();
        if let Some(s) = service {
            query.push(format!("service={}", encode(s)));
        }
        query.extend(scopes.iter().map(|s| format!("scope={}", encode(s))));
        let sep = if realm.contains('?') { '&' } else { '?' };
        let url = if query.is_empty() {
            realm.to_string()
        } else {
            format!("{realm}{sep}{}", query.join("&"))
        };
        let basic = self.creds.as_ref().map(Credentials::basic);
        let started = Instant::now();
        let r = exchange(agent, "GET", &url, &[], basic.as_deref(), Body::Empty)?;
        self.fetched
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match r.status {
            200 => {}
            401 | 403 => {
                return Err(match &self.creds {
                    Some(c) => RemoteError::BadCredentials {
                        host: self.host.clone(),
                        user: Some(c.user.clone()),
                        detail: format!("the token service {realm} said: {}", r.message()),
                    },
                    None => RemoteError::NoCredentials {
                        host: self.host.clone(),
                    },
                }
                .into_error())
            }
            s => {
                return Err(RemoteError::Status {
                    method: "GET".into(),
                    url: realm.into(),
                    status: s,
                    message: r.message(),
                }
                .into_error())
            }
        }
        let doc: serde_json::Value = serde_json::from_slice(&r.body).map_err(|e| {
            RemoteError::Protocol {
                url: realm.into(),
                message: format!("the token service answered something that is not JSON: {e}"),
            }
            .into_error()
        })?;
        let value = doc
            .get("token")
            .or_else(|| doc.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                RemoteError::Protocol {
                    url: realm.into(),
                    message: "the token service answered no token".into(),
                }
                .into_error()
            })?;
        let life = doc
            .get("expires_in")
            .and_then(|e| e.as_u64())
            .unwrap_or(60)
            .max(1);
        // Renew a little early: a token must not expire mid-request.
        let margin = (life / 4).min(30);
        Ok(Token {
            value: value.to_string(),
            renew_after: started + Duration::from_secs(life - margin),
        })
    }
}

/// Percent-encodes a query component (RFC 3986 unreserved kept).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://h/service/token",service="harbor-registry",scope="repository:p/a:pull,push",error="insufficient_scope""#
            ),
            Some(Challenge::Bearer {
                realm: "https://h/service/token".into(),
                service: Some("harbor-registry".into()),
                scope: Some("repository:p/a:pull,push".into()),
            })
        );
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn reads_auth_files_as_skopeo_does() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let text = format!(
            r#"{{"auths": {{
                "https://index.docker.io/v1/": {{"auth": "{}"}},
                "harbor.local:8443": {{"auth": "{}"}},
                "harbor.local:8443/proj": {{"auth": "{}"}}
            }}}}"#,
            b64("hub:1"),
            b64("admin:Harbor12345"),
            b64("robot$proj:tok:en")
        );
        let get = |h: &str, ns: &str| from_auth_json(&text, h, ns).unwrap().map(|c| c.user);
        assert_eq!(get("docker.io", "").as_deref(), Some("hub"));
        assert_eq!(get("harbor.local:8443", "").as_deref(), Some("admin"));
        assert_eq!(
            get("harbor.local:8443", "other/x").as_deref(),
            Some("admin")
        );
        assert_eq!(
            get("harbor.local:8443", "proj/app").as_deref(),
            Some("robot$proj")
        );
        let c = from_auth_json(&text, "harbor.local:8443", "proj")
            .unwrap()
            .unwrap();
        assert_eq!(c.pass, "tok:en");
        assert_eq!(get("elsewhere", ""), None);
        assert!(from_auth_json("nope", "h", "").is_err());
    }

    #[test]
    fn scopes_and_credentials() {
        assert_eq!(
            Scope::mount("p/a", "p/b").strings(),
            ["repository:p/a:pull,push", "repository:p/b:pull"]
        );
        assert_eq!(Scope::mount("p/a", "p/a").strings().len(), 1);
        assert_eq!(Scope::push("p/a").project().as_deref(), Some("p"));
        assert_eq!(Scope::push("a").project(), None);
        let c = Credentials::parse("u:p:w").unwrap();
        assert_eq!((c.user.as_str(), c.pass.as_str()), ("u", "p:w"));
        assert_eq!(c.basic(), "Basic dTpwOnc=");
        assert!(Credentials::parse("nopass").is_err());
        assert_eq!(
            encode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }
}
