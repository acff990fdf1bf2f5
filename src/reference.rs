//! Image references as users write them, and image lists in the seed format.
//!
//! A reference is `name[:tag][@sha256:<hex>]`. The name is kept as written:
//! mirrors store repositories under their upstream's name
//! (`registry.k8s.io/pause`, `docker.io/library/nginx`), so which repository
//! a name means is decided against the tree ([`ImageRef::candidates`]): the
//! repository of exactly that name when the tree has it, else the name
//! without a leading registry host, else `library/` + that. A bare `name`
//! means every tag of that repository, as `skopeo sync` treats a
//! repository.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::paths;

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ImageRef {
    /// The name as written, a registry host included
    /// (`registry.k8s.io/pause`, `harbor.local:5000/team/app`).
    pub repo: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
    /// The list line it was read from, for messages; `None` when given on
    /// the command line.
    pub origin: Option<Origin>,
}

/// A line of an image list.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin {
    pub path: PathBuf,
    /// From 1.
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.line)
    }
}

impl ImageRef {
    pub fn parse(input: &str) -> Result<ImageRef> {
        let bad = |reason: &str| Error::BadReference {
            input: input.into(),
            reason: reason.into(),
        };
        let s = input.trim();
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(Digest::parse(d).map_err(|e| bad(&e.to_string()))?)),
            None => (s, None),
        };
        // A tag is after the last `:` that follows the last `/`.
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(rest[slash + i + 1..].to_string())),
            None => (rest, None),
        };
        if !paths::is_valid_repository_name(name) && strip_host(name).is_none() {
            return Err(bad(&format!(
                "`{name}` is not a repository name (lowercase letters, digits and . _ - separators, / between components), nor a registry host and one"
            )));
        }
        if let Some(t) = &tag {
            if !paths::is_valid_tag(t) {
                return Err(bad(&format!(
                    "`{t}` is not a tag (up to 128 of A-Z a-z 0-9 _ . -, not starting with . or -)"
                )));
            }
        }
        Ok(ImageRef {
            repo: name.to_string(),
            tag,
            digest,
            origin: None,
        })
    }

    /// The repositories this reference may name, in the order they are
    /// tried against a tree: the name as written (when it can be a
    /// repository name), the name without its leading registry host, and
    /// for a one-component name, `library/` + it (as Docker Hub names
    /// official images).
    pub fn candidates(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if paths::is_valid_repository_name(&self.repo) {
            out.push(self.repo.clone());
        }
        if let Some(rest) = strip_host(&self.repo) {
            out.push(rest.to_string());
        }
        if let Some(last) = out.last().filter(|n| !n.contains('/')) {
            out.push(format!("library/{last}"));
        }
        out.dedup();
        out
    }

    /// The name with a leading registry host dropped, for sources that name
    /// images after the registry they came from (`docker save`, OCI
    /// annotations).
    pub fn without_host(&self) -> &str {
        strip_host(&self.repo).unwrap_or(&self.repo)
    }
}

/// The rest of `name` after a leading registry host: a first component
/// that is `localhost` or a host name with a `.` or a `:port`, followed by a
/// repository name. `None` if `name` does not start with a host (`./x` and
/// `../x` do not).
fn strip_host(name: &str) -> Option<&str> {
    let (first, rest) = name.split_once('/')?;
    let (host, port) = match first.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (first, None),
    };
    let labels_ok = !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let is_host = host.contains('.') || port.is_some() || host == "localhost";
    (is_host && labels_ok && port_ok && paths::is_valid_repository_name(rest)).then_some(rest)
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repo)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Reads image lists: files of one reference per line (`#` comments and
/// blank lines ignored, a UTF-8 byte order mark at the start too), or
/// folders of `*.list` files. Each reference remembers its file and line.
pub fn read_lists(paths: &[PathBuf]) -> Result<Vec<ImageRef>> {
    read_lists_with(paths, &|line, origin| {
        let mut r = ImageRef::parse(line)?;
        r.origin = Some(origin);
        Ok(vec![r])
    })
}

/// Reads image lists as [`read_lists`] does, each line read by `parse`
/// (with its file and line); an error of `parse` is named with them.
pub fn read_lists_with<T>(
    paths: &[PathBuf],
    parse: &dyn Fn(&str, Origin) -> Result<Vec<T>>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = fs::metadata(p).map_err(|e| Error::io("read image list", p, e))?;
        if meta.is_dir() {
            let mut files: Vec<PathBuf> = fs::read_dir(p)
                .map_err(|e| Error::io("list image-list folder", p, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "list") && f.is_file())
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(Error::Invalid {
                    message: "no *.list files in this folder".into(),
                    path: Some(p.clone()),
                });
            }
            for f in files {
                out.extend(read_list(&f, parse)?);
            }
        } else {
            out.extend(read_list(p, parse)?);
        }
    }
    Ok(out)
}

fn read_list<T>(path: &Path, parse: &dyn Fn(&str, Origin) -> Result<Vec<T>>) -> Result<Vec<T>> {
    let text = fs::read_to_string(path).map_err(|e| Error::io("read image list", path, e))?;
    // Editors on Windows start UTF-8 files with a byte order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = match line.find('#') {
            Some(c) => &line[..c],
            None => line,
        }
        .trim();
        if line.is_empty() {
            continue;
        }
        let origin = Origin {
            path: path.to_path_buf(),
            line: i + 1,
        };
        let read = parse(line, origin).map_err(|e| Error::BadList {
            message: format!("line {}: {e}", i + 1),
            path: Some(path.to_path_buf()),
        })?;
        out.extend(read);
    }
    Ok(out)
}

/// Parses the `--name-prefix` of exports: a registry host, a namespace, or
/// both (`harbor.local`, `harbor.local:5000/mirror`, `mirror`), put with a
/// `/` before every exported repository name. A trailing `/` is dropped.
pub fn parse_name_prefix(input: &str) -> Result<String> {
    let bad = |reason: &str| Error::BadReference {
        input: input.into(),
        reason: reason.into(),
    };
    let prefix = input.trim_end_matches('/');
    let (first, rest) = match prefix.split_once('/') {
        Some((f, r)) => (f, Some(r)),
        None => (prefix, None),
    };
    let is_host = first.contains('.') || first.contains(':') || first == "localhost";
    let namespace = if is_host {
        let (host, port) = match first.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (first, None),
        };
        let host_ok = !host.is_empty()
            && host.split('.').all(|l| {
                !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if !host_ok || !port_ok {
            return Err(bad(&format!(
                "`{first}` is not a registry host (name[:port])"
            )));
        }
        rest
    } else {
        Some(prefix)
    };
    if let Some(ns) = namespace {
        if !paths::is_valid_repository_name(ns) {
            return Err(bad(&format!(
                "`{ns}` is not a namespace (lowercase letters, digits and . _ - separators, / between components)"
            )));
        }
    }
    Ok(prefix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap()
    }

    #[test]
    fn parses_references() {
        assert_eq!(r("a/b/c:1.0").repo, "a/b/c");
        assert_eq!(r("a/b/c:1.0").tag.as_deref(), Some("1.0"));
        assert_eq!(r("team/app").tag, None);
        let d = Digest::sha256_of(b"a");
        let x = r(&format!("host:5000/app@{d}"));
        assert_eq!(
            (x.repo.as_str(), x.tag.clone(), x.digest.clone()),
            ("host:5000/app", None, Some(d))
        );
        assert!(ImageRef::parse("Bad/Name:1").is_err());
        assert!(ImageRef::parse("app:-x").is_err());
        assert!(ImageRef::parse("app@sha256:12").is_err());
        for not_a_host in ["./x", "../x", "./x:1", "-h.io/x", "h..io/x"] {
            assert!(ImageRef::parse(not_a_host).is_err(), "{not_a_host}");
        }
    }

    #[test]
    fn names_are_kept_as_written_and_tried_in_order() {
        let c = |s: &str| r(s).candidates();
        assert_eq!(
            c("registry.k8s.io/pause:3.9"),
            ["registry.k8s.io/pause", "pause", "library/pause"]
        );
        assert_eq!(
            c("docker.io/library/nginx:1.25"),
            ["docker.io/library/nginx", "library/nginx"]
        );
        assert_eq!(c("nginx"), ["nginx", "library/nginx"]);
        assert_eq!(c("localhost/app"), ["localhost/app", "app", "library/app"]);
        assert_eq!(
            c("quay.io/coreos/etcd"),
            ["quay.io/coreos/etcd", "coreos/etcd"]
        );
        assert_eq!(c("harbor.local:5000/team/app:v1"), ["team/app"]);
        assert_eq!(c("team/app"), ["team/app"]);
        assert_eq!(
            r("docker.io/library/alpine:3").without_host(),
            "library/alpine"
        );
        assert_eq!(r("a/b").without_host(), "a/b");
    }

    #[test]
    fn parses_name_prefixes() {
        for (input, want) in [
            ("harbor.local/", "harbor.local"),
            ("harbor.local:5000/mirror/x", "harbor.local:5000/mirror/x"),
            ("localhost", "localhost"),
            ("mirror", "mirror"),
        ] {
            assert_eq!(parse_name_prefix(input).unwrap(), want);
        }
        for bad in [
            "",
            "/",
            "Harbor_x/",
            "h.local:x/a",
            "h..local/a",
            "h.local/A",
        ] {
            assert!(parse_name_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_seed_lists_and_folders() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("lists");
        fs::create_dir(&dir).unwrap();
        fs::write(
            dir.join("b.list"),
            "# base\nlibrary/alpine:3.19\n\n  team/app:v1 # app\n",
        )
        .unwrap();
        fs::write(dir.join("a.list"), "harbor.local/x/y:1\n").unwrap();
        fs::write(dir.join("ignored.txt"), "nope:1\n").unwrap();
        let refs = read_lists(std::slice::from_ref(&dir)).unwrap();
        let names: Vec<String> = refs.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            names,
            ["harbor.local/x/y:1", "library/alpine:3.19", "team/app:v1"]
        );
        let origins: Vec<String> = refs
            .iter()
            .map(|r| r.origin.as_ref().unwrap().to_string())
            .collect();
        assert_eq!(
            origins,
            [
                format!("{}:1", dir.join("a.list").display()),
                format!("{}:2", dir.join("b.list").display()),
                format!("{}:4", dir.join("b.list").display()),
            ]
        );

        let bom = t.path().join("bom.list");
        fs::write(&bom, "\u{feff}team/app:v1\r\nx:1\r\n").unwrap();
        let refs = read_lists(&[bom]).unwrap();
        let names: Vec<String> = refs.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            names,
            ["team/app:v1", "x:1"],
            "a byte order mark and CRLF lines"
        );

        let bad = t.path().join("bad.list");
        fs::write(&bad, "ok:1\nNOT OK\n").unwrap();
        let err = read_lists(&[bad]).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
