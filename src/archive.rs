//! A registry tree inside a tar: where each entry lies in it.
//!
//! regkit's own bundles hold `docker/registry/v2/...`; the archives people
//! make by hand hold the same tree at other depths: `tar -czf docker.tar.gz
//! docker` (`docker/registry/v2/...`), `tar -C /var/lib/registry -cf r.tar .`
//! (`./docker/registry/v2/...`), `tar -C /var/lib -cf r.tar registry`
//! (`registry/docker/registry/v2/...`), or the `v2` folder itself
//! (`./blobs/...`, `./repositories/...`). The first entry below `blobs/` or
//! `repositories/` tells the depth; every entry is then placed against it.

use std::path::{Component, Path};

use crate::paths::{BLOBS, REPOSITORIES};

/// Where an entry lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// In the tree: its path relative to the `v2` folder.
    Tree(String),
    /// A folder above the tree (`./`, `docker/`, `docker/registry/v2/`).
    Above,
    /// Beside the tree (another file of the archived folder): skipped.
    Outside(String),
    /// An absolute path or one with `..`: never unpacked anywhere.
    Escape,
}

/// Places entries once it has learned the tree's depth.
#[derive(Debug, Default, Clone)]
pub struct Locator {
    /// The components before `blobs/` or `repositories/`, once known.
    prefix: Option<Vec<String>>,
}

/// The prefixes a tree may have in an archive: the `v2` folder, `v2`,
/// `registry/v2`, `docker/registry/v2`, and one folder above that.
fn is_tree_prefix(p: &[&str]) -> bool {
    matches!(
        p,
        [] | ["v2"]
            | ["registry", "v2"]
            | ["docker", "registry", "v2"]
            | [_, "docker", "registry", "v2"]
    )
}

impl Locator {
    pub fn new() -> Locator {
        Locator::default()
    }

    /// The depth found: `docker/registry/v2` for regkit's own bundles.
    pub fn prefix(&self) -> Option<String> {
        self.prefix.as_ref().map(|p| p.join("/"))
    }

    pub fn place(&mut self, name: &str) -> Place {
        let path = Path::new(name);
        if path.is_absolute() {
            return Place::Escape;
        }
        let mut parts: Vec<&str> = Vec::new();
        for c in path.components() {
            match c {
                Component::Normal(s) => match s.to_str() {
                    Some(s) => parts.push(s),
                    None => return Place::Escape,
                },
                Component::CurDir => {}
                _ => return Place::Escape,
            }
        }
        if self.prefix.is_none() {
            if let Some(i) = parts
                .iter()
                .position(|p| *p == BLOBS || *p == REPOSITORIES)
                .filter(|i| is_tree_prefix(&parts[..*i]))
            {
                self.prefix = Some(parts[..i].iter().map(|s| s.to_string()).collect());
            }
        }
        let clean = parts.join("/");
        match &self.prefix {
            Some(prefix) => {
                let n = prefix.len();
                let under = parts.len() > n && parts[..n].iter().zip(prefix).all(|(a, b)| a == b);
                if under {
                    Place::Tree(parts[n..].join("/"))
                } else if parts.len() <= n && parts.iter().zip(prefix).all(|(a, b)| a == b) {
                    Place::Above
                } else {
                    Place::Outside(clean)
                }
            }
            // Before the tree shows itself: folders that may hold it.
            None if could_hold_tree(&parts) => Place::Above,
            None => Place::Outside(clean),
        }
    }
}

/// Whether `parts` is a folder above some allowed tree prefix.
fn could_hold_tree(parts: &[&str]) -> bool {
    let chains: [&[&str]; 3] = [&["docker", "registry", "v2"], &["registry", "v2"], &["v2"]];
    let starts = |p: &[&str], chain: &[&str]| p.len() <= chain.len() && p == &chain[..p.len()];
    parts.is_empty()
        || chains.iter().any(|c| starts(parts, c))
        || (starts(&parts[1..], &["docker", "registry", "v2"]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn places(names: &[&str]) -> Vec<Place> {
        let mut l = Locator::new();
        names.iter().map(|n| l.place(n)).collect()
    }

    #[test]
    fn finds_the_tree_at_the_usual_depths() {
        let tree = |s: &str| Place::Tree(s.to_string());
        let cases: [(&[&str], Vec<Place>); 5] = [
            (
                &[
                    "docker/",
                    "docker/registry/v2/blobs/x",
                    "docker/registry/v2/",
                ],
                vec![Place::Above, tree("blobs/x"), Place::Above],
            ),
            (
                &[
                    "./",
                    "./docker/",
                    "./docker/registry/v2/repositories/a",
                    "./notes.txt",
                ],
                vec![
                    Place::Above,
                    Place::Above,
                    tree("repositories/a"),
                    Place::Outside("notes.txt".into()),
                ],
            ),
            (
                &["registry/", "registry/docker/registry/v2/blobs/sha256/"],
                vec![Place::Above, tree("blobs/sha256")],
            ),
            (
                &["./blobs/sha256", "./repositories/x"],
                vec![tree("blobs/sha256"), tree("repositories/x")],
            ),
            (
                &["../x", "/etc/passwd", "docker/registry/v2/../../../e"],
                vec![Place::Escape, Place::Escape, Place::Escape],
            ),
        ];
        for (names, want) in &cases {
            assert_eq!(&places(names), want, "{names:?}");
        }
        // A folder deeper than the usual depths is not taken for the tree.
        assert_eq!(
            places(&["a/b/c/blobs/x"]),
            vec![Place::Outside("a/b/c/blobs/x".into())]
        );
    }
}
