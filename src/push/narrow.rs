//! A store that shows only the repositories a request names, so that the
//! catalog walk reads those and not the whole tree: pushing 20 images out
//! of a 5000-tag registry then reads 20 tags' worth of links and manifests.
//! It is a [`Backend`] over the filesystem one; blobs are all visible.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::paths::Spec;
use crate::selection::Request;
use crate::store::{Backend, DirEntry, FsBackend, Store};

/// `store` narrowed to the repositories of `req`, or `None` when the
/// request names none (every tag).
pub fn narrowed(store: &Store, req: &Request) -> Option<Store> {
    if req.refs.is_empty() {
        return None;
    }
    let mut repos: Vec<String> = Vec::new();
    for r in &req.refs {
        // Selection also tries `library/<name>`, as Docker Hub names do.
        repos.push(r.repo.clone());
        repos.push(format!("library/{}", r.repo));
    }
    let backend = Narrowed {
        inner: FsBackend::new(store.v2().to_path_buf()),
        root: Spec::RepositoriesRoot.path(),
        repos,
    };
    Some(Store::with_backend(
        Arc::new(backend),
        store.v2().to_path_buf(),
    ))
}

struct Narrowed {
    inner: FsBackend,
    root: PathBuf,
    repos: Vec<String>,
}

impl Narrowed {
    /// Whether the folder `path` (a repository path, `""` for the root)
    /// lies on the way to, or inside, a wanted repository.
    fn visible(&self, path: &str) -> bool {
        self.repos.iter().any(|r| {
            r == path
                || path.is_empty()
                || r.starts_with(&format!("{path}/"))
                || path.starts_with(&format!("{r}/"))
        })
    }
}

impl Backend for Narrowed {
    fn list(&self, rel: &Path) -> io::Result<Vec<DirEntry>> {
        let entries = self.inner.list(rel)?;
        let Ok(inside) = rel.strip_prefix(&self.root) else {
            return Ok(entries);
        };
        let path = inside.to_string_lossy().replace('\\', "/");
        if self
            .repos
            .iter()
            .any(|r| *r == path || path.starts_with(&format!("{r}/")))
        {
            return Ok(entries);
        }
        Ok(entries
            .into_iter()
            .filter(|e| {
                let child = if path.is_empty() {
                    e.name.clone()
                } else {
                    format!("{path}/{}", e.name)
                };
                self.visible(&child)
            })
            .collect())
    }

    fn read(&self, rel: &Path, limit: u64) -> io::Result<Vec<u8>> {
        self.inner.read(rel, limit)
    }

    fn open(&self, rel: &Path) -> io::Result<Box<dyn Read + Send>> {
        self.inner.open(rel)
    }

    fn size(&self, rel: &Path) -> io::Result<u64> {
        self.inner.size(rel)
    }

    fn local_path(&self, rel: &Path) -> Option<PathBuf> {
        self.inner.local_path(rel)
    }

    fn display(&self, rel: &Path) -> PathBuf {
        self.inner.display(rel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{find_repositories, Catalog, WalkOptions};
    use crate::reference::ImageRef;

    #[test]
    fn shows_only_the_named_repositories() {
        let t = tempfile::tempdir().unwrap();
        let v2 = t.path().join(crate::paths::V2_PREFIX);
        for repo in ["a/b", "a/b/c", "a/x", "library/alpine", "z"] {
            std::fs::create_dir_all(v2.join(Spec::TagsRoot(repo).path())).unwrap();
        }
        let store = Store::open(t.path()).unwrap();
        assert_eq!(find_repositories(&store).unwrap().len(), 5);
        let req = Request {
            refs: ["a/b:1", "alpine:3"]
                .iter()
                .map(|s| ImageRef::parse(s).unwrap())
                .collect(),
            ..Default::default()
        };
        let narrow = narrowed(&store, &req).unwrap();
        assert_eq!(
            find_repositories(&narrow).unwrap(),
            ["a/b", "a/b/c", "library/alpine"]
        );
        assert!(Catalog::load(&narrow, WalkOptions::default()).is_ok());
        assert!(narrowed(&store, &Request::default()).is_none());
    }
}
