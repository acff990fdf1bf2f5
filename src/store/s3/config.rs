//! Where an S3 tree is and how to reach it: `s3://BUCKET[/ROOTDIRECTORY]`
//! with endpoint, region and credentials taken as AWS tools take them
//! (`AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
//! `AWS_DEFAULT_REGION`, `AWS_PROFILE` with `~/.aws/credentials` and
//! `~/.aws/config`), or the `storage` section of the registry's own
//! configuration file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::client::Endpoint;
use super::sigv4::Credentials;
use crate::error::{Error, Result};

/// Everything needed to open a tree in a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    pub bucket: String,
    /// The registry's `rootdirectory`, without slashes at either end.
    pub root: String,
    pub region: String,
    pub endpoint: Endpoint,
    /// `None`: unsigned requests (a public bucket).
    pub creds: Option<Credentials>,
}

/// What a ROOT argument names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A folder on this machine.
    Local(PathBuf),
    S3(S3Settings),
}

/// `s3://bucket/root` → (bucket, root).
pub fn parse_url(s: &str) -> Option<(String, String)> {
    let rest = s.strip_prefix("s3://")?;
    let (bucket, root) = rest.split_once('/').unwrap_or((rest, ""));
    Some((bucket.to_string(), root.trim_matches('/').to_string()))
}

/// What the user's environment says (a snapshot, so tests can give one).
#[derive(Debug, Default, Clone)]
pub struct Env {
    pub vars: BTreeMap<String, String>,
    pub home: Option<PathBuf>,
}

impl Env {
    pub fn current() -> Env {
        Env {
            vars: std::env::vars()
                .filter(|(k, _)| k.starts_with("AWS_"))
                .collect(),
            home: std::env::var_os("HOME").map(PathBuf::from),
        }
    }

    fn var(&self, k: &str) -> Option<&str> {
        self.vars
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn profile_name(&self) -> &str {
        self.var("AWS_PROFILE").unwrap_or("default")
    }

    /// The keys of the profile in `~/.aws/credentials` (section `[name]`)
    /// and `~/.aws/config` (section `[profile name]`, or `[default]`).
    fn profile(&self) -> BTreeMap<String, String> {
        let name = self.profile_name();
        let home = |f: &str| self.home.as_ref().map(|h| h.join(".aws").join(f));
        let mut out = BTreeMap::new();
        let config = self
            .var("AWS_CONFIG_FILE")
            .map(PathBuf::from)
            .or_else(|| home("config"));
        if let Some(text) = config.and_then(|p| std::fs::read_to_string(p).ok()) {
            let section = if name == "default" {
                "default".to_string()
            } else {
                format!("profile {name}")
            };
            out.extend(ini_section(&text, &section));
        }
        let creds = self
            .var("AWS_SHARED_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .or_else(|| home("credentials"));
        if let Some(text) = creds.and_then(|p| std::fs::read_to_string(p).ok()) {
            out.extend(ini_section(&text, name));
        }
        out
    }
}

/// The `key = value` lines of `[section]` of an INI file.
fn ini_section(text: &str, section: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            continue;
        }
        if inside {
            if let Some((k, v)) = line.split_once('=') {
                out.insert(k.trim().to_lowercase(), v.trim().to_string());
            }
        }
    }
    out
}

/// An endpoint URL (`http://127.0.0.1:9000`, `https://minio.local`) or host.
fn endpoint_of(url: &str, secure: bool) -> Result<Endpoint> {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => ((if secure { "https" } else { "http" }).to_string(), url),
    };
    if scheme != "http" && scheme != "https" {
        return Err(Error::invalid(format!(
            "`{url}` is not an http(s) endpoint"
        )));
    }
    let host = rest.trim_end_matches('/').to_string();
    if host.is_empty() || host.contains('/') {
        return Err(Error::invalid(format!(
            "`{url}` is not an endpoint URL (scheme://host[:port])"
        )));
    }
    Ok(Endpoint {
        scheme,
        host,
        // An explicit endpoint is MinIO, Ceph RGW or a test server: they
        // take path-style requests, as distribution 2.8 sends them.
        path_style: true,
    })
}

/// Settings for `s3://bucket/root` from the environment.
pub fn from_env(bucket: &str, root: &str, env: &Env) -> Result<S3Settings> {
    if bucket.is_empty() {
        return Err(Error::invalid(
            "an s3:// ROOT needs a bucket: s3://BUCKET[/ROOTDIRECTORY]",
        ));
    }
    let profile = env.profile();
    let p = |k: &str| profile.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let region = env
        .var("AWS_REGION")
        .or_else(|| env.var("AWS_DEFAULT_REGION"))
        .or_else(|| p("region"))
        .unwrap_or("us-east-1")
        .to_string();
    let endpoint = match env
        .var("AWS_ENDPOINT_URL_S3")
        .or_else(|| env.var("AWS_ENDPOINT_URL"))
        .or_else(|| p("endpoint_url"))
    {
        Some(url) => endpoint_of(url, true)?,
        None => Endpoint {
            scheme: "https".into(),
            host: format!("s3.{region}.amazonaws.com"),
            path_style: false,
        },
    };
    let creds = match (
        env.var("AWS_ACCESS_KEY_ID"),
        env.var("AWS_SECRET_ACCESS_KEY"),
    ) {
        (Some(a), Some(s)) => Some(Credentials {
            access_key: a.into(),
            secret_key: s.into(),
            session_token: env.var("AWS_SESSION_TOKEN").map(str::to_string),
        }),
        _ => match (p("aws_access_key_id"), p("aws_secret_access_key")) {
            (Some(a), Some(s)) => Some(Credentials {
                access_key: a.into(),
                secret_key: s.into(),
                session_token: p("aws_session_token").map(str::to_string),
            }),
            _ => None,
        },
    };
    Ok(S3Settings {
        bucket: bucket.to_string(),
        root: root.trim_matches('/').to_string(),
        region,
        endpoint,
        creds,
    })
}

/// Whether a file looks like a registry configuration (YAML with a
/// `storage` section), as opposed to a bundle or anything else.
pub fn is_registry_config(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    if !meta.is_file() || meta.len() > 1 << 20 {
        return false;
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    matches!(
        yaml_rust2::YamlLoader::load_from_str(&text).ok().and_then(|d| d.into_iter().next()),
        Some(doc) if !doc["storage"].is_badvalue()
    )
}

/// The tree a registry configuration file names: its `storage` section,
/// `filesystem` or `s3`. Keys it leaves out come from the environment, as
/// for an `s3://` ROOT.
pub fn from_registry_config(path: &Path, env: &Env) -> Result<Target> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
    let bad = |m: String| Error::Invalid {
        message: m,
        path: Some(path.into()),
    };
    let docs = yaml_rust2::YamlLoader::load_from_str(&text)
        .map_err(|e| bad(format!("not a registry configuration: {e}")))?;
    let doc = docs
        .first()
        .ok_or_else(|| bad("empty configuration".into()))?;
    let storage = &doc["storage"];
    let str_of = |y: &yaml_rust2::Yaml| -> Option<String> {
        match y {
            yaml_rust2::Yaml::String(s) => Some(s.clone()),
            yaml_rust2::Yaml::Integer(i) => Some(i.to_string()),
            yaml_rust2::Yaml::Boolean(b) => Some(b.to_string()),
            _ => None,
        }
    };
    if !storage["filesystem"].is_badvalue() {
        let root = str_of(&storage["filesystem"]["rootdirectory"])
            .unwrap_or_else(|| "/var/lib/registry".into());
        return Ok(Target::Local(PathBuf::from(root)));
    }
    let s3 = &storage["s3"];
    if s3.is_badvalue() {
        let kinds: Vec<String> = storage
            .as_hash()
            .map(|h| h.keys().filter_map(str_of).collect())
            .unwrap_or_default();
        return Err(bad(format!(
            "the storage driver is {}; regkit reads filesystem and s3",
            if kinds.is_empty() {
                "not set".into()
            } else {
                kinds.join(", ")
            }
        )));
    }
    let bucket = str_of(&s3["bucket"]).ok_or_else(|| bad("storage.s3 has no bucket".into()))?;
    let root = str_of(&s3["rootdirectory"]).unwrap_or_default();
    let mut settings = from_env(&bucket, &root, env)?;
    if let Some(r) = str_of(&s3["region"]) {
        settings.region = r;
    }
    let secure = str_of(&s3["secure"]).is_none_or(|v| v != "false");
    if let Some(e) = str_of(&s3["regionendpoint"]).filter(|e| !e.is_empty()) {
        settings.endpoint = endpoint_of(&e, secure)?;
    } else if !secure {
        settings.endpoint.scheme = "http".into();
    }
    if let (Some(a), Some(s)) = (str_of(&s3["accesskey"]), str_of(&s3["secretkey"])) {
        if !a.is_empty() && !s.is_empty() {
            settings.creds = Some(Credentials {
                access_key: a,
                secret_key: s,
                session_token: str_of(&s3["sessiontoken"]).filter(|t| !t.is_empty()),
            });
        }
    }
    Ok(Target::S3(settings))
}

/// What a ROOT argument names: `s3://...`, a registry configuration file,
/// or a local folder.
pub fn target(arg: &Path, env: &Env) -> Result<Target> {
    let s = arg.to_string_lossy();
    if let Some((bucket, root)) = parse_url(&s) {
        return from_env(&bucket, &root, env).map(Target::S3);
    }
    if is_registry_config(arg) {
        return from_registry_config(arg, env);
    }
    Ok(Target::Local(arg.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)], home: Option<&Path>) -> Env {
        Env {
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            home: home.map(Path::to_path_buf),
        }
    }

    #[test]
    fn reads_locations_as_aws_tools_do() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join(".aws")).unwrap();
        std::fs::write(
            t.path().join(".aws/credentials"),
            "[default]\naws_access_key_id = D\naws_secret_access_key = DS\n[ops]\naws_access_key_id=O\naws_secret_access_key=OS\naws_session_token=OT\n",
        )
        .unwrap();
        std::fs::write(
            t.path().join(".aws/config"),
            "[default]\nregion = eu-west-1\n[profile ops]\nregion = eu-north-1\nendpoint_url = http://127.0.0.1:9000\n",
        )
        .unwrap();
        let home = Some(t.path());
        let s = from_env("b", "/reg/", &env(&[], home)).unwrap();
        assert_eq!((s.root.as_str(), s.region.as_str()), ("reg", "eu-west-1"));
        assert_eq!(s.endpoint.host, "s3.eu-west-1.amazonaws.com");
        assert!(!s.endpoint.path_style);
        assert_eq!(s.creds.unwrap().access_key, "D");
        let s = from_env("b", "", &env(&[("AWS_PROFILE", "ops")], home)).unwrap();
        assert_eq!(s.region, "eu-north-1");
        assert_eq!(
            (s.endpoint.scheme.as_str(), s.endpoint.host.as_str()),
            ("http", "127.0.0.1:9000")
        );
        assert!(s.endpoint.path_style);
        assert_eq!(s.creds.unwrap().session_token.as_deref(), Some("OT"));
        let vars = [
            ("AWS_PROFILE", "ops"),
            ("AWS_ACCESS_KEY_ID", "E"),
            ("AWS_SECRET_ACCESS_KEY", "ES"),
            ("AWS_ENDPOINT_URL", "https://minio.local"),
            ("AWS_ENDPOINT_URL_S3", "http://s3.local:81"),
            ("AWS_DEFAULT_REGION", "ap-south-1"),
        ];
        let s = from_env("b", "", &env(&vars, home)).unwrap();
        assert_eq!(s.endpoint.host, "s3.local:81");
        assert_eq!(s.region, "ap-south-1");
        assert_eq!(s.creds.unwrap().access_key, "E");
        assert_eq!(
            parse_url("s3://bkt/a/b/"),
            Some(("bkt".into(), "a/b".into()))
        );
        assert_eq!(parse_url("s3://bkt"), Some(("bkt".into(), String::new())));
        assert!(from_env("", "", &env(&[], None)).is_err());
    }

    #[test]
    fn reads_the_storage_section_of_a_registry_config() {
        let t = tempfile::tempdir().unwrap();
        let cfg = t.path().join("config.yml");
        std::fs::write(
            &cfg,
            "version: 0.1\nstorage:\n  s3: {region: us-east-1, bucket: B, regionendpoint: \"127.0.0.1:9000\", accesskey: K, secretkey: S, secure: false, v4auth: true, rootdirectory: /reg}\n  delete: {enabled: true}\nhttp:\n  addr: :5000\n",
        )
        .unwrap();
        assert!(is_registry_config(&cfg));
        let Target::S3(s) = target(&cfg, &env(&[], None)).unwrap() else {
            panic!("not s3")
        };
        assert_eq!((s.bucket.as_str(), s.root.as_str()), ("B", "reg"));
        assert_eq!(
            (s.endpoint.scheme.as_str(), s.endpoint.host.as_str()),
            ("http", "127.0.0.1:9000")
        );
        assert_eq!(s.creds.unwrap().secret_key, "S");
        std::fs::write(
            &cfg,
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /srv/reg\n",
        )
        .unwrap();
        assert_eq!(
            target(&cfg, &env(&[], None)).unwrap(),
            Target::Local("/srv/reg".into())
        );
        std::fs::write(&cfg, "version: 0.1\nstorage:\n  azure: {accountname: x}\n").unwrap();
        let err = target(&cfg, &env(&[], None)).unwrap_err();
        assert!(err.to_string().contains("azure"), "{err}");
        // Not a config: a tar, a folder.
        std::fs::write(&cfg, b"\0\0\0binary").unwrap();
        assert!(!is_registry_config(&cfg));
        assert!(!is_registry_config(t.path()));
    }
}
