//! Credentials: `--creds USER:PASS`, `--authfile FILE`, or the files that
//! skopeo (containers/image) and docker read, as they read them.

use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::error::{Error, Result};

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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn parses_creds() {
        let c = Credentials::parse("u:p:w").unwrap();
        assert_eq!((c.user.as_str(), c.pass.as_str()), ("u", "p:w"));
        assert_eq!(c.basic(), "Basic dTpwOnc=");
        assert!(Credentials::parse("nopass").is_err());
    }
}
