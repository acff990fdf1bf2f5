//! The storage tree behind a small backend interface.
//!
//! Commands never touch the filesystem of ROOT directly: they ask a
//! [`Store`], which asks its [`Backend`] to list a folder, read a small file,
//! open a blob or name a local file to link from. A registry on S3 keeps the
//! same paths under a bucket prefix; an object-store backend implements the
//! same four calls and returns `None` from `local_path`, so outputs copy.

mod local;
mod locate;

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use local::{read_small, FsBackend};
use locate::locate_v2;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::paths::{self, Spec};

/// Manifests larger than this are refused, as distribution refuses them.
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// One entry of a listed folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub is_dir: bool,
}

/// Read access to a tree, by paths relative to its `v2` folder.
pub trait Backend: Send + Sync {
    /// The entries of a folder; `NotFound` if it does not exist.
    fn list(&self, rel: &Path) -> io::Result<Vec<DirEntry>>;
    /// The whole content of a small file, refusing more than `limit` bytes.
    fn read(&self, rel: &Path, limit: u64) -> io::Result<Vec<u8>>;
    /// A stream over a (possibly large) file.
    fn open(&self, rel: &Path) -> io::Result<Box<dyn Read + Send>>;
    /// The size of a file; `NotFound` if it does not exist.
    fn size(&self, rel: &Path) -> io::Result<u64>;
    /// A path on a local filesystem that outputs may hardlink or reflink
    /// from, if the backend has one.
    fn local_path(&self, rel: &Path) -> Option<PathBuf>;
    /// How to name `rel` in messages.
    fn display(&self, rel: &Path) -> PathBuf;
    /// Opens files of one folder in turn (`names` relative to `dir`) and
    /// hands each to `f` with its index. A local backend opens the folder
    /// once, so each file costs a short path walk.
    fn each_in(
        &self,
        dir: &Path,
        names: &[PathBuf],
        f: &mut dyn FnMut(usize, io::Result<&mut dyn Read>),
    ) {
        for (i, n) in names.iter().enumerate() {
            match self.open(&dir.join(n)) {
                Ok(mut r) => f(i, Ok(&mut *r)),
                Err(e) => f(i, Err(e)),
            }
        }
    }
    /// When a file or folder was last modified (stale uploads are told by
    /// it); `NotFound` if it does not exist.
    fn modified(&self, rel: &Path) -> io::Result<std::time::SystemTime> {
        let _ = rel;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "no modification times",
        ))
    }
}

/// A registry storage tree.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    v2: PathBuf,
}

impl Store {
    /// Opens the tree at `path`, which may be the registry's root directory
    /// (holding `docker/registry/v2`), the `v2` folder itself, or a parent
    /// of the root directory up to three levels up, when exactly one tree
    /// lies below it.
    pub fn open(path: &Path) -> Result<Store> {
        let v2 = locate_v2(path)?;
        Ok(Store {
            backend: Arc::new(FsBackend::new(v2.clone())),
            v2,
        })
    }

    /// A store over any backend (`v2` names it in messages).
    pub fn with_backend(backend: Arc<dyn Backend>, v2: PathBuf) -> Store {
        Store { backend, v2 }
    }

    /// The `v2` folder.
    pub fn v2(&self) -> &Path {
        &self.v2
    }

    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    /// How to name a place of the tree in messages.
    pub fn display(&self, spec: &Spec) -> PathBuf {
        self.backend.display(&spec.path())
    }

    /// Lists a folder of the tree; a missing folder lists as empty.
    pub fn list(&self, spec: &Spec) -> Result<Vec<DirEntry>> {
        let rel = spec.path();
        match self.backend.list(&rel) {
            Ok(v) => Ok(v),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::io("list folder", self.backend.display(&rel), e)),
        }
    }

    /// Reads a link file strictly. `Ok(None)` if it does not exist.
    pub fn read_link(&self, spec: &Spec) -> Result<Option<Digest>> {
        let rel = spec.path();
        let bytes = match self.backend.read(&rel, 1024) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(Error::BadLink {
                    path: self.backend.display(&rel),
                    found: "(more than 1 KiB)".into(),
                })
            }
            Err(e) => return Err(Error::io("read link", self.backend.display(&rel), e)),
        };
        paths::parse_link(&bytes)
            .map(Some)
            .map_err(|e| Error::BadLink {
                path: self.backend.display(&rel),
                found: e.found,
            })
    }

    /// Reads a small file of the tree (at most `limit` bytes); `Ok(None)`
    /// if it does not exist.
    pub fn read_file(&self, spec: &Spec, limit: u64) -> Result<Option<Vec<u8>>> {
        let rel = spec.path();
        match self.backend.read(&rel, limit) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read file", self.backend.display(&rel), e)),
        }
    }

    /// When a place of the tree was last modified; `Ok(None)` if it does
    /// not exist.
    pub fn modified(&self, spec: &Spec) -> Result<Option<std::time::SystemTime>> {
        let rel = spec.path();
        match self.backend.modified(&rel) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("stat", self.backend.display(&rel), e)),
        }
    }

    /// Reads link files of one folder strictly, in order (`Ok(None)` for
    /// one that does not exist): each costs a short path walk.
    pub fn read_links_in(&self, dir: &Spec, links: &[Spec]) -> Vec<Result<Option<Digest>>> {
        let base = dir.path();
        let names: Vec<PathBuf> = links.iter().map(|l| relative(l, &base)).collect();
        let mut out: Vec<Result<Option<Digest>>> = Vec::with_capacity(links.len());
        self.backend.each_in(&base, &names, &mut |i, file| {
            let bytes = match file.and_then(|f| read_small(f, 1024)) {
                Ok(b) => b,
                Err(e) => {
                    out.push(self.link_error(&links[i].path(), e));
                    return;
                }
            };
            out.push(
                paths::parse_link(&bytes)
                    .map(Some)
                    .map_err(|e| Error::BadLink {
                        path: self.backend.display(&links[i].path()),
                        found: e.found,
                    }),
            );
        });
        out
    }

    fn link_error(&self, rel: &Path, e: io::Error) -> Result<Option<Digest>> {
        match e.kind() {
            io::ErrorKind::NotFound => Ok(None),
            io::ErrorKind::InvalidData => Err(Error::BadLink {
                path: self.backend.display(rel),
                found: "(more than 1 KiB)".into(),
            }),
            _ => Err(Error::io("read link", self.backend.display(rel), e)),
        }
    }

    /// Every blob stored under `blobs/sha256/`, found by listing the tree
    /// (folders whose names are not digests are skipped).
    pub fn list_blobs(&self) -> Result<Vec<Digest>> {
        use rayon::prelude::*;
        let prefixes = self.list(&Spec::BlobsRoot)?;
        let algos: Vec<String> = prefixes
            .into_iter()
            .filter(|e| e.is_dir)
            .map(|e| e.name)
            .collect();
        let mut out = Vec::new();
        for algo in algos {
            let dir = Path::new(paths::BLOBS).join(&algo);
            let two: Vec<String> = match self.backend.list(&dir) {
                Ok(v) => v
                    .into_iter()
                    .filter(|e| e.is_dir && e.name.len() == 2)
                    .map(|e| e.name)
                    .collect(),
                Err(e) => return Err(Error::io("list folder", self.backend.display(&dir), e)),
            };
            let found: Vec<Vec<Digest>> = two
                .par_iter()
                .map(|t| {
                    let sub = dir.join(t);
                    let entries = self
                        .backend
                        .list(&sub)
                        .map_err(|e| Error::io("list folder", self.backend.display(&sub), e))?;
                    Ok(entries
                        .into_iter()
                        .filter(|e| e.is_dir && e.name.starts_with(t.as_str()))
                        .filter_map(|e| Digest::from_parts(&algo, &e.name).ok())
                        .collect())
                })
                .collect::<Result<_>>()?;
            out.extend(found.into_iter().flatten());
        }
        out.sort();
        Ok(out)
    }

    /// The size of a blob, or `None` if it is missing.
    pub fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        let rel = Spec::BlobData(digest).path();
        match self.backend.size(&rel) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("stat blob", self.backend.display(&rel), e)),
        }
    }

    /// Reads a whole (small) blob, such as a manifest or a config.
    pub fn read_blob(&self, digest: &Digest, what: &str) -> Result<Vec<u8>> {
        let rel = Spec::BlobData(digest).path();
        self.backend
            .read(&rel, MAX_MANIFEST_SIZE)
            .map_err(|e| self.blob_error(digest, what, e))
    }

    /// Opens a blob for streaming.
    pub fn open_blob(&self, digest: &Digest, what: &str) -> Result<Box<dyn Read + Send>> {
        let rel = Spec::BlobData(digest).path();
        self.backend
            .open(&rel)
            .map_err(|e| self.blob_error(digest, what, e))
    }

    /// The blob's path on a local filesystem, if it has one.
    pub fn blob_local_path(&self, digest: &Digest) -> Option<PathBuf> {
        self.backend.local_path(&Spec::BlobData(digest).path())
    }

    fn blob_error(&self, digest: &Digest, what: &str, e: io::Error) -> Error {
        let path = self.backend.display(&Spec::BlobData(digest).path());
        if e.kind() == io::ErrorKind::NotFound {
            Error::MissingBlob {
                digest: digest.clone(),
                what: what.into(),
                path,
            }
        } else {
            Error::io("read blob", path, e)
        }
    }
}

/// The path of `spec` inside `dir` (a folder spec that contains it).
pub fn relative(spec: &Spec, dir: &Path) -> PathBuf {
    spec.path()
        .strip_prefix(dir)
        .expect("the folder contains the file")
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn locates_v2_from_root_v2_and_parent() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("var/lib/registry");
        let v2 = root.join(paths::V2_PREFIX);
        fs::create_dir_all(v2.join("repositories")).unwrap();
        assert_eq!(locate_v2(&root).unwrap(), v2);
        assert_eq!(locate_v2(&v2).unwrap(), v2);
        assert_eq!(locate_v2(&t.path().join("var/lib")).unwrap(), v2);
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            locate_v2(empty.path()),
            Err(Error::NotAStorageTree { .. })
        ));
    }

    #[test]
    fn reads_links_strictly() {
        let t = tempfile::tempdir().unwrap();
        let v2 = t.path().join(paths::V2_PREFIX);
        let d = Digest::sha256_of(b"m");
        let good = v2.join(Spec::TagCurrentLink("a", "ok").path());
        let bad = v2.join(Spec::TagCurrentLink("a", "bad").path());
        for (p, content) in [(&good, d.to_string()), (&bad, format!("{d}\n"))] {
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, content).unwrap();
        }
        let store = Store::open(t.path()).unwrap();
        assert_eq!(
            store.read_link(&Spec::TagCurrentLink("a", "ok")).unwrap(),
            Some(d)
        );
        assert!(matches!(
            store.read_link(&Spec::TagCurrentLink("a", "bad")),
            Err(Error::BadLink { .. })
        ));
        assert_eq!(
            store.read_link(&Spec::TagCurrentLink("a", "none")).unwrap(),
            None
        );
    }

    #[test]
    fn reads_small_files_in_one_go_and_long_ones_whole() {
        let long = vec![7u8; 20_000];
        assert_eq!(read_small(&mut &long[..], 30_000).unwrap(), long);
        assert!(read_small(&mut &long[..], 1024).is_err());
        assert!(read_small(&mut &long[..8192], 8191).is_err());
        assert_eq!(read_small(&mut &long[..8192], 8192).unwrap().len(), 8192);
        assert_eq!(read_small(&mut &b""[..], 0).unwrap(), b"");
    }

    #[test]
    fn reads_links_of_a_folder() {
        let t = tempfile::tempdir().unwrap();
        let v2 = t.path().join(paths::V2_PREFIX);
        let (a, b, c) = (
            Digest::sha256_of(b"a"),
            Digest::sha256_of(b"b"),
            Digest::sha256_of(b"c"),
        );
        for (d, content) in [(&a, a.to_string()), (&b, "garbage".to_string())] {
            let p = v2.join(Spec::LayerLink("r", d).path());
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, content).unwrap();
        }
        let store = Store::open(t.path()).unwrap();
        let specs = [
            Spec::LayerLink("r", &a),
            Spec::LayerLink("r", &b),
            Spec::LayerLink("r", &c),
        ];
        let got = store.read_links_in(&Spec::LayersRoot("r"), &specs);
        assert_eq!(got[0].as_ref().unwrap(), &Some(a.clone()));
        assert!(matches!(&got[1], Err(Error::BadLink { path, .. }) if path.ends_with("link")));
        assert!(matches!(got[2], Ok(None)));
        // A folder that does not exist: every link is absent.
        let got = store.read_links_in(&Spec::LayersRoot("none"), &[Spec::LayerLink("none", &a)]);
        assert!(matches!(got[0], Ok(None)));
    }
}
