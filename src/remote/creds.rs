//! Credentials: `--creds USER:PASS`, `--authfile FILE`, or the files that
//! skopeo (containers/image) and docker read, as they read them: `auths`
//! entries, and the credential helpers named by `credHelpers` (per
//! registry) and `credsStore` (for all), run as `docker-credential-<name>
//! get`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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
/// `$DOCKER_CONFIG/config.json` (`~/.docker`).
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
    out.extend(
        env("DOCKER_CONFIG")
            .or_else(|| home.map(|h| h.join(".docker")))
            .map(|d| d.join("config.json")),
    );
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
        let invalid = |message| Error::Invalid {
            message,
            path: Some(f.clone()),
        };
        // As docker: the registry's own helper first, then the file's
        // entry, then the helper for every registry.
        let helpers = helpers(&text, host).map_err(invalid)?;
        if let Some(h) = &helpers.per_registry {
            if let Some(c) = run_helper(h, host).map_err(invalid)? {
                return Ok(Some(c));
            }
        }
        if let Some(c) = from_auth_json(&text, host, ns).map_err(invalid)? {
            return Ok(Some(c));
        }
        if let Some(h) = &helpers.store {
            if let Some(c) = run_helper(h, host).map_err(invalid)? {
                return Ok(Some(c));
            }
        }
    }
    Ok(None)
}

/// The credential helpers a config file names for a registry.
#[derive(Debug, Default, PartialEq, Eq)]
struct Helpers {
    /// `credHelpers[<host>]`.
    per_registry: Option<String>,
    /// `credsStore`.
    store: Option<String>,
}

fn helpers(text: &str, host: &str) -> std::result::Result<Helpers, String> {
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("credentials file is not JSON: {e}"))?;
    let host = normalize_key(host);
    let name = |v: &serde_json::Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    Ok(Helpers {
        per_registry: doc
            .get("credHelpers")
            .and_then(|h| h.as_object())
            .and_then(|h| h.iter().find(|(k, _)| normalize_key(k) == host))
            .and_then(|(_, v)| name(v)),
        store: doc.get("credsStore").and_then(name),
    })
}

/// Runs `docker-credential-<name> get` with the registry on its standard
/// input, as docker does: `None` when the helper holds nothing for it.
fn run_helper(name: &str, host: &str) -> std::result::Result<Option<Credentials>, String> {
    let program = format!("docker-credential-{name}");
    // Docker Hub's credentials are kept under its old index URL.
    let server = match normalize_key(host).as_str() {
        "docker.io" => "https://index.docker.io/v1/".to_string(),
        _ => host.to_string(),
    };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                format!("the credential helper `{program}` that this file names is not on PATH")
            }
            _ => format!("cannot run the credential helper `{program}`: {e}"),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that does not read its input still answers.
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("cannot run the credential helper `{program}`: {e}"))?;
    let said = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    if !out.status.success() {
        let (stdout, stderr) = (said(&out.stdout), said(&out.stderr));
        // docker-credential-helpers' credentials.ErrCredentialsNotFound.
        if stdout.contains("credentials not found") || stderr.contains("credentials not found") {
            return Ok(None);
        }
        let why = [stdout, stderr]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        return Err(format!(
            "the credential helper `{program} get` failed for {server} ({}): {why}",
            out.status
        ));
    }
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!("the credential helper `{program} get` answered something that is not JSON: {e}")
    })?;
    let field = |k: &str| doc.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let (user, secret) = (field("Username"), field("Secret"));
    if user == "<token>" {
        return Err(format!(
            "the credential helper `{program}` holds an identity token for {server}, which regkit cannot use; give --creds USER:PASS or --authfile"
        ));
    }
    if user.is_empty() && secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials {
        user: user.into(),
        pass: secret.into(),
    }))
}

/// A registry as auth files spell it: no scheme, no trailing `/v1/` or
/// `/v2/`, Docker Hub's names as `docker.io`.
fn normalize_key(k: &str) -> String {
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
    let host = normalize_key(host);
    let mut wanted: Vec<String> = Vec::new();
    let mut path = host.clone();
    wanted.push(path.clone());
    for comp in ns.split('/').filter(|c| !c.is_empty()) {
        path = format!("{path}/{comp}");
        wanted.push(path.clone());
    }
    let mut best: Option<(usize, &serde_json::Value)> = None;
    for (k, v) in auths {
        let k = normalize_key(k);
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
    fn finds_the_helpers_docker_would_run() {
        let text = r#"{"auths": {}, "credsStore": "desktop",
            "credHelpers": {"harbor.local:8443": "pass", "https://index.docker.io/v1/": "hub"}}"#;
        let h = helpers(text, "harbor.local:8443").unwrap();
        assert_eq!(h.per_registry.as_deref(), Some("pass"));
        assert_eq!(h.store.as_deref(), Some("desktop"));
        assert_eq!(
            helpers(text, "docker.io").unwrap().per_registry.as_deref(),
            Some("hub")
        );
        assert_eq!(helpers(text, "elsewhere").unwrap().per_registry, None);
        assert_eq!(helpers("{}", "h").unwrap(), Helpers::default());
        let e = run_helper("regkit-test-no-such-helper", "h").unwrap_err();
        assert!(
            e.contains("docker-credential-regkit-test-no-such-helper") && e.contains("PATH"),
            "{e}"
        );
    }

    #[test]
    fn parses_creds() {
        let c = Credentials::parse("u:p:w").unwrap();
        assert_eq!((c.user.as_str(), c.pass.as_str()), ("u", "p:w"));
        assert_eq!(c.basic(), "Basic dTpwOnc=");
        assert!(Credentials::parse("nopass").is_err());
    }
}
