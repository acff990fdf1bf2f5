//! An output never touches the tree it is made from: an OUT (or BUNDLE)
//! that is ROOT, contains it or lies inside it is refused before anything is
//! done, whatever `--force` says; so is an unpack or import source inside
//! the tree it is going into.
//!
//! Paths are compared after resolving symlinks, and by device and inode of
//! every ancestor, so a bind mount, a symlinked parent or `..` cannot hide
//! ROOT.

use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// The files or folders an output must stay clear of: ROOT as the user
/// named it, and the registry root directory found from it.
#[derive(Debug, Clone)]
pub struct Protected {
    paths: Vec<PathBuf>,
}

impl Protected {
    /// ROOT as given (`root`) and the `v2` folder found in it.
    pub fn tree(root: &Path, v2: &Path) -> Protected {
        // A tree in a bucket shares nothing with this machine's files.
        if v2.starts_with("s3:") {
            return Protected { paths: Vec::new() };
        }
        // v2 = <rootdirectory>/docker/registry/v2, or a v2 folder named
        // directly.
        let rootdir = if v2.ends_with(crate::paths::V2_PREFIX) {
            v2.ancestors().nth(3).unwrap_or(v2)
        } else {
            v2
        };
        let mut paths = vec![resolve(root), resolve(rootdir)];
        paths.dedup();
        Protected { paths }
    }

    /// Refuses `out` if it is, contains or lies inside a protected path.
    /// `what` names it in the message (`the output`, `the bundle`).
    pub fn check(&self, out: &Path, what: &'static str) -> Result<()> {
        if out == Path::new("-") {
            return Ok(());
        }
        let out_r = resolve(out);
        for p in &self.paths {
            if let Some(relation) = relation(&out_r, p) {
                return Err(Error::Overlap {
                    path: out.to_path_buf(),
                    what,
                    relation,
                    tree: p.clone(),
                });
            }
        }
        Ok(())
    }
}

/// How `out` stands to `tree`, if they overlap.
fn relation(out: &Path, tree: &Path) -> Option<&'static str> {
    let id = |p: &Path| p.metadata().ok().map(|m| (m.dev(), m.ino()));
    let tree_id = id(tree);
    let out_id = id(out);
    if out == tree || (out_id.is_some() && out_id == tree_id) {
        return Some("is");
    }
    if out.starts_with(tree)
        || (tree_id.is_some() && out.ancestors().skip(1).any(|a| id(a) == tree_id))
    {
        return Some("lies inside");
    }
    if tree.starts_with(out)
        || (out_id.is_some() && tree.ancestors().skip(1).any(|a| id(a) == out_id))
    {
        return Some("contains");
    }
    None
}

/// `path` made absolute with symlinks resolved: its deepest existing
/// ancestor is canonicalized and the rest (not there yet) appended, with
/// `.` and `..` applied.
pub fn resolve(path: &Path) -> PathBuf {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    };
    let mut rest: Vec<&std::ffi::OsStr> = Vec::new();
    let mut base = abs.as_path();
    let canonical = loop {
        if let Ok(c) = base.canonicalize() {
            break c;
        }
        match (base.file_name(), base.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                base = parent;
            }
            // `..` or `.` at the end of a path that does not exist.
            _ => match base.parent() {
                Some(parent) => {
                    rest.push(base.components().next_back().unwrap().as_os_str());
                    base = parent;
                }
                None => break PathBuf::from("/"),
            },
        }
    };
    let mut out = canonical;
    for part in rest.into_iter().rev() {
        match Path::new(part).components().next() {
            Some(Component::ParentDir) => {
                out.pop();
            }
            Some(Component::CurDir) | None => {}
            _ => out.push(part),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn refuses_root_its_parents_and_its_insides() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("reg");
        let v2 = root.join("docker/registry/v2");
        fs::create_dir_all(v2.join("blobs")).unwrap();
        std::os::unix::fs::symlink(&root, t.path().join("link")).unwrap();
        let p = Protected::tree(&root, &v2);
        let cases: [(PathBuf, Option<&str>); 9] = [
            (root.clone(), Some("is")),
            (t.path().join("link"), Some("is")),
            (t.path().to_path_buf(), Some("contains")),
            (PathBuf::from("/"), Some("contains")),
            (v2.clone(), Some("lies inside")),
            (v2.join("new/out"), Some("lies inside")),
            (t.path().join("link/docker/x"), Some("lies inside")),
            (root.join("../reg/./docker"), Some("lies inside")),
            (t.path().join("out"), None),
        ];
        for (out, want) in &cases {
            let got = p.check(out, "the output");
            match want {
                None => assert!(got.is_ok(), "{out:?}: {got:?}"),
                Some(rel) => match got {
                    Err(Error::Overlap { relation, .. }) => assert_eq!(relation, *rel, "{out:?}"),
                    other => panic!("{out:?}: {other:?}"),
                },
            }
        }
        assert_eq!(cases.len(), 9);
    }
}
