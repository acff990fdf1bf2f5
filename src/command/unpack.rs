//! `unpack`: merges a bundle into a registry storage folder, safely.
//!
//! Blobs are written as the stream brings them, each to a temporary name
//! renamed into place (and checked against its digest when verifying);
//! blobs already present are kept. Links wait until the whole stream has
//! been read and found complete; then revision and `_layers` links are
//! written, then tags, each only if the blob it names is there. So a
//! registry serving ROOT never sees a link to a missing blob, and an
//! interrupted unpack leaves ROOT valid: running it again completes it.

use std::cell::RefCell;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Component, Path};
use std::rc::Rc;

use serde::Serialize;

use crate::compress::{self, Compression};
use crate::digest::{copy_hashed, CopyError, Digest};
use crate::error::{Error, Result};
use crate::interrupt;
use crate::paths::{self, Parsed, Spec};
use crate::plan::Phase;
use crate::progress::Progress;
use crate::sink;

#[derive(Debug, Clone, Default)]
pub struct UnpackOptions {
    /// Check every new blob's digest (the default: bytes copied are
    /// checked); `false` skips it, e.g. once BUNDLE.json's sha256 was.
    pub verify: bool,
    /// Replace links that differ instead of failing.
    pub force: bool,
    pub dry_run: bool,
    pub quiet: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct UnpackReport {
    pub compression: Option<Compression>,
    pub verified: bool,
    pub dry_run: bool,
    pub blobs_written: u64,
    pub bytes_written: u64,
    pub blobs_present: u64,
    pub links_written: u64,
    pub links_present: u64,
    pub links_replaced: u64,
    /// `repo:tag` of every tag in the bundle.
    pub images: Vec<String>,
}

struct PendingLink {
    rel: String,
    digest: Digest,
    phase: Phase,
}

/// Unpacks `bundle` (`-` for standard input) into the tree at `root`.
pub fn run(bundle: &Path, root: &Path, opts: &UnpackOptions) -> Result<UnpackReport> {
    check_root(root)?;
    let input: Box<dyn Read> = if bundle == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(bundle).map_err(|e| Error::io("open", bundle, e))?)
    };
    let (compression, reader) =
        compress::decoder(input).map_err(|e| Error::io("read", bundle, e))?;
    let verify = opts.verify;
    let mut report = UnpackReport {
        compression: Some(compression),
        verified: verify,
        dry_run: opts.dry_run,
        ..UnpackReport::default()
    };
    let v2 = root.join(paths::V2_PREFIX);
    if !opts.dry_run {
        fs::create_dir_all(&v2).map_err(|e| Error::io("create folder", &v2, e))?;
    }
    let tail = Rc::new(RefCell::new(Tail::default()));
    let mut archive = tar::Archive::new(TailReader {
        inner: reader,
        tail: tail.clone(),
    });
    let bad = |e: io::Error| Error::io("read the bundle", bundle, e);
    let progress = Progress::new(0, "unpacking", opts.quiet);
    let mut links = Vec::new();
    let mut new_blobs = std::collections::HashSet::new();
    for entry in archive.entries().map_err(bad)? {
        interrupt::check()?;
        let mut entry = entry.map_err(bad)?;
        let end = entry.raw_file_position() + entry.size().div_ceil(512) * 512;
        let name = entry_name(&entry, bundle)?;
        let kind = entry.header().entry_type();
        match entry_rel(&name) {
            None if kind.is_dir() && is_v2_ancestor(&name) => {}
            None => return Err(escape(bundle, &name, "it is not under docker/registry/v2/")),
            Some(rel) if kind.is_dir() => {
                if !opts.dry_run {
                    let d = v2.join(rel);
                    fs::create_dir_all(&d).map_err(|e| Error::io("create folder", &d, e))?;
                }
            }
            Some(rel) if kind.is_file() => match paths::parse(rel) {
                Some(Parsed::BlobData(d)) => {
                    let dst = v2.join(rel);
                    if dst.is_file() {
                        report.blobs_present += 1;
                    } else {
                        let n = write_blob(&mut entry, &dst, &d, verify, opts.dry_run, bundle)?;
                        report.blobs_written += 1;
                        report.bytes_written += n;
                        new_blobs.insert(d);
                    }
                }
                Some(p) => links.push(read_link(&mut entry, rel, p, bundle)?),
                None => {
                    return Err(escape(
                        bundle,
                        &name,
                        "it is not a blob or link of the storage layout",
                    ))
                }
            },
            Some(_) => {
                return Err(escape(
                    bundle,
                    &name,
                    "only files and folders may be unpacked, not links or devices",
                ))
            }
        }
        // Drain what was not read, so the trailer check sees every byte.
        io::copy(&mut entry, &mut io::sink()).map_err(bad)?;
        tail.borrow_mut().boundary(end);
        progress.inc(1);
    }
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(bad)?;
    if !tail.borrow().complete() {
        return Err(Error::Invalid {
            message: "the bundle is truncated (no end-of-archive marker); no link was written, run again with the whole bundle".into(),
            path: Some(bundle.into()),
        });
    }
    write_links(&v2, links, &new_blobs, opts, &mut report)?;
    progress.finish();
    Ok(report)
}

/// ROOT must be missing, empty, or a storage tree.
fn check_root(root: &Path) -> Result<()> {
    if root.symlink_metadata().is_err() {
        return Ok(());
    }
    let empty = root
        .read_dir()
        .map(|mut d| d.next().is_none())
        .unwrap_or(false);
    if empty || root.join(paths::V2_PREFIX).is_dir() {
        return Ok(());
    }
    Err(Error::NotAStorageTree { path: root.into() })
}

fn entry_name<R: Read>(entry: &tar::Entry<R>, bundle: &Path) -> Result<String> {
    let raw = entry.path_bytes();
    String::from_utf8(raw.into_owned()).map_err(|_| Error::Invalid {
        message: "an entry's name is not UTF-8".into(),
        path: Some(bundle.into()),
    })
}

/// The path of an entry relative to `v2`, if it is a safe path there.
fn entry_rel(name: &str) -> Option<&str> {
    let path = Path::new(name);
    if !path
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return None;
    }
    let name = name
        .strip_prefix("./")
        .unwrap_or(name)
        .trim_end_matches('/');
    name.strip_prefix(paths::V2_PREFIX)?
        .strip_prefix('/')
        .filter(|r| !r.is_empty())
}

/// `docker/`, `docker/registry/`, `docker/registry/v2/`.
fn is_v2_ancestor(name: &str) -> bool {
    let name = name
        .strip_prefix("./")
        .unwrap_or(name)
        .trim_end_matches('/');
    !name.is_empty()
        && paths::V2_PREFIX.starts_with(name)
        && paths::V2_PREFIX[name.len()..]
            .chars()
            .next()
            .is_none_or(|c| c == '/')
}

fn escape(bundle: &Path, name: &str, why: &str) -> Error {
    Error::Invalid {
        message: format!("refusing bundle entry `{name}`: {why}"),
        path: Some(bundle.into()),
    }
}

fn write_blob(
    entry: &mut impl Read,
    dst: &Path,
    d: &Digest,
    verify: bool,
    dry_run: bool,
    bundle: &Path,
) -> Result<u64> {
    let algo = verify.then(|| d.algorithm());
    let copy_error = |e: CopyError| match e {
        CopyError::Read(e) => Error::io("read the bundle", bundle, e),
        CopyError::Write(e) => Error::io("write", dst, e),
    };
    if dry_run {
        let (actual, n) = copy_hashed(entry, io::sink(), algo).map_err(copy_error)?;
        return check_digest(actual, d, bundle).map(|()| n);
    }
    let parent = dst.parent().expect("blob path has a parent");
    fs::create_dir_all(parent).map_err(|e| Error::io("create folder", parent, e))?;
    let tmp = sink::fs::sibling(dst, "regkit-tmp");
    let result = (|| {
        let out = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        let (actual, n) = copy_hashed(entry, out, algo).map_err(copy_error)?;
        check_digest(actual, d, bundle)?;
        fs::rename(&tmp, dst).map_err(|e| Error::io("rename into place", dst, e))?;
        Ok(n)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn check_digest(actual: Option<Digest>, d: &Digest, bundle: &Path) -> Result<()> {
    match actual {
        Some(actual) if actual != *d => Err(Error::DigestMismatch {
            path: bundle.join(Spec::BlobData(d).rooted()),
            expected: d.clone(),
            actual,
        }),
        _ => Ok(()),
    }
}

fn read_link(
    entry: &mut impl Read,
    rel: &str,
    parsed: Parsed,
    bundle: &Path,
) -> Result<PendingLink> {
    let mut bytes = Vec::new();
    entry
        .take(1025)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("read the bundle", bundle, e))?;
    let at = || bundle.join(format!("{}/{rel}", paths::V2_PREFIX));
    let digest = paths::parse_link(&bytes).map_err(|e| Error::BadLink {
        path: at(),
        found: e.found,
    })?;
    let (named, phase) = match &parsed {
        Parsed::RevisionLink { digest, .. } | Parsed::LayerLink { digest, .. } => {
            (Some(digest), Phase::Link)
        }
        Parsed::TagIndexLink { digest, .. } => (Some(digest), Phase::Name),
        Parsed::TagCurrentLink { .. } => (None, Phase::Name),
        _ => {
            return Err(escape(
                bundle,
                rel,
                "it is not a blob or link of the storage layout",
            ))
        }
    };
    if named.is_some_and(|n| *n != digest) {
        return Err(Error::Invalid {
            message: format!("link holds {digest} but its folder names another digest"),
            path: Some(at()),
        });
    }
    // Tag `current` links go after the tag's index links.
    let phase = if matches!(parsed, Parsed::TagCurrentLink { .. }) {
        Phase::Name
    } else {
        phase
    };
    Ok(PendingLink {
        rel: rel.to_string(),
        digest,
        phase,
    })
}

fn write_links(
    v2: &Path,
    mut links: Vec<PendingLink>,
    new_blobs: &std::collections::HashSet<Digest>,
    opts: &UnpackOptions,
    report: &mut UnpackReport,
) -> Result<()> {
    links.sort_by(|a, b| {
        let current = |l: &PendingLink| l.rel.ends_with("/current/link");
        (a.phase, current(a), &a.rel).cmp(&(b.phase, current(b), &b.rel))
    });
    // Check everything before writing any link.
    let mut todo = Vec::new();
    for l in &links {
        let blob = v2.join(Spec::BlobData(&l.digest).rel());
        let available = blob.is_file() || (opts.dry_run && new_blobs.contains(&l.digest));
        if !available {
            return Err(Error::DanglingLink {
                path: v2.join(&l.rel),
                digest: l.digest.clone(),
            });
        }
        let dst = v2.join(&l.rel);
        match fs::read(&dst) {
            Ok(have) if have == l.digest.as_str().as_bytes() => report.links_present += 1,
            Ok(have) if opts.force => {
                let _ = have;
                report.links_replaced += 1;
                todo.push((dst, l));
            }
            Ok(have) => {
                return Err(Error::Conflict {
                    path: dst,
                    existing: format!("{:?}", String::from_utf8_lossy(&have)),
                    wanted: format!("{:?}", l.digest.as_str()),
                })
            }
            Err(_) => todo.push((dst, l)),
        }
        if let Some(Parsed::TagCurrentLink { repo, tag }) = paths::parse(&l.rel) {
            report.images.push(format!("{repo}:{tag}"));
        }
    }
    if opts.dry_run {
        report.links_written = todo.len() as u64;
        return Ok(());
    }
    for (dst, l) in todo {
        let parent = dst.parent().expect("link path has a parent");
        fs::create_dir_all(parent).map_err(|e| Error::io("create folder", parent, e))?;
        let tmp = sink::fs::sibling(&dst, "regkit-tmp");
        fs::write(&tmp, l.digest.as_str())
            .and_then(|()| fs::rename(&tmp, &dst))
            .map_err(|e| {
                let _ = fs::remove_file(&tmp);
                Error::io("write link", &dst, e)
            })?;
        report.links_written += 1;
    }
    Ok(())
}

/// Watches the bytes after the last entry: a whole tar ends with at least
/// two zero blocks; a stream cut at an entry boundary does not.
#[derive(Default)]
struct Tail {
    total: u64,
    boundary: u64,
    nonzero_after: bool,
}

impl Tail {
    fn boundary(&mut self, end: u64) {
        self.boundary = end;
        self.nonzero_after = false;
    }

    fn complete(&self) -> bool {
        !self.nonzero_after && self.total >= self.boundary + 1024
    }
}

struct TailReader<R> {
    inner: R,
    tail: Rc<RefCell<Tail>>,
}

impl<R: Read> Read for TailReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut t = self.tail.borrow_mut();
        let start = t.total;
        t.total += n as u64;
        if t.total > t.boundary {
            let skip = t.boundary.saturating_sub(start) as usize;
            if buf[skip.min(n)..n].iter().any(|b| *b != 0) {
                t.nonzero_after = true;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_must_stay_under_v2() {
        assert_eq!(entry_rel("docker/registry/v2/blobs/x"), Some("blobs/x"));
        assert_eq!(
            entry_rel("./docker/registry/v2/repositories/a/"),
            Some("repositories/a")
        );
        assert_eq!(entry_rel("docker/registry/v2/../../../etc/passwd"), None);
        assert_eq!(entry_rel("/docker/registry/v2/blobs/x"), None);
        assert_eq!(entry_rel("docker/registry/v2"), None);
        assert_eq!(entry_rel("other/file"), None);
        assert!(is_v2_ancestor("docker/registry/"));
        assert!(is_v2_ancestor("./docker"));
        assert!(!is_v2_ancestor("dock"));
        assert!(!is_v2_ancestor("../docker"));
    }
}
