//! Putting a file's bytes at a new path: hardlink, else reflink (FICLONE),
//! else a copy whose digest is checked. Counts how many of each were made.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use nix::errno::Errno;

use crate::digest::{self, Algorithm, CopyError, Digest};
use crate::error::{Error, Result};
use crate::store::Store;

nix::ioctl_write_int!(ficlone, 0x94, 9);

/// How a file was put in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Hardlink,
    Reflink,
    Copy,
    /// Written from bytes (links, small files).
    Written,
}

/// Counts of what a [`Placer`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub hardlinks: u64,
    pub reflinks: u64,
    pub copies: u64,
    /// Small files written from bytes (links, `version`, indexes).
    pub written: u64,
}

/// Places files, remembering when hardlinks or reflinks cannot work here so
/// that later files go straight to what does.
#[derive(Default)]
pub struct Placer {
    no_hardlink: AtomicBool,
    no_reflink: AtomicBool,
    hardlinks: AtomicU64,
    reflinks: AtomicU64,
    copies: AtomicU64,
    written: AtomicU64,
}

impl Placer {
    pub fn new() -> Placer {
        Placer::default()
    }

    pub fn counts(&self) -> Counts {
        Counts {
            hardlinks: self.hardlinks.load(Ordering::Relaxed),
            reflinks: self.reflinks.load(Ordering::Relaxed),
            copies: self.copies.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
        }
    }

    /// Puts the blob `digest` of `store`, which must have `size` bytes, at
    /// `dst`, which must not exist.
    pub fn place_blob(
        &self,
        store: &Store,
        digest: &Digest,
        size: u64,
        dst: &Path,
    ) -> Result<Method> {
        if let Some(src) = store.blob_local_path(digest) {
            return self
                .place_local(&src, dst, digest, Some(size))
                .map_err(|e| match e {
                    Error::Io { source, .. }
                        if source.kind() == io::ErrorKind::NotFound && !src.exists() =>
                    {
                        Error::MissingBlob {
                            digest: digest.clone(),
                            what: "blob".into(),
                            path: src,
                        }
                    }
                    e => e,
                });
        }
        let reader = store.open_blob(digest, "blob")?;
        let src = store.display(&crate::paths::Spec::BlobData(digest));
        let n = copy_checked(reader, &src, dst, digest)?;
        if n != size {
            let _ = fs::remove_file(dst);
            return Err(Error::SizeMismatch {
                path: src,
                digest: digest.clone(),
                expected: size,
                actual: n,
            });
        }
        self.copies.fetch_add(1, Ordering::Relaxed);
        Ok(Method::Copy)
    }

    /// Hardlinks `src` at `dst` (which must not exist): `Ok(true)` if
    /// linked, `Ok(false)` if a hardlink cannot be made here (another
    /// filesystem, one that forbids them, too many links), so the caller
    /// copies instead.
    /// A source that is not a regular file is refused ([`not_regular`]); one
    /// reached through a symbolic link is never linked as the link (which
    /// would dangle in the output): `Ok(false)`, so its content is copied.
    pub fn hardlink(&self, src: &Path, dst: &Path) -> io::Result<bool> {
        self.hardlink_sized(src, dst, None)
    }

    /// [`Placer::hardlink`], also refusing a source whose length is not
    /// `size` ([`WrongSize`]), with the same one look at it.
    fn hardlink_sized(&self, src: &Path, dst: &Path, size: Option<u64>) -> io::Result<bool> {
        let meta = fs::symlink_metadata(src)?;
        let symlink = meta.file_type().is_symlink();
        let meta = if symlink { fs::metadata(src)? } else { meta };
        if !meta.is_file() {
            return Err(not_regular(meta.file_type()));
        }
        if size.is_some_and(|want| want != meta.len()) {
            return Err(io::Error::other(WrongSize(meta.len())));
        }
        if symlink {
            return Ok(false);
        }
        if self.no_hardlink.load(Ordering::Relaxed) {
            return Ok(false);
        }
        match fs::hard_link(src, dst) {
            Ok(()) => {
                self.hardlinks.fetch_add(1, Ordering::Relaxed);
                Ok(true)
            }
            Err(e) => match Errno::from_raw(e.raw_os_error().unwrap_or(0)) {
                // Another filesystem, or one that forbids links: remember.
                Errno::EXDEV | Errno::EPERM | Errno::EOPNOTSUPP => {
                    self.no_hardlink.store(true, Ordering::Relaxed);
                    Ok(false)
                }
                // Too many links to this one file: copy just this one.
                Errno::EMLINK => Ok(false),
                _ => Err(e),
            },
        }
    }

    /// Puts the local file `src`, whose content must have `digest`, at `dst`.
    pub fn place_file(&self, src: &Path, dst: &Path, digest: &Digest) -> Result<Method> {
        self.place_local(src, dst, digest, None)
    }

    /// [`Placer::place_file`], refusing a source that has not `size` bytes.
    fn place_local(
        &self,
        src: &Path,
        dst: &Path,
        digest: &Digest,
        size: Option<u64>,
    ) -> Result<Method> {
        let linked = self.hardlink_sized(src, dst, size).map_err(|e| {
            match e.get_ref().and_then(|i| i.downcast_ref::<WrongSize>()) {
                Some(WrongSize(actual)) => Error::SizeMismatch {
                    path: src.to_path_buf(),
                    digest: digest.clone(),
                    expected: size.unwrap_or(0),
                    actual: *actual,
                },
                None if is_not_regular(&e) => Error::io("read", src, e),
                None => Error::io("hardlink", dst, e),
            }
        })?;
        if linked {
            return Ok(Method::Hardlink);
        }
        if !self.no_reflink.load(Ordering::Relaxed) {
            match reflink(src, dst) {
                Ok(()) => {
                    self.reflinks.fetch_add(1, Ordering::Relaxed);
                    return Ok(Method::Reflink);
                }
                Err(e) => {
                    let _ = fs::remove_file(dst);
                    match Errno::from_raw(e.raw_os_error().unwrap_or(0)) {
                        Errno::EXDEV
                        | Errno::EOPNOTSUPP
                        | Errno::EINVAL
                        | Errno::ENOTTY
                        | Errno::EPERM => self.no_reflink.store(true, Ordering::Relaxed),
                        _ => return Err(Error::io("reflink", dst, e)),
                    }
                }
            }
        }
        let reader = File::open(src).map_err(|e| Error::io("open", src, e))?;
        copy_checked(reader, src, dst, digest)?;
        self.copies.fetch_add(1, Ordering::Relaxed);
        Ok(Method::Copy)
    }

    /// Counts a file another writer put (a store's put says how).
    pub fn record(&self, m: Method) {
        let c = match m {
            Method::Hardlink => &self.hardlinks,
            Method::Reflink => &self.reflinks,
            Method::Copy => &self.copies,
            Method::Written => &self.written,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes small bytes at `dst`, which must not exist.
    pub fn write_bytes(&self, bytes: &[u8], dst: &Path) -> Result<()> {
        let mut f = File::options()
            .write(true)
            .create_new(true)
            .open(dst)
            .map_err(|e| Error::io("create", dst, e))?;
        f.write_all(bytes).map_err(|e| Error::io("write", dst, e))?;
        self.written.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// A source that has this many bytes, not the size it must have.
#[derive(Debug)]
struct WrongSize(u64);

impl std::fmt::Display for WrongSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the file has {} bytes, not its descriptor's size",
            self.0
        )
    }
}

impl std::error::Error for WrongSize {}

/// What a path holds instead of a regular file.
#[derive(Debug)]
struct NotRegular(&'static str);

impl std::fmt::Display for NotRegular {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not a regular file but {}", self.0)
    }
}

impl std::error::Error for NotRegular {}

/// The error for a path of the tree that holds `kind` where a regular file
/// (a blob, a link) belongs.
pub fn not_regular(kind: fs::FileType) -> io::Error {
    use std::os::unix::fs::FileTypeExt;
    let found = if kind.is_dir() {
        "a folder"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "something else"
    };
    io::Error::other(NotRegular(found))
}

/// Whether `e` says a path is not a regular file ([`not_regular`]).
pub fn is_not_regular(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|i| i.is::<NotRegular>())
}

fn reflink(src: &Path, dst: &Path) -> io::Result<()> {
    let s = File::open(src)?;
    let d = File::options().write(true).create_new(true).open(dst)?;
    // SAFETY: FICLONE takes the source descriptor as its argument; both
    // descriptors are open for the duration of the call.
    unsafe { ficlone(d.as_raw_fd(), s.as_raw_fd() as _) }.map_err(io::Error::from)?;
    Ok(())
}

/// Copies `reader` to a new file `dst`, hashing as it goes; a digest that
/// differs from `digest` removes `dst` and fails naming `src`.
pub fn copy_checked(reader: impl Read, src: &Path, dst: &Path, digest: &Digest) -> Result<u64> {
    let result = copy_hashed(reader, src, dst, digest.algorithm()).and_then(|(actual, n)| {
        if actual != *digest {
            return Err(Error::DigestMismatch {
                path: src.to_path_buf(),
                expected: digest.clone(),
                actual,
            });
        }
        Ok(n)
    });
    if result.is_err() {
        let _ = fs::remove_file(dst);
    }
    result
}

/// Copies `reader` (read errors name `src`) to a new file `dst`, returning
/// the digest in `algo` and the length of what went by.
pub fn copy_hashed(
    reader: impl Read,
    src: &Path,
    dst: &Path,
    algo: Algorithm,
) -> Result<(Digest, u64)> {
    let out = File::options()
        .write(true)
        .create_new(true)
        .open(dst)
        .map_err(|e| Error::io("create", dst, e))?;
    let (actual, total) = digest::copy_hashed(reader, out, Some(algo)).map_err(|e| match e {
        CopyError::Read(e) => Error::io("read", src, e),
        CopyError::Write(e) => Error::io("write", dst, e),
    })?;
    Ok((actual.expect("hashed"), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardlinks_on_one_filesystem_and_checks_copies() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::write(&src, b"hello").unwrap();
        let d = Digest::sha256_of(b"hello");
        let p = Placer::new();
        assert_eq!(
            p.place_file(&src, &t.path().join("a"), &d).unwrap(),
            Method::Hardlink
        );

        // Forced onto the copy path, a wrong digest is refused and nothing stays.
        p.no_hardlink.store(true, Ordering::Relaxed);
        p.no_reflink.store(true, Ordering::Relaxed);
        let wrong = Digest::sha256_of(b"other");
        let err = p.place_file(&src, &t.path().join("b"), &wrong).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }));
        assert!(!t.path().join("b").exists());
        assert_eq!(
            p.place_file(&src, &t.path().join("c"), &d).unwrap(),
            Method::Copy
        );
        assert_eq!(fs::read(t.path().join("c")).unwrap(), b"hello");
        assert_eq!(
            p.counts(),
            Counts {
                hardlinks: 1,
                reflinks: 0,
                copies: 1,
                written: 0
            }
        );
    }
}
