//! Where images go: `DEST` (`[http[s]://]host[:port][/namespace]`), an
//! optional `--dest-prefix`, and an optional map file of renames.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::paths;
pub use crate::remote::Scheme;

/// The destination registry and the namespace inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Forced by DEST (`http://`, `https://`); otherwise https, and http
    /// too with `--tls-verify=false`.
    pub scheme: Option<Scheme>,
    /// `host[:port]`.
    pub host: String,
    /// `a/b` or empty.
    pub namespace: String,
}

impl FromStr for Destination {
    type Err = Error;

    fn from_str(input: &str) -> Result<Destination> {
        let bad = |reason: &str| Error::BadReference {
            input: input.into(),
            reason: reason.into(),
        };
        let mut s = input
            .trim()
            .strip_prefix("docker://")
            .unwrap_or(input.trim());
        let mut scheme = None;
        for (prefix, sch) in [("https://", Scheme::Https), ("http://", Scheme::Http)] {
            if let Some(rest) = s.strip_prefix(prefix) {
                scheme = Some(sch);
                s = rest;
            }
        }
        let s = s.trim_end_matches('/');
        let (host, namespace) = s.split_once('/').unwrap_or((s, ""));
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        {
            return Err(bad(
                "expected host[:port][/namespace], e.g. harbor.example.com or 127.0.0.1:5000/team",
            ));
        }
        if !namespace.is_empty() && !paths::is_valid_repository_name(namespace) {
            return Err(bad(&format!(
                "`{namespace}` is not a namespace (lowercase path components)"
            )));
        }
        if namespace.contains(':') || namespace.contains('@') {
            return Err(bad("DEST names a registry and namespace, not an image"));
        }
        Ok(Destination {
            scheme,
            host: host.to_string(),
            namespace: namespace.to_string(),
        })
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = self.scheme {
            write!(f, "{}://", s.as_str())?;
        }
        f.write_str(&self.host)?;
        if !self.namespace.is_empty() {
            write!(f, "/{}", self.namespace)?;
        }
        Ok(())
    }
}

/// Where one image lands, inside the destination registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub repo: String,
    /// `None` for an image selected by digest (pushed by digest only).
    pub tag: Option<String>,
}

/// Renames read from a map file: `SOURCE DEST` per line, each `repo` or
/// `repo:tag`; `#` comments. An exact `repo:tag` line wins over a `repo` line.
#[derive(Debug, Clone, Default)]
pub struct RepoMap {
    repos: HashMap<String, String>,
    tags: HashMap<(String, String), (String, Option<String>)>,
}

impl RepoMap {
    pub fn read(path: &Path) -> Result<RepoMap> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::io("read map file", path, e))?;
        RepoMap::parse(&text).map_err(|message| Error::BadList {
            message,
            path: Some(path.into()),
        })
    }

    pub fn parse(text: &str) -> std::result::Result<RepoMap, String> {
        let mut map = RepoMap::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [from, to] = fields[..] else {
                return Err(format!(
                    "line {}: expected `SOURCE DEST` (repo or repo:tag each), found `{line}`",
                    i + 1
                ));
            };
            let (from_repo, from_tag) =
                split_tag(from).map_err(|e| format!("line {}: {e}", i + 1))?;
            let (to_repo, to_tag) = split_tag(to).map_err(|e| format!("line {}: {e}", i + 1))?;
            match from_tag {
                Some(t) => {
                    map.tags.insert((from_repo, t), (to_repo, to_tag));
                }
                None if to_tag.is_some() => {
                    return Err(format!(
                        "line {}: a whole repository maps to a repository, not to `{to}`",
                        i + 1
                    ))
                }
                None => {
                    map.repos.insert(from_repo, to_repo);
                }
            }
        }
        Ok(map)
    }

    /// The name and tag `repo[:tag]` is renamed to.
    pub fn apply(&self, repo: &str, tag: Option<&str>) -> (String, Option<String>) {
        if let Some(t) = tag {
            if let Some((r, nt)) = self.tags.get(&(repo.to_string(), t.to_string())) {
                return (r.clone(), Some(nt.clone().unwrap_or_else(|| t.to_string())));
            }
        }
        match self.repos.get(repo) {
            Some(r) => (r.clone(), tag.map(str::to_string)),
            None => (repo.to_string(), tag.map(str::to_string)),
        }
    }
}

fn split_tag(s: &str) -> std::result::Result<(String, Option<String>), String> {
    let slash = s.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match s[slash..].rfind(':') {
        Some(i) => (&s[..slash + i], Some(s[slash + i + 1..].to_string())),
        None => (s, None),
    };
    if !paths::is_valid_repository_name(repo) {
        return Err(format!("`{repo}` is not a repository name"));
    }
    if let Some(t) = &tag {
        if !paths::is_valid_tag(t) {
            return Err(format!("`{t}` is not a tag"));
        }
    }
    Ok((repo.to_string(), tag))
}

/// How source names become destination names: map, then
/// `namespace/prefix/name`.
#[derive(Debug, Clone)]
pub struct Naming {
    pub dest: Destination,
    prefix: String,
    map: RepoMap,
}

impl Naming {
    pub fn new(dest: Destination, prefix: Option<&str>, map: RepoMap) -> Result<Naming> {
        let prefix = prefix.unwrap_or("").trim_matches('/').to_string();
        if !prefix.is_empty() && !paths::is_valid_repository_name(&prefix) {
            return Err(Error::BadReference {
                input: prefix,
                reason: "--dest-prefix must be repository path components, like `project/`".into(),
            });
        }
        Ok(Naming { dest, prefix, map })
    }

    /// The destination of `repo[:tag]`.
    pub fn target(&self, repo: &str, tag: Option<&str>) -> Result<Target> {
        let (mapped, tag) = self.map.apply(repo, tag);
        let name = [self.dest.namespace.as_str(), &self.prefix, &mapped]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/");
        if !paths::is_valid_repository_name(&name) {
            return Err(Error::invalid(format!(
                "`{name}` is not a valid repository name at the destination (at most 255 characters)"
            ))
            .in_image(repo));
        }
        Ok(Target { repo: name, tag })
    }

    /// `host/repo:tag` or `host/repo@digest`, for messages.
    pub fn display(&self, t: &Target, digest: &crate::Digest) -> String {
        match &t.tag {
            Some(tag) => format!("{}/{}:{tag}", self.dest.host, t.repo),
            None => format!("{}/{}@{digest}", self.dest.host, t.repo),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_destinations() {
        let d: Destination = "harbor.local:8443/proj/sub".parse().unwrap();
        assert_eq!(
            (d.host.as_str(), d.namespace.as_str()),
            ("harbor.local:8443", "proj/sub")
        );
        assert_eq!(d.scheme, None);
        let d: Destination = "http://127.0.0.1:5000/".parse().unwrap();
        assert_eq!((d.scheme, d.namespace.as_str()), (Some(Scheme::Http), ""));
        let d: Destination = "docker://reg.example".parse().unwrap();
        assert_eq!(d.host, "reg.example");
        assert!("".parse::<Destination>().is_err());
        assert!("host/Bad".parse::<Destination>().is_err());
        assert!("host/app:1".parse::<Destination>().is_err());
    }

    #[test]
    fn names_targets_with_prefix_and_map() {
        let map =
            RepoMap::parse("# renames\nold/app new/app\nteam/x:v1 other/y:v9\nteam/z:v1 kept/z\n")
                .unwrap();
        let n = Naming::new("h:5000/ns".parse().unwrap(), Some("proj/"), map).unwrap();
        let t = |r: &str, tag: &str| {
            let t = n.target(r, Some(tag)).unwrap();
            format!("{}:{}", t.repo, t.tag.unwrap())
        };
        assert_eq!(t("old/app", "1"), "ns/proj/new/app:1");
        assert_eq!(t("team/x", "v1"), "ns/proj/other/y:v9");
        assert_eq!(t("team/x", "v2"), "ns/proj/team/x:v2");
        assert_eq!(t("team/z", "v1"), "ns/proj/kept/z:v1");
        let plain = Naming::new("h".parse().unwrap(), None, RepoMap::default()).unwrap();
        assert_eq!(plain.target("a/b", None).unwrap().repo, "a/b");
        assert!(RepoMap::parse("a b c\n").is_err());
        assert!(RepoMap::parse("a b:1\n").is_err());
        assert!(Naming::new("h".parse().unwrap(), Some("Bad"), RepoMap::default()).is_err());
    }
}
