//! Streaming a plan into a tar, reproducibly: entries sorted by path,
//! folders before what they hold, fixed mtime, uid/gid 0, fixed modes, no
//! user names. Blob bytes are streamed from the store in one pass and their
//! digests checked on the way; a blob that does not match fails the write.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};
use crate::interrupt;
use crate::paths::Spec;
use crate::plan::{Plan, Source};
use crate::progress::Progress;
use crate::store::Store;

/// The mtime of every entry: 2000-01-01T00:00:00Z (GNU tar warns about 0).
pub const MTIME: u64 = 946_684_800;

/// Writes `plan` as a tar stream into `out` and returns `out`.
pub fn write<W: Write>(plan: &Plan, store: &Store, out: W, progress: &Progress) -> Result<W> {
    let mut builder = tar::Builder::new(out);
    builder.mode(tar::HeaderMode::Deterministic);
    let mut dirs: Vec<&str> = plan.dirs_by_depth().into_iter().flatten().collect();
    dirs.sort_unstable();
    // One sorted walk over folders and files (both sorted already): a folder
    // sorts before its contents because its path is a prefix of theirs.
    let entries = merge_sorted(
        dirs.into_iter().map(|d| (d, None)),
        plan.files.iter().map(|(p, f)| (p.as_str(), Some(f))),
    );
    let fail = |e: io::Error| Error::io("write the tar stream", "-", e);
    for (path, file) in entries {
        interrupt::check()?;
        // ustar: a path of up to 255 bytes fits the header (name + prefix),
        // where GNU headers need an extra long-name entry past 100 bytes,
        // which most storage paths are. Longer paths still get one.
        let mut header = tar::Header::new_ustar();
        header.set_mtime(MTIME);
        header.set_uid(0);
        header.set_gid(0);
        match file {
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder
                    .append_data(&mut header, format!("{path}/"), io::empty())
                    .map_err(fail)?;
            }
            Some(f) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(f.size);
                match &f.source {
                    Source::Bytes(b) => builder
                        .append_data(&mut header, path, &b[..])
                        .map_err(fail)?,
                    Source::Blob(d) => {
                        let reader = store.open_blob(d, "blob")?;
                        let src = store.display(&Spec::BlobData(d));
                        append_checked(&mut builder, &mut header, path, reader, src, d, f.size)?;
                    }
                    Source::File { path: src, digest } => {
                        let reader = File::open(src).map_err(|e| Error::io("open", src, e))?;
                        append_checked(
                            &mut builder,
                            &mut header,
                            path,
                            reader,
                            src.clone(),
                            digest,
                            f.size,
                        )?;
                    }
                }
                progress.inc(1);
            }
        }
    }
    builder.into_inner().map_err(fail)
}

/// Merges two iterators sorted by their first field into one sorted one.
fn merge_sorted<'a, T>(
    a: impl Iterator<Item = (&'a str, T)>,
    b: impl Iterator<Item = (&'a str, T)>,
) -> impl Iterator<Item = (&'a str, T)> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) if x.0 <= y.0 => a.next(),
        (Some(_), Some(_)) => b.next(),
        (Some(_), None) => a.next(),
        (None, _) => b.next(),
    })
}

fn append_checked<W: Write>(
    builder: &mut tar::Builder<W>,
    header: &mut tar::Header,
    path: &str,
    reader: impl Read,
    src: PathBuf,
    digest: &Digest,
    size: u64,
) -> Result<()> {
    let mut checked = CheckedReader::new(reader, digest, size);
    match builder.append_data(header, path, &mut checked) {
        Ok(()) => Ok(()),
        Err(_) if checked.failure.is_some() => Err(checked.into_error(src)),
        Err(e) => Err(Error::io("write the tar stream", "-", e)),
    }
}

/// A reader that hashes what passes through and, at the end, fails unless
/// exactly `size` bytes with the expected digest went by.
pub struct CheckedReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    expected: Digest,
    size: u64,
    seen: u64,
    failure: Option<Failure>,
}

enum Failure {
    Size(u64),
    Digest(Digest),
}

impl<R: Read> CheckedReader<R> {
    pub fn new(inner: R, expected: &Digest, size: u64) -> Self {
        CheckedReader {
            inner,
            hasher: Some(Hasher::new(expected.algorithm())),
            expected: expected.clone(),
            size,
            seen: 0,
            failure: None,
        }
    }

    fn into_error(self, path: PathBuf) -> Error {
        match self.failure {
            Some(Failure::Digest(actual)) => Error::DigestMismatch {
                path,
                expected: self.expected,
                actual,
            },
            Some(Failure::Size(actual)) => Error::SizeMismatch {
                path,
                digest: self.expected,
                expected: self.size,
                actual,
            },
            None => Error::invalid("no failure"),
        }
    }
}

impl<R: Read> Read for CheckedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        crate::interrupt::check_io()?;
        // Never read past the declared size: a longer file is caught below.
        let room = (self.size + 1 - self.seen).min(buf.len() as u64) as usize;
        let n = self.inner.read(&mut buf[..room])?;
        self.seen += n as u64;
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        if n == 0 || self.seen > self.size {
            let actual = self.hasher.take().map(Hasher::finish);
            if self.seen != self.size {
                self.failure = Some(Failure::Size(self.seen));
            } else if actual.as_ref() != Some(&self.expected) {
                self.failure = actual.map(Failure::Digest);
            }
            if self.failure.is_some() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "blob does not match its digest",
                ));
            }
            return Ok(0);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_reader_passes_good_bytes_and_refuses_bad_ones() {
        let d = Digest::sha256_of(b"hello");
        let mut out = Vec::new();
        CheckedReader::new(&b"hello"[..], &d, 5)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"hello");
        for (bytes, size) in [(&b"hellp"[..], 5), (&b"hell"[..], 5), (&b"hello!"[..], 5)] {
            let mut r = CheckedReader::new(bytes, &d, size);
            assert!(r.read_to_end(&mut Vec::new()).is_err(), "{bytes:?}");
        }
    }
}
