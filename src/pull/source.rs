//! What to pull from where, and under which name it is stored: IMAGE
//! arguments and list lines (`host[:port]/repo[:tag|@digest]`, or a name
//! below `--from` as the seed lists write it, `calico/cni:v3.16.3`;
//! image-syncer's `repo:tag1,tag2` too), Docker Hub's names, and the
//! stored name: the path below `--from`'s namespace, the upstream host in
//! front with `--scoped`, renamed by `--map`.

use std::fmt;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::paths;
use crate::push::dest::{Destination, RepoMap};
use crate::reference::Origin;

/// Docker Hub as image names spell it.
pub const DOCKER_HUB: &str = "docker.io";

/// `docker.io` for every name of Docker Hub; other hosts as they are.
pub fn canonical_host(host: &str) -> &str {
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB,
        h => h,
    }
}

/// The host that serves a registry's API: Docker Hub's is
/// `registry-1.docker.io`.
pub fn api_host(host: &str) -> &str {
    match canonical_host(host) {
        DOCKER_HUB => "registry-1.docker.io",
        h => h,
    }
}

/// Whether the first component of a name is a registry host (as docker
/// tells them: a `.` or a `:port`, or `localhost`).
fn is_host(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

/// One image (or repository) to pull, as named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The registry, as named (`docker.io` for Docker Hub).
    pub host: String,
    /// The repository on that registry (`library/nginx`).
    pub repo: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
    /// The list line it was read from.
    pub origin: Option<Origin>,
}

impl fmt::Display for Wanted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.repo)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Reads `input` as images to pull from `from`: one per tag of a
/// `repo:tag1,tag2` line.
pub fn parse_wanted(input: &str, from: &Destination) -> Result<Vec<Wanted>> {
    let bad = |reason: String| Error::BadReference {
        input: input.into(),
        reason,
    };
    let s = input.trim();
    let s = s.strip_prefix("docker://").unwrap_or(s);
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(Digest::parse(d).map_err(|e| bad(e.to_string()))?)),
        None => (s, None),
    };
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tags) = match rest[slash..].rfind(':') {
        Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..])),
        None => (rest, None),
    };
    let (host, path) = match name.split_once('/') {
        Some((first, rest)) if is_host(first) => (first.to_string(), rest.to_string()),
        _ => {
            let path = if from.namespace.is_empty() {
                name.to_string()
            } else {
                format!("{}/{name}", from.namespace)
            };
            (from.host.clone(), path)
        }
    };
    let host = canonical_host(&host).to_string();
    let repo = if host == DOCKER_HUB && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    if !paths::is_valid_repository_name(&repo) {
        return Err(bad(format!(
            "`{repo}` is not a repository name (lowercase letters, digits and . _ - separators, / between components)"
        )));
    }
    let tags: Vec<Option<String>> = match tags {
        None => vec![None],
        Some(t) => t
            .split(',')
            .map(|t| {
                let t = t.trim();
                if paths::is_valid_tag(t) {
                    Ok(Some(t.to_string()))
                } else {
                    Err(bad(format!(
                        "`{t}` is not a tag (up to 128 of A-Z a-z 0-9 _ . -, not starting with . or -)"
                    )))
                }
            })
            .collect::<Result<_>>()?,
    };
    if digest.is_some() && tags.len() > 1 {
        return Err(bad("a digest names one image, not several tags".into()));
    }
    Ok(tags
        .into_iter()
        .map(|tag| Wanted {
            host: host.clone(),
            repo: repo.clone(),
            tag,
            digest: digest.clone(),
            origin: None,
        })
        .collect())
}

/// How upstream names become names in ROOT.
#[derive(Debug, Clone)]
pub struct Naming {
    pub from: Destination,
    /// Keep the upstream host as the first component (`skopeo sync --scoped`).
    pub scoped: bool,
    pub map: RepoMap,
}

impl Naming {
    /// The stored name and tag of `repo[:tag]` on `host`.
    pub fn stored(
        &self,
        host: &str,
        repo: &str,
        tag: Option<&str>,
    ) -> Result<(String, Option<String>)> {
        let host = canonical_host(host);
        let base = if self.scoped {
            if host.contains(':') {
                return Err(Error::invalid(format!(
                    "--scoped keeps the registry host as the first component of the name, and `{host}` cannot be one (a repository name holds no `:`); name it with --map instead"
                )));
            }
            format!("{host}/{repo}")
        } else {
            let ns = &self.from.namespace;
            match repo
                .strip_prefix(ns.as_str())
                .and_then(|r| r.strip_prefix('/'))
            {
                Some(below) if !ns.is_empty() && host == canonical_host(&self.from.host) => {
                    below.to_string()
                }
                _ => repo.to_string(),
            }
        };
        let (name, tag) = self.map.apply(&base, tag);
        if !paths::is_valid_repository_name(&name) {
            return Err(Error::invalid(format!(
                "`{name}` is not a valid repository name (at most 255 characters)"
            )));
        }
        Ok((name, tag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(s: &str) -> Destination {
        s.parse().unwrap()
    }

    fn w(input: &str, f: &str) -> Vec<String> {
        parse_wanted(input, &from(f))
            .unwrap()
            .iter()
            .map(|w| w.to_string())
            .collect()
    }

    #[test]
    fn reads_names_as_the_seed_lists_write_them() {
        assert_eq!(
            w("nginx:1.25", "docker.io"),
            ["docker.io/library/nginx:1.25"]
        );
        assert_eq!(
            w("calico/cni:v3.16.3", "docker.io"),
            ["docker.io/calico/cni:v3.16.3"]
        );
        assert_eq!(
            w("registry.k8s.io/pause:3.9", "docker.io"),
            ["registry.k8s.io/pause:3.9"]
        );
        assert_eq!(
            w("index.docker.io/alpine", "quay.io"),
            ["docker.io/library/alpine"]
        );
        assert_eq!(
            w("app:v1", "127.0.0.1:5000/team"),
            ["127.0.0.1:5000/team/app:v1"]
        );
        assert_eq!(
            w("127.0.0.1:5000/x/y:1,2", "docker.io"),
            ["127.0.0.1:5000/x/y:1", "127.0.0.1:5000/x/y:2"],
            "image-syncer's tag lists"
        );
        let d = Digest::sha256_of(b"x");
        assert_eq!(
            w(&format!("localhost/a@{d}"), "docker.io"),
            [format!("localhost/a@{d}")]
        );
        for bad in ["Bad/Name", "a:-x", "a:1,", &format!("a:1,2@{d}")] {
            assert!(parse_wanted(bad, &from("docker.io")).is_err(), "{bad}");
        }
    }

    #[test]
    fn stores_names_below_the_namespace_or_scoped() {
        let n = |f: &str, scoped: bool| Naming {
            from: from(f),
            scoped,
            map: RepoMap::parse("team/old team/new\n").unwrap(),
        };
        let s = |n: &Naming, host: &str, repo: &str| n.stored(host, repo, Some("1")).unwrap().0;
        let plain = n("harbor.local/team", false);
        assert_eq!(s(&plain, "harbor.local", "team/app"), "app");
        assert_eq!(
            s(&plain, "quay.io", "team/app"),
            "team/app",
            "another registry"
        );
        let hub = n("docker.io", false);
        assert_eq!(s(&hub, "docker.io", "library/nginx"), "library/nginx");
        assert_eq!(s(&hub, "docker.io", "team/old"), "team/new", "--map");
        let scoped = n("docker.io", true);
        assert_eq!(
            s(&scoped, "registry.k8s.io", "pause"),
            "registry.k8s.io/pause"
        );
        assert_eq!(
            s(&scoped, "index.docker.io", "library/nginx"),
            "docker.io/library/nginx"
        );
        assert!(scoped.stored("127.0.0.1:5000", "a", None).is_err());
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("quay.io"), "quay.io");
    }
}
