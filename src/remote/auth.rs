//! Authentication as registries do it: anonymous, Basic, and the Bearer
//! token flow announced by `WWW-Authenticate` (realm, service, scope), with
//! one token per scope (pull, or pull and push) reused until it nears
//! expiry.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::remote::client::{exchange, Body, Reply};
pub use crate::remote::creds::Credentials;
use crate::remote::error::{missing_project, RemoteError};

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

/// What a request does to a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads: manifests and blobs.
    Pull,
    /// Reads and writes.
    Push,
    /// Lists the registry's repositories (`registry:catalog:*`).
    Catalog,
}

impl Access {
    /// The actions of a token scope.
    pub fn actions(self) -> &'static str {
        match self {
            Access::Pull => "pull",
            Access::Push => "pull,push",
            Access::Catalog => "*",
        }
    }

    /// For "denied ... `repo`".
    pub fn denied(self) -> &'static str {
        match self {
            Access::Pull => "pull from",
            Access::Push => "push to",
            Access::Catalog => "list",
        }
    }
}

/// What a request needs access to: pull (or push and pull) on `repo`, and
/// pull on `from` for a cross-repository mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub repo: String,
    pub access: Access,
    pub from: Option<String>,
}

impl Scope {
    pub fn pull(repo: &str) -> Scope {
        Scope {
            repo: repo.into(),
            access: Access::Pull,
            from: None,
        }
    }

    pub fn push(repo: &str) -> Scope {
        Scope {
            repo: repo.into(),
            access: Access::Push,
            from: None,
        }
    }

    /// Listing the repositories (`/v2/_catalog`).
    pub fn catalog() -> Scope {
        Scope {
            repo: "_catalog".into(),
            access: Access::Catalog,
            from: None,
        }
    }

    pub fn mount(repo: &str, from: &str) -> Scope {
        Scope {
            repo: repo.into(),
            access: Access::Push,
            from: Some(from.into()).filter(|f: &String| f != repo),
        }
    }

    /// The token scopes: `repository:<repo>:pull` or `...:pull,push` (and
    /// `repository:<from>:pull`).
    pub fn strings(&self) -> Vec<String> {
        if self.access == Access::Catalog {
            return vec!["registry:catalog:*".into()];
        }
        let mut v = vec![format!(
            "repository:{}:{}",
            self.repo,
            self.access.actions()
        )];
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
                    retry_after: None,
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
                access: scope.access,
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
        let scope = Scope::pull("");
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
                    _ => Err(RemoteError::status("GET", &url, &r).into_error()),
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
            _ => {
                let message = r.message();
                return Err(match missing_project(&message) {
                    Some(project) => RemoteError::ProjectMissing {
                        host: self.host.clone(),
                        project,
                        message,
                    },
                    None => RemoteError::status("GET", realm, &r),
                }
                .into_error());
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
    fn scopes_and_encoding() {
        assert_eq!(
            Scope::mount("p/a", "p/b").strings(),
            ["repository:p/a:pull,push", "repository:p/b:pull"]
        );
        assert_eq!(Scope::mount("p/a", "p/a").strings().len(), 1);
        assert_eq!(Scope::pull("p/a").strings(), ["repository:p/a:pull"]);
        assert_eq!(Scope::catalog().strings(), ["registry:catalog:*"]);
        assert_eq!(Scope::push("p/a").project().as_deref(), Some("p"));
        assert_eq!(Scope::push("a").project(), None);
        assert_eq!(
            encode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }
}
