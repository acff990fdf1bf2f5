//! The storage tree behind a small backend interface.
//!
//! Commands never touch the filesystem of ROOT directly: they ask a
//! [`Store`], which asks its [`Backend`] to list a folder, read a small file,
//! open a blob or name a local file to link from. A registry on S3 keeps the
//! same paths under a bucket prefix; an object-store backend implements the
//! same four calls and returns `None` from `local_path`, so outputs copy.

pub mod blocks;
mod local;
mod locate;
#[cfg(test)]
pub mod memory;
pub mod s3;
pub mod tar;

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use local::{read_small, FsBackend};
use locate::locate_v2;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::paths::{self, Spec};

/// Requests in flight against an object store (`REGKIT_S3_CONCURRENCY`).
fn s3_parallelism() -> usize {
    std::env::var("REGKIT_S3_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(32)
}

/// Manifests larger than this are refused, as distribution refuses them.
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// Bytes `[offset, offset + len)` of an open local file.
#[derive(Debug, Clone)]
pub struct Extent {
    pub file: Arc<std::fs::File>,
    pub offset: u64,
    pub len: u64,
}

impl Extent {
    /// A stream over bytes `[start, start + len)` of the extent, by
    /// `pread`s (many readers may share the file).
    pub fn reader(&self, start: u64, len: u64) -> RangeReader<Arc<std::fs::File>> {
        let pos = self.offset + start.min(self.len);
        RangeReader {
            source: self.file.clone(),
            pos,
            end: pos + len.min(self.len - start.min(self.len)),
        }
    }
}

/// Something read at offsets: a file, or a compressed bundle's members.
pub trait ReadAt {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

impl ReadAt for Arc<std::fs::File> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(&**self, buf, offset)
    }
}

/// A stream over bytes `[pos, end)` of a [`ReadAt`].
pub struct RangeReader<T> {
    pub source: T,
    pub pos: u64,
    pub end: u64,
}

impl<T: ReadAt> Read for RangeReader<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let room = self.end.saturating_sub(self.pos).min(buf.len() as u64) as usize;
        if room == 0 {
            return Ok(0);
        }
        let n = self.source.read_at(&mut buf[..room], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file ends before the bytes it should hold",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl<T: ReadAt> io::Seek for RangeReader<T> {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        let pos = match to {
            io::SeekFrom::Start(p) => Some(p),
            io::SeekFrom::End(d) => self.end.checked_add_signed(d),
            io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(self.pos)
    }
}

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
    /// Where a file's bytes lie on this machine: a range of an open local
    /// file (the whole of a tree's file, a member of a tar), so a server
    /// can send them from the file itself. `Unsupported` for backends that
    /// have no local files (object stores: use `open`).
    fn extent(&self, rel: &Path) -> io::Result<Extent> {
        let _ = rel;
        Err(io::Error::new(io::ErrorKind::Unsupported, "no local file"))
    }
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

    // The write half. Every write of a tree goes through these, so that
    // every backend keeps the same promise: a reader sees a file whole or
    // not at all. Read-only backends keep the defaults, which refuse.

    /// Puts `body` at `rel`, creating the folders above it, so that readers
    /// see all of it or nothing (disk: a temporary file renamed into place;
    /// object stores: one PUT). An existing file is left alone and
    /// [`PutError::Exists`] returned, unless `replace`.
    fn put(&self, rel: &Path, body: Body<'_>, replace: bool) -> Result<Method, PutError> {
        let _ = (rel, body, replace);
        Err(PutError::Write(read_only()))
    }

    /// Puts the files of the new folder `dir` (paths relative to it) so that
    /// it appears with all of them at once (disk: built aside and renamed
    /// into place; object stores, which have no folders: put in the order
    /// given, the last one making it whole). [`PutError::Exists`] if `dir`
    /// exists.
    fn put_folder(&self, dir: &Path, files: &[(&str, &[u8])]) -> Result<(), PutError> {
        let _ = (dir, files);
        Err(PutError::Write(read_only()))
    }

    /// Creates a folder (and those above it); object stores have none.
    fn create_dir(&self, rel: &Path) -> io::Result<()> {
        let _ = rel;
        Err(read_only())
    }

    /// Removes a file; one already gone counts as removed.
    fn remove_file(&self, rel: &Path) -> io::Result<()> {
        let _ = rel;
        Err(read_only())
    }

    /// Removes a folder and everything below it; gone already is fine.
    fn remove_tree(&self, rel: &Path) -> io::Result<()> {
        let _ = rel;
        Err(read_only())
    }

    /// Removes a folder if it is empty; says whether it is gone.
    fn remove_empty_dir(&self, rel: &Path) -> io::Result<bool> {
        let _ = rel;
        Err(read_only())
    }

    /// Removes many files; object stores batch them (DeleteObjects, 1000
    /// keys a request). Gone already is fine.
    fn remove_files(&self, rels: &[PathBuf]) -> io::Result<()> {
        rels.iter().try_for_each(|r| self.remove_file(r))
    }

    /// Whether the tree has folders of its own (a filesystem) or only files
    /// whose paths make folders (an object store: removing a folder's last
    /// file removes the folder).
    fn has_folders(&self) -> bool {
        true
    }

    /// Whether `rel` was written after `since` (`false` if it does not
    /// exist). A filesystem also counts a new hardlink or rename to it.
    fn written_since(&self, rel: &Path, since: std::time::SystemTime) -> io::Result<bool> {
        match self.modified(rel) {
            Ok(t) => Ok(t > since),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn read_only() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "this storage cannot be written to",
    )
}

/// What to put in a file of a tree.
pub enum Body<'a> {
    /// Small bytes: links.
    Bytes(&'a [u8]),
    /// A stream. With a digest, its bytes are hashed on the way and the
    /// file appears only if they match.
    Stream {
        reader: &'a mut dyn Read,
        digest: Option<&'a Digest>,
    },
    /// A local file whose bytes have `digest`: hardlinked where the backend
    /// can, else reflinked or copied (and a copy checked).
    File { path: &'a Path, digest: &'a Digest },
}

pub use crate::sink::place::Method;

/// Why a put did not happen. Nothing is left of it in the tree.
#[derive(Debug)]
pub enum PutError {
    /// Something is there already.
    Exists,
    /// Reading the body failed.
    Read(io::Error),
    /// The body's bytes have this digest, not the one asked for.
    Digest(Digest),
    /// Writing failed.
    Write(io::Error),
}

/// What putting a link found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPut {
    Written,
    /// The same link was there already.
    Present,
    /// Another digest was there and was replaced (`replace`).
    Replaced,
}

/// A registry storage tree.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    v2: PathBuf,
    /// The same backend when it is a bucket: for server-side copies, flat
    /// listings and request counts.
    s3: Option<Arc<s3::S3Backend>>,
    /// The tree is a bundle, read in place: read only.
    bundle: bool,
}

impl Store {
    /// Opens the tree at `path`, which may be the registry's root directory
    /// (holding `docker/registry/v2`), the `v2` folder itself, a parent
    /// of the root directory up to three levels up, when exactly one tree
    /// lies below it, or a bundle: a tar (gzip, zstd) holding a tree,
    /// recognised by content ([`tar::TarBackend`]).
    pub fn open(path: &Path) -> Result<Store> {
        if tar::is_archive(path) {
            let backend = tar::TarBackend::open(path)?;
            return Ok(Store {
                v2: backend.v2(),
                backend,
                s3: None,
                bundle: true,
            });
        }
        match s3::config::target(path, &s3::config::Env::current())? {
            s3::config::Target::S3(settings) => Store::open_s3(&settings),
            s3::config::Target::Local(root) => {
                let v2 = locate_v2(&root)?;
                Ok(Store {
                    backend: Arc::new(FsBackend::new(v2.clone())),
                    v2,
                    s3: None,
                    bundle: false,
                })
            }
        }
    }

    /// Opens the tree in a bucket (which need not hold one yet: writing
    /// commands make it).
    pub fn open_s3(settings: &s3::config::S3Settings) -> Result<Store> {
        // Requests wait on the network, not on cores: keep many in flight.
        // (The first pool built is the one every parallel loop uses.)
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(s3_parallelism())
            .build_global();
        let (agent, watch) = crate::remote::client::new_agent(
            crate::remote::tls::config(true, &[])?,
            s3_parallelism(),
            crate::remote::client::DEFAULT_TIMEOUT,
        );
        let client = s3::client::Client::new(
            agent,
            watch,
            settings.endpoint.clone(),
            settings.bucket.clone(),
            settings.region.clone(),
            settings.creds.clone(),
        );
        let backend = Arc::new(s3::S3Backend::new(Arc::new(client), &settings.root));
        let v2 = PathBuf::from(format!(
            "s3://{}/{}",
            settings.bucket,
            backend.prefix().trim_end_matches('/')
        ));
        Ok(Store {
            backend: backend.clone(),
            v2,
            s3: Some(backend),
            bundle: false,
        })
    }

    /// Whether a ROOT argument names a tree that is not on this machine's
    /// disks (`s3://...`, or a registry configuration naming a bucket).
    pub fn is_remote(root: &Path) -> bool {
        matches!(
            s3::config::target(root, &s3::config::Env::current()),
            Ok(s3::config::Target::S3(_))
        )
    }

    /// Whether the tree is a bundle read in place (which nothing writes).
    pub fn is_bundle(&self) -> bool {
        self.bundle
    }

    /// The bucket behind this store, if it is one.
    pub fn s3(&self) -> Option<&s3::S3Backend> {
        self.s3.as_deref()
    }

    /// Requests sent to the object store so far (0 on disk).
    pub fn requests(&self) -> u64 {
        self.s3.as_ref().map_or(0, |s| s.client.requests())
    }

    /// Opens the tree at `root` for writing: a storage tree's root
    /// directory, or a missing or empty folder, in which `docker/registry/v2`
    /// is created. Anything else is refused, naming it.
    pub fn create(root: &Path) -> Result<Store> {
        if let s3::config::Target::S3(settings) =
            s3::config::target(root, &s3::config::Env::current())?
        {
            return Store::open_s3(&settings);
        }
        let v2 = root.join(paths::V2_PREFIX);
        if !Store::can_create(root)? {
            std::fs::create_dir_all(&v2).map_err(|e| Error::io("create folder", &v2, e))?;
        }
        Ok(Store {
            backend: Arc::new(FsBackend::new(v2.clone())),
            v2,
            s3: None,
            bundle: false,
        })
    }

    /// Whether [`Store::create`] would open a tree that is there (`true`) or
    /// make one (`false`); an error if it would refuse.
    pub fn can_create(root: &Path) -> Result<bool> {
        if s3::config::parse_url(&root.to_string_lossy()).is_some() {
            return Ok(true);
        }
        if root.join(paths::V2_PREFIX).is_dir() {
            return Ok(true);
        }
        if tar::is_archive(root) {
            return Err(Error::Invalid {
                message: tar::READ_ONLY.into(),
                path: Some(root.into()),
            });
        }
        if root.symlink_metadata().is_err() {
            return Ok(false);
        }
        if on_the_way_to_v2(root) {
            return Ok(false);
        }
        if locate_v2(root).is_err() {
            return Err(Error::NotAStorageTree { path: root.into() });
        }
        Err(Error::Invalid {
            message: "this is inside or above a storage tree; name its root directory (the folder holding docker/registry/v2)".into(),
            path: Some(root.into()),
        })
    }

    /// A store over any backend (`v2` names it in messages).
    pub fn with_backend(backend: Arc<dyn Backend>, v2: PathBuf) -> Store {
        Store {
            backend,
            v2,
            s3: None,
            bundle: false,
        }
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

    /// The digests named by the folders of `root` (a `*Root` spec: revisions,
    /// `_layers`, a tag's index), under every algorithm's folder; folders
    /// whose names are not digests are skipped.
    pub fn list_digests(&self, root: &Spec) -> Result<std::collections::BTreeSet<Digest>> {
        let mut out = std::collections::BTreeSet::new();
        let base = root.path();
        for algo in crate::digest::Algorithm::ALL {
            let rel = base.join(algo.name());
            let entries = match self.backend.list(&rel) {
                Ok(v) => v,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("list folder", self.backend.display(&rel), e)),
            };
            out.extend(
                entries
                    .into_iter()
                    .filter(|e| e.is_dir)
                    .filter_map(|e| Digest::from_parts(algo.name(), &e.name).ok()),
            );
        }
        Ok(out)
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

/// The write half, typed by [`Spec`]: what gc, delete, unpack, import and
/// merges write. Blobs go in before the links that reach them and tags
/// last; each call is atomic on its own (see [`Backend::put`]).
impl Store {
    fn put_failed(&self, rel: &Path, source: &Path, e: PutError, want: Option<&Digest>) -> Error {
        match e {
            PutError::Exists => Error::Conflict {
                path: self.backend.display(rel),
                existing: "a file".into(),
                wanted: "to create it".into(),
            },
            PutError::Read(e) => Error::io("read", source, e),
            PutError::Write(e) => Error::io("write", self.backend.display(rel), e),
            PutError::Digest(actual) => Error::DigestMismatch {
                path: source.to_path_buf(),
                expected: want.cloned().unwrap_or_else(|| actual.clone()),
                actual,
            },
        }
    }

    /// Puts a blob from `body` (read errors and digest failures name
    /// `source`). `Ok(None)`: the tree had it already.
    pub fn put_blob(
        &self,
        digest: &Digest,
        body: Body<'_>,
        source: &Path,
    ) -> Result<Option<Method>> {
        let rel = Spec::BlobData(digest).path();
        let want = match &body {
            Body::Stream { digest, .. } => *digest,
            Body::File { digest, .. } => Some(*digest),
            Body::Bytes(_) => None,
        };
        match self.backend.put(&rel, body, false) {
            Ok(m) => Ok(Some(m)),
            Err(PutError::Exists) => Ok(None),
            Err(e) => Err(self.put_failed(&rel, source, e, want)),
        }
    }

    /// Puts the blob `digest` of `from` here: linked from its local file
    /// where it has one, else streamed and checked. `Ok(None)`: present.
    pub fn copy_blob_from(&self, from: &Store, digest: &Digest) -> Result<Option<Method>> {
        let source = from.display(&Spec::BlobData(digest));
        // Two buckets of one server: copied there, like a reflink.
        if let (Some(dst), Some(src)) = (self.s3(), from.s3()) {
            if dst.client.same_server(&src.client) {
                let rel = Spec::BlobData(digest).path();
                let (from_key, to_key) = (src.key(&rel), dst.key(&rel));
                let io = |e: s3::client::S3Error| Error::io("copy", &source, e.into());
                if dst.client.head(&to_key).map_err(io)?.is_some() {
                    return Ok(None);
                }
                let Some(obj) = src.client.head(&from_key).map_err(io)? else {
                    return Err(Error::MissingBlob {
                        digest: digest.clone(),
                        what: "blob".into(),
                        path: source,
                    });
                };
                dst.client
                    .copy(&src.client.bucket, &from_key, &to_key, obj.size)
                    .map_err(io)?;
                return Ok(Some(Method::Reflink));
            }
        }
        if let Some(path) = from.blob_local_path(digest) {
            return self
                .put_blob(
                    digest,
                    Body::File {
                        path: &path,
                        digest,
                    },
                    &source,
                )
                .map_err(|e| match e {
                    Error::Io { source: io, .. }
                        if io.kind() == io::ErrorKind::NotFound && !path.exists() =>
                    {
                        Error::MissingBlob {
                            digest: digest.clone(),
                            what: "blob".into(),
                            path: source.clone(),
                        }
                    }
                    e => e,
                });
        }
        let mut reader = from.open_blob(digest, "blob")?;
        let body = Body::Stream {
            reader: &mut reader,
            digest: Some(digest),
        };
        self.put_blob(digest, body, &source)
    }

    /// Puts a link file (revision, `_layers`, tag index or current). A link
    /// already holding `digest` is left as it is; one holding another
    /// digest is an error, or replaced with `replace`.
    pub fn put_link(&self, spec: &Spec, digest: &Digest, replace: bool) -> Result<LinkPut> {
        let rel = spec.path();
        let bytes = paths::link_bytes(digest);
        match self.backend.put(&rel, Body::Bytes(&bytes), false) {
            Ok(_) => return Ok(LinkPut::Written),
            Err(PutError::Exists) => {}
            Err(e) => return Err(self.put_failed(&rel, &rel, e, None)),
        }
        let have = self.read_file(spec, 1024)?.unwrap_or_default();
        if have == bytes {
            return Ok(LinkPut::Present);
        }
        if !replace {
            return Err(Error::Conflict {
                path: self.backend.display(&rel),
                existing: format!("{:?}", String::from_utf8_lossy(&have)),
                wanted: format!("{:?}", digest.as_str()),
            });
        }
        self.backend
            .put(&rel, Body::Bytes(&bytes), true)
            .map_err(|e| self.put_failed(&rel, &rel, e, None))?;
        Ok(LinkPut::Replaced)
    }

    /// Puts a tag: its `current` link and its `index` entries. A new tag's
    /// folder appears with its `current` link in one step, so the registry
    /// never lists a tag it cannot serve; an existing tag gets its index
    /// entries, then its `current` link (replaced only with `replace`).
    pub fn put_tag(
        &self,
        repo: &str,
        tag: &str,
        current: &Digest,
        index: &[Digest],
        replace: bool,
    ) -> Result<LinkPut> {
        let dir = Spec::Tag(repo, tag).path();
        let link = paths::link_bytes(current);
        let index_files: Vec<(String, Vec<u8>)> = index
            .iter()
            .map(|d| {
                let rel = relative(&Spec::TagIndexLink(repo, tag, d), &dir);
                (rel.to_string_lossy().into_owned(), paths::link_bytes(d))
            })
            .collect();
        // Object stores put in this order: `current` first, so the tag is
        // servable the moment it is listed.
        let mut files: Vec<(&str, &[u8])> = vec![("current/link", &link)];
        files.extend(index_files.iter().map(|(p, b)| (p.as_str(), &b[..])));
        match self.backend.put_folder(&dir, &files) {
            Ok(()) => return Ok(LinkPut::Written),
            Err(PutError::Exists) => {}
            Err(e) => return Err(self.put_failed(&dir, &dir, e, None)),
        }
        for d in index {
            self.put_link(&Spec::TagIndexLink(repo, tag, d), d, true)?;
        }
        self.put_link(&Spec::TagCurrentLink(repo, tag), current, replace)
    }

    /// Creates a folder of the tree (an empty `_uploads/`, as the registry
    /// leaves); object stores have no folders.
    pub fn create_dir(&self, spec: &Spec) -> Result<()> {
        let rel = spec.path();
        self.backend
            .create_dir(&rel)
            .map_err(|e| Error::io("create folder", self.backend.display(&rel), e))
    }

    /// Removes one file; one already gone counts as removed.
    pub fn remove_file(&self, spec: &Spec) -> Result<()> {
        let rel = spec.path();
        self.backend
            .remove_file(&rel)
            .map_err(|e| Error::io("remove file", self.backend.display(&rel), e))
    }

    /// Removes a folder and everything in it.
    pub fn remove_tree(&self, spec: &Spec) -> Result<()> {
        let rel = spec.path();
        self.backend
            .remove_tree(&rel)
            .map_err(|e| Error::io("remove folder", self.backend.display(&rel), e))
    }

    /// Removes a folder if it is empty; says whether it is gone.
    pub fn remove_empty_dir(&self, spec: &Spec) -> Result<bool> {
        let rel = spec.path();
        self.backend
            .remove_empty_dir(&rel)
            .map_err(|e| Error::io("remove folder", self.backend.display(&rel), e))
    }

    /// Removes many files (batched where the backend can).
    pub fn remove_files(&self, specs: &[Spec]) -> Result<()> {
        let rels: Vec<PathBuf> = specs.iter().map(Spec::path).collect();
        self.backend.remove_files(&rels).map_err(|e| {
            let at = rels
                .first()
                .map(|r| self.backend.display(r))
                .unwrap_or_default();
            Error::io("remove files", at, e)
        })
    }

    /// Whether the tree has folders of its own (see [`Backend::has_folders`]).
    pub fn has_folders(&self) -> bool {
        self.backend.has_folders()
    }

    /// Whether `spec` was written after `since`; `false` if it does not
    /// exist (see [`Backend::written_since`]).
    pub fn written_since(&self, spec: &Spec, since: std::time::SystemTime) -> Result<bool> {
        let rel = spec.path();
        self.backend
            .written_since(&rel, since)
            .map_err(|e| Error::io("stat", self.backend.display(&rel), e))
    }
}

/// A temporary file or folder that a regkit run left in the tree's staging
/// folder (a run killed with SIGKILL, a machine that went down).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Leftover {
    pub path: PathBuf,
    pub bytes: u64,
    /// The run that made it ran on this machine and has ended.
    pub owner_gone: bool,
    /// No regkit process can still be writing it: its owner is gone and it
    /// has not been written to for a while. gc removes these.
    pub stale: bool,
    /// In a bucket: a multipart upload never completed (regkit puts large
    /// blobs so, at their final key), to abort.
    #[serde(skip)]
    pub upload_id: Option<String>,
}

/// How long a leftover of a dead process on this machine is kept (in case
/// its pid was misjudged), and how long one of another machine's is.
pub const LEFTOVER_AGE: std::time::Duration = std::time::Duration::from_secs(10 * 60);
pub const FOREIGN_LEFTOVER_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

impl Store {
    /// regkit's own temporary files and folders in the tree, as of `now`.
    pub fn leftovers(&self, now: std::time::SystemTime) -> Result<Vec<Leftover>> {
        let mut out = Vec::new();
        if let Some(bucket) = self.s3() {
            // No staging folder: what an interrupted run leaves is a
            // multipart upload pending at a blob's key (never an object).
            // Whose it is cannot be told, so it is stale after a day.
            let prefix = format!("{}{}/", bucket.prefix(), paths::BLOBS);
            let pending = bucket
                .client
                .pending_uploads(&prefix)
                .map_err(|e| Error::io("list uploads", self.display(&Spec::BlobsRoot), e.into()))?;
            for p in pending {
                let age = p
                    .initiated
                    .and_then(|t| now.duration_since(t).ok())
                    .unwrap_or_default();
                out.push(Leftover {
                    path: PathBuf::from(bucket.client.display(&p.key)),
                    bytes: 0,
                    owner_gone: false,
                    stale: age >= FOREIGN_LEFTOVER_AGE,
                    upload_id: Some(p.upload_id),
                });
            }
            return Ok(out);
        }
        for e in self.list(&Spec::Staging)? {
            let rel = Spec::Staging.path().join(&e.name);
            let age = self
                .backend
                .modified(&rel)
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .unwrap_or_default();
            let owner_gone = crate::atomic::owner_gone(&e.name);
            let stale = if owner_gone {
                age >= LEFTOVER_AGE
            } else {
                age >= FOREIGN_LEFTOVER_AGE
            };
            out.push(Leftover {
                path: self.backend.display(&rel),
                bytes: self.backend.size(&rel).unwrap_or(0),
                owner_gone,
                stale,
                upload_id: None,
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Removes a leftover found by [`Store::leftovers`].
    pub fn remove_leftover(&self, l: &Leftover) -> Result<()> {
        if let (Some(bucket), Some(id)) = (self.s3(), &l.upload_id) {
            let key = l
                .path
                .to_string_lossy()
                .strip_prefix(&format!("s3://{}/", bucket.client.bucket))
                .unwrap_or_default()
                .to_string();
            return bucket
                .client
                .abort_multipart(&key, id)
                .map_err(|e| Error::io("abort upload", &l.path, e.into()));
        }
        let name = l.path.file_name().unwrap_or_default();
        let rel = Spec::Staging.path().join(name);
        // A folder (a tag being built) lists; a file does not.
        let r = match self.backend.list(&rel) {
            Ok(_) => self.backend.remove_tree(&rel),
            Err(_) => self.backend.remove_file(&rel),
        };
        r.map_err(|e| Error::io("remove", &l.path, e))
    }
}

/// The path of `spec` inside `dir` (a folder spec that contains it).
pub fn relative(spec: &Spec, dir: &Path) -> PathBuf {
    spec.path()
        .strip_prefix(dir)
        .expect("the folder contains the file")
        .to_path_buf()
}

/// Whether `root` holds nothing but (part of) the way to its
/// `docker/registry/v2` folder: empty, or `docker/` holding only
/// `registry/`, and so on. A tree is then created there, as in an empty
/// folder; this is also what another regkit creating the same new tree
/// leaves for an instant (`create_dir_all` makes the folders one by one).
fn on_the_way_to_v2(root: &Path) -> bool {
    let mut dir = root.to_path_buf();
    for next in paths::V2_PREFIX.split('/') {
        let Ok(entries) = dir.read_dir() else {
            // Gone or not a folder: let the caller's checks say.
            return false;
        };
        let names: Vec<std::ffi::OsString> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        match names.as_slice() {
            [] => return true,
            [only] if only == next => dir.push(next),
            _ => return false,
        }
    }
    // The whole way is there: v2 itself, which the caller takes as a tree.
    true
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

    /// A tree written through the write half of an in-memory store: one
    /// image (config, layer, manifest) tagged `app:v1`.
    fn memory_tree() -> (Arc<memory::MemBackend>, Store, Digest) {
        let mem = Arc::new(memory::MemBackend::new());
        let store = Store::with_backend(mem.clone(), PathBuf::from("mem:"));
        let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
        let layer = b"layer bytes".to_vec();
        let (c, l) = (Digest::sha256_of(&config), Digest::sha256_of(&layer));
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{c}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{l}","size":{}}}]}}"#,
            config.len(),
            layer.len()
        );
        let m = Digest::sha256_of(manifest.as_bytes());
        for (d, bytes) in [
            (&c, &config[..]),
            (&l, &layer[..]),
            (&m, manifest.as_bytes()),
        ] {
            let mut r = bytes;
            let body = Body::Stream {
                reader: &mut r,
                digest: Some(d),
            };
            assert!(store
                .put_blob(d, body, Path::new("test"))
                .unwrap()
                .is_some());
        }
        store
            .put_link(&Spec::LayerLink("app", &c), &c, false)
            .unwrap();
        store
            .put_link(&Spec::LayerLink("app", &l), &l, false)
            .unwrap();
        store
            .put_link(&Spec::RevisionLink("app", &m), &m, false)
            .unwrap();
        let put = store
            .put_tag("app", "v1", &m, std::slice::from_ref(&m), false)
            .unwrap();
        assert_eq!(put, LinkPut::Written);
        (mem, store, m)
    }

    #[test]
    fn a_tree_written_through_the_store_reads_back_as_a_catalog() {
        let (mem, store, m) = memory_tree();
        assert_eq!(mem.files().len(), 8, "{:?}", mem.files().keys());
        let catalog =
            crate::catalog::Catalog::load(&store, crate::catalog::WalkOptions::default()).unwrap();
        assert_eq!(catalog.repos["app"].tags["v1"].as_ref().unwrap(), &m);
        let sel = crate::selection::select(&catalog, &Default::default()).unwrap();
        assert_eq!(sel.images.len(), 1);
        assert_eq!(sel.images[0].blobs.len(), 2);
        assert_eq!(sel.images[0].name(), "app:v1");
    }

    #[test]
    fn puts_refuse_what_differs_and_keep_what_is_there() {
        let (_mem, store, m) = memory_tree();
        let other = Digest::sha256_of(b"other");
        // The same link again: present; another digest: refused, then replaced.
        let rev = Spec::RevisionLink("app", &m);
        assert_eq!(store.put_link(&rev, &m, false).unwrap(), LinkPut::Present);
        let cur = Spec::TagCurrentLink("app", "v1");
        assert!(matches!(
            store.put_link(&cur, &other, false),
            Err(Error::Conflict { .. })
        ));
        assert_eq!(store.read_link(&cur).unwrap(), Some(m.clone()));
        assert_eq!(
            store.put_link(&cur, &other, true).unwrap(),
            LinkPut::Replaced
        );
        assert_eq!(store.read_link(&cur).unwrap(), Some(other.clone()));
        // A blob whose bytes are not its digest is not stored.
        let mut r = &b"not it"[..];
        let body = Body::Stream {
            reader: &mut r,
            digest: Some(&other),
        };
        let err = store.put_blob(&other, body, Path::new("src")).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert_eq!(store.blob_size(&other).unwrap(), None);
        // A blob already there is kept.
        let mut r = &b"ignored"[..];
        let body = Body::Stream {
            reader: &mut r,
            digest: None,
        };
        assert!(store
            .put_blob(&m, body, Path::new("src"))
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_new_tag_appears_with_its_current_link_on_disk() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::create(&t.path().join("reg")).unwrap();
        let (a, b) = (Digest::sha256_of(b"a"), Digest::sha256_of(b"b"));
        assert_eq!(
            store
                .put_tag("x/y", "v1", &a, std::slice::from_ref(&a), false)
                .unwrap(),
            LinkPut::Written
        );
        assert_eq!(
            store.read_link(&Spec::TagCurrentLink("x/y", "v1")).unwrap(),
            Some(a.clone())
        );
        // An existing tag: the new index entry, then `current` (replace).
        assert!(store
            .put_tag("x/y", "v1", &b, std::slice::from_ref(&b), false)
            .is_err());
        assert_eq!(
            store
                .put_tag("x/y", "v1", &b, std::slice::from_ref(&b), true)
                .unwrap(),
            LinkPut::Replaced
        );
        let index = store
            .list_digests(&Spec::TagIndexRoot("x/y", "v1"))
            .unwrap();
        assert_eq!(index.len(), 2);
        // Nothing is left in the staging folder.
        let staging = store.list(&Spec::Staging).unwrap();
        assert!(staging.is_empty(), "{staging:?}");
    }

    #[test]
    fn leftovers_of_dead_runs_are_stale_once_old() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::create(t.path()).unwrap();
        let staging = store.v2().join(paths::STAGING_DIR);
        std::fs::create_dir_all(&staging).unwrap();
        let host = crate::atomic::hostname();
        let dead = format!("{}-0+{host}", 1u32 << 23);
        let live = crate::atomic::temp_name();
        let foreign = format!("{}-0+elsewhere", 1u32 << 23);
        for n in [&dead, &live, &foreign] {
            std::fs::write(staging.join(n), b"12345").unwrap();
        }
        let now = std::time::SystemTime::now();
        let stale = |at| -> Vec<bool> {
            store
                .leftovers(at)
                .unwrap()
                .iter()
                .map(|l| l.stale)
                .collect()
        };
        // Sorted by name: the dead one, "elsewhere", then ours.
        let names: Vec<String> = store
            .leftovers(now)
            .unwrap()
            .iter()
            .map(|l| l.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 3);
        assert_eq!(stale(now), [false, false, false]);
        let later = now + LEFTOVER_AGE + std::time::Duration::from_secs(1);
        let by_name = |at| -> Vec<(String, bool)> {
            store
                .leftovers(at)
                .unwrap()
                .iter()
                .map(|l| {
                    (
                        l.path.file_name().unwrap().to_string_lossy().into_owned(),
                        l.stale,
                    )
                })
                .collect()
        };
        assert!(by_name(later).contains(&(dead.clone(), true)));
        assert!(by_name(later).contains(&(live.clone(), false)));
        assert!(by_name(later).contains(&(foreign.clone(), false)));
        let much_later = now + FOREIGN_LEFTOVER_AGE + std::time::Duration::from_secs(1);
        assert!(by_name(much_later).contains(&(foreign, true)));
        for l in store.leftovers(later).unwrap().iter().filter(|l| l.stale) {
            assert_eq!(l.bytes, 5);
            store.remove_leftover(l).unwrap();
        }
        assert_eq!(store.leftovers(now).unwrap().len(), 2);
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

    #[test]
    fn a_folder_holding_only_the_way_to_v2_is_created_into_and_anything_else_refused() {
        let t = tempfile::tempdir().unwrap();
        let mut checked = 0;
        for (made, file, creates) in [
            ("", None, true),
            ("docker", None, true),
            ("docker/registry", None, true),
            ("docker", Some("docker/notes.txt"), false),
            ("other", None, false),
        ] {
            let root = t.path().join(format!("r{checked}"));
            std::fs::create_dir_all(root.join(made)).unwrap();
            if let Some(f) = file {
                std::fs::write(root.join(f), b"x").unwrap();
            }
            assert_eq!(on_the_way_to_v2(&root), creates, "{made} {file:?}");
            assert_eq!(Store::can_create(&root).is_ok(), creates, "{made} {file:?}");
            checked += 1;
        }
        assert_eq!(checked, 5);
    }
}
