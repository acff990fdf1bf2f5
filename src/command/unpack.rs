//! `unpack`: merges a bundle into a registry storage tree, safely, through
//! the store's write half.
//!
//! Every entry is placed against the tree it carries ([`crate::archive`]):
//! regkit's bundles and plain tars of a registry (`./docker/...`, the `v2`
//! folder itself) are read alike; folders are only checked against the
//! layout, never created on their own; `_uploads` partials and files beside
//! the tree are skipped with a note; escapes are refused. Blobs are written
//! as the stream brings them, each checked against its digest (unless
//! `--no-verify`) before it appears; blobs already present are kept. Links
//! wait until the whole stream has been read and found complete; then
//! revision and `_layers` links are written, then tags, each tag's folder
//! appearing with its `current` link. So a registry serving ROOT never sees
//! a link to a missing blob or a tag it cannot serve, and an interrupted
//! unpack leaves ROOT valid: running it again completes it.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::rc::Rc;

use serde::Serialize;

use crate::archive::{Locator, Place};
use crate::compress::{self, Compression};
use crate::digest::{copy_hashed, CopyError, Digest};
use crate::error::{Error, Result};
use crate::interrupt;
use crate::lock::Lock;
use crate::overlap::Protected;
use crate::paths::{self, Parsed, Spec};
use crate::progress::Progress;
use crate::store::{Body, LinkPut, Store};

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
    /// Where the tree was in the archive (`docker/registry/v2` for regkit's
    /// own bundles).
    pub tree_prefix: Option<String>,
    /// Entries left out, with why (files beside the tree, `_uploads`
    /// partials, tags without a `current` link).
    pub skipped: Vec<String>,
}

/// A link of the bundle: its place in the tree and the digest it holds.
struct PendingLink {
    parsed: Parsed,
    digest: Digest,
}

/// Unpacks `bundle` (`-` for standard input) into the tree at `root`.
pub fn run(bundle: &Path, root: &Path, opts: &UnpackOptions) -> Result<UnpackReport> {
    // ROOT is opened if it is a tree, and made only once there is something
    // to write in it.
    let mut store = match Store::can_create(root)? {
        true => Some(Store::create(root)?),
        false => None,
    };
    // Held while anything is written: no gc may run while blobs are in
    // place and their links not yet.
    let mut lock = match (&store, opts.dry_run) {
        (Some(s), false) => Some(Lock::shared(s)?),
        _ => None,
    };
    if let Some(s) = &store {
        Protected::tree(root, s.v2()).check(bundle, "the bundle")?;
    }
    let input: Box<dyn Read> = if bundle == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(bundle).map_err(|e| Error::io("open", bundle, e))?)
    };
    let (compression, reader) =
        compress::decoder(input).map_err(|e| Error::io("read", bundle, e))?;
    let mut report = UnpackReport {
        compression: Some(compression),
        verified: opts.verify,
        dry_run: opts.dry_run,
        ..UnpackReport::default()
    };
    let tail = Rc::new(RefCell::new(Tail::default()));
    let mut archive = tar::Archive::new(TailReader {
        inner: reader,
        tail: tail.clone(),
    });
    let bad = |e: io::Error| Error::io("read the bundle", bundle, e);
    let progress = Progress::new(0, "unpacking", opts.quiet);
    let mut locator = Locator::new();
    let mut links: BTreeMap<String, PendingLink> = BTreeMap::new();
    // Blobs of this bundle seen so far (a second entry for one is checked too).
    let mut seen_blobs: HashSet<Digest> = HashSet::new();
    let mut uploads_skipped = 0usize;
    for entry in archive.entries().map_err(bad)? {
        interrupt::check()?;
        let mut entry = entry.map_err(bad)?;
        let end = entry.raw_file_position() + entry.size().div_ceil(512) * 512;
        let name = entry_name(&entry, bundle)?;
        let kind = entry.header().entry_type();
        match locator.place(&name) {
            Place::Escape => return Err(escape(bundle, &name, "it leads out of the tree")),
            Place::Above => {}
            Place::Outside(p) => report
                .skipped
                .push(format!("{p}: not in the registry tree")),
            Place::Tree(rel) if kind.is_dir() => {
                if !paths::is_layout_folder(&rel) {
                    return Err(escape(
                        bundle,
                        &name,
                        "it is not a folder of the storage layout",
                    ));
                }
            }
            Place::Tree(rel) if kind.is_file() => match paths::parse(&rel) {
                Some(Parsed::BlobData(d)) => {
                    let again = !seen_blobs.insert(d.clone());
                    let present = match &store {
                        Some(s) => s.blob_size(&d)?.is_some(),
                        None => false,
                    };
                    if again || present || opts.dry_run {
                        // Nothing to write; a digest check still reads it.
                        let n = check_blob(
                            &mut entry,
                            &d,
                            opts.verify && (again || opts.dry_run),
                            bundle,
                        )?;
                        if present || again {
                            report.blobs_present += 1;
                        } else {
                            report.blobs_written += 1;
                            report.bytes_written += n;
                        }
                    } else {
                        let n = entry.size();
                        let store = match &mut store {
                            Some(s) => &*s,
                            None => store.insert(create_locked(root, &mut lock)?),
                        };
                        let body = Body::Stream {
                            reader: &mut entry,
                            digest: opts.verify.then_some(&d),
                        };
                        let source = bundle.join(Spec::BlobData(&d).rooted());
                        match store.put_blob(&d, body, &source)? {
                            Some(_) => {
                                report.blobs_written += 1;
                                report.bytes_written += n;
                            }
                            None => report.blobs_present += 1,
                        }
                    }
                }
                Some(Parsed::Upload { .. }) => uploads_skipped += 1,
                Some(p) => {
                    let digest = read_link(&mut entry, &rel, &p, bundle)?;
                    if let Some(old) = links.get(&rel) {
                        if old.digest != digest {
                            return Err(Error::Invalid {
                                message: format!(
                                    "the bundle holds this link twice, with {} and {digest}",
                                    old.digest
                                ),
                                path: Some(bundle.join(format!("{}/{rel}", paths::V2_PREFIX))),
                            });
                        }
                    }
                    links.insert(rel, PendingLink { parsed: p, digest });
                }
                None => {
                    return Err(escape(
                        bundle,
                        &name,
                        "it is not a blob or link of the storage layout",
                    ))
                }
            },
            Place::Tree(_) => {
                return Err(escape(
                    bundle,
                    &name,
                    "only files and folders may be unpacked, not links or devices",
                ))
            }
        }
        // Drain what was not read, so the trailer check sees every byte.
        drain(&mut entry).map_err(bad)?;
        tail.borrow_mut().boundary(end);
        progress.inc(1);
    }
    let mut rest = archive.into_inner();
    drain(&mut rest).map_err(bad)?;
    if !tail.borrow().complete() {
        return Err(Error::Invalid {
            message: "the bundle is truncated (no end-of-archive marker); no link was written, run again with the whole bundle".into(),
            path: Some(bundle.into()),
        });
    }
    if uploads_skipped > 0 {
        report.skipped.push(format!(
            "{uploads_skipped} file(s) of unfinished uploads (_uploads/): not part of any image"
        ));
    }
    report.tree_prefix = locator.prefix();
    if report.tree_prefix.is_none() {
        return Err(Error::Invalid {
            message: "the bundle holds no registry tree (nothing under blobs/ or repositories/ at any of the usual depths); nothing was written".into(),
            path: Some(bundle.into()),
        });
    }
    write_links(
        root,
        store.as_ref(),
        &mut lock,
        links,
        &seen_blobs,
        opts,
        &mut report,
    )?;
    progress.finish();
    Ok(report)
}

/// Reads to the end, stopping at Ctrl-C like every copy loop.
fn drain(r: &mut impl Read) -> io::Result<u64> {
    match copy_hashed(r, io::sink(), None) {
        Ok((_, n)) => Ok(n),
        Err(CopyError::Read(e) | CopyError::Write(e)) => Err(e),
    }
}

/// Makes the tree at `root` and takes its writers' lock.
fn create_locked(root: &Path, lock: &mut Option<Lock>) -> Result<Store> {
    let store = Store::create(root)?;
    if lock.is_none() {
        *lock = Some(Lock::shared(&store)?);
    }
    Ok(store)
}

fn entry_name<R: Read>(entry: &tar::Entry<R>, bundle: &Path) -> Result<String> {
    let raw = entry.path_bytes();
    String::from_utf8(raw.into_owned()).map_err(|_| Error::Invalid {
        message: "an entry's name is not UTF-8".into(),
        path: Some(bundle.into()),
    })
}

fn escape(bundle: &Path, name: &str, why: &str) -> Error {
    Error::Invalid {
        message: format!("refusing bundle entry `{name}`: {why}"),
        path: Some(bundle.into()),
    }
}

/// Reads a blob entry that is not written (present already, a second copy
/// in the bundle, or a dry run), checking its digest when `verify`.
fn check_blob(entry: &mut impl Read, d: &Digest, verify: bool, bundle: &Path) -> Result<u64> {
    let algo = verify.then(|| d.algorithm());
    let (actual, n) = copy_hashed(entry, io::sink(), algo).map_err(|e| match e {
        CopyError::Read(e) | CopyError::Write(e) => Error::io("read the bundle", bundle, e),
    })?;
    match actual {
        Some(actual) if actual != *d => Err(Error::DigestMismatch {
            path: bundle.join(Spec::BlobData(d).rooted()),
            expected: d.clone(),
            actual,
        }),
        _ => Ok(n),
    }
}

fn read_link(entry: &mut impl Read, rel: &str, parsed: &Parsed, bundle: &Path) -> Result<Digest> {
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
    let named = match parsed {
        Parsed::RevisionLink { digest, .. }
        | Parsed::LayerLink { digest, .. }
        | Parsed::TagIndexLink { digest, .. } => Some(digest),
        _ => None,
    };
    if named.is_some_and(|n| *n != digest) {
        return Err(Error::Invalid {
            message: format!("link holds {digest} but its folder names another digest"),
            path: Some(at()),
        });
    }
    Ok(digest)
}

/// A link of the bundle as a spec of the tree.
fn spec_of(p: &Parsed) -> Spec<'_> {
    match p {
        Parsed::RevisionLink { repo, digest } => Spec::RevisionLink(repo, digest),
        Parsed::LayerLink { repo, digest } => Spec::LayerLink(repo, digest),
        Parsed::TagCurrentLink { repo, tag } => Spec::TagCurrentLink(repo, tag),
        Parsed::TagIndexLink { repo, tag, digest } => Spec::TagIndexLink(repo, tag, digest),
        Parsed::BlobData(d) => Spec::BlobData(d),
        Parsed::Upload { repo, id } => Spec::Upload(repo, id),
    }
}

/// Checks every link (its blob is there, it does not contradict ROOT),
/// then writes revision and `_layers` links, then tags.
fn write_links(
    root: &Path,
    store: Option<&Store>,
    lock: &mut Option<Lock>,
    links: BTreeMap<String, PendingLink>,
    new_blobs: &HashSet<Digest>,
    opts: &UnpackOptions,
    report: &mut UnpackReport,
) -> Result<()> {
    let mut content = Vec::new();
    // (repo, tag) → (current, index entries)
    let mut tags: BTreeMap<(String, String), (Option<Digest>, Vec<Digest>)> = BTreeMap::new();
    for l in links.into_values() {
        match &l.parsed {
            Parsed::TagCurrentLink { repo, tag } => {
                tags.entry((repo.clone(), tag.clone())).or_default().0 = Some(l.digest)
            }
            Parsed::TagIndexLink { repo, tag, .. } => tags
                .entry((repo.clone(), tag.clone()))
                .or_default()
                .1
                .push(l.digest),
            _ => content.push(l),
        }
    }
    let blob_there = |d: &Digest| -> Result<bool> {
        Ok(new_blobs.contains(d) || store.map_or(Ok(None), |s| s.blob_size(d))?.is_some())
    };
    let link_state = |spec: &Spec, d: &Digest| -> Result<Option<LinkPut>> {
        let Some(s) = store else {
            return Ok(None);
        };
        match s.read_file(spec, 1024)? {
            None => Ok(None),
            Some(have) if have == paths::link_bytes(d) => Ok(Some(LinkPut::Present)),
            Some(_) if opts.force => Ok(Some(LinkPut::Replaced)),
            Some(have) => Err(Error::Conflict {
                path: s.display(spec),
                existing: format!("{:?}", String::from_utf8_lossy(&have)),
                wanted: format!("{:?}", d.as_str()),
            }),
        }
    };
    let dangling = |spec: &Spec, d: &Digest| Error::DanglingLink {
        path: store.map_or_else(|| spec.path(), |s| s.display(spec)),
        digest: d.clone(),
    };
    // Check everything before writing any link.
    let mut todo_content = Vec::new();
    for l in &content {
        let spec = spec_of(&l.parsed);
        if !blob_there(&l.digest)? {
            return Err(dangling(&spec, &l.digest));
        }
        match link_state(&spec, &l.digest)? {
            Some(LinkPut::Present) => report.links_present += 1,
            _ => todo_content.push(l),
        }
    }
    let mut todo_tags = Vec::new();
    for ((repo, tag), (current, index)) in &tags {
        let Some(current) = current else {
            // Index entries alone would make a tag the registry lists but
            // cannot serve.
            report.skipped.push(format!(
                "{repo}:{tag}: the bundle has no current link for this tag"
            ));
            continue;
        };
        let spec = Spec::TagCurrentLink(repo, tag);
        if !blob_there(current)? {
            return Err(dangling(&spec, current));
        }
        report.images.push(format!("{repo}:{tag}"));
        match link_state(&spec, current)? {
            Some(LinkPut::Present) => report.links_present += 1 + index.len() as u64,
            _ => todo_tags.push((repo, tag, current, index)),
        }
    }
    if opts.dry_run {
        report.links_written = (todo_content.len() + todo_tags.len()) as u64;
        return Ok(());
    }
    if todo_content.is_empty() && todo_tags.is_empty() {
        return Ok(());
    }
    let made;
    let store = match store {
        Some(s) => s,
        None => {
            made = create_locked(root, lock)?;
            &made
        }
    };
    for l in todo_content {
        interrupt::check()?;
        match store.put_link(&spec_of(&l.parsed), &l.digest, opts.force)? {
            LinkPut::Replaced => report.links_replaced += 1,
            LinkPut::Present => report.links_present += 1,
            LinkPut::Written => report.links_written += 1,
        }
    }
    for (repo, tag, current, index) in todo_tags {
        interrupt::check()?;
        match store.put_tag(repo, tag, current, index, opts.force)? {
            LinkPut::Replaced => report.links_replaced += 1,
            LinkPut::Present => report.links_present += 1,
            LinkPut::Written => report.links_written += 1,
        }
    }
    Ok(())
}

/// Watches the bytes after the last entry: a whole tar ends with two zero
/// blocks; a stream cut at an entry boundary does not. What follows the two
/// zero blocks is ignored, as GNU tar ignores it.
#[derive(Default)]
struct Tail {
    total: u64,
    boundary: u64,
    /// Zero bytes seen right after the boundary, up to 1024.
    zeros: u64,
    /// A non-zero byte came before 1024 zeros.
    broken: bool,
}

impl Tail {
    fn boundary(&mut self, end: u64) {
        self.boundary = end;
        self.zeros = 0;
        self.broken = false;
    }

    fn complete(&self) -> bool {
        !self.broken && self.zeros >= 1024
    }

    fn saw(&mut self, start: u64, bytes: &[u8]) {
        let skip = self.boundary.saturating_sub(start) as usize;
        for b in bytes.iter().skip(skip) {
            if self.zeros >= 1024 || self.broken {
                return;
            }
            if *b == 0 {
                self.zeros += 1;
            } else {
                self.broken = true;
            }
        }
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
            t.saw(start, &buf[..n]);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tar_is_whole_after_two_zero_blocks_whatever_follows() {
        let cases: [(Vec<u8>, bool); 4] = [
            (vec![0; 1024], true),
            ([vec![0; 1024], b"trailing junk".to_vec()].concat(), true),
            (vec![0; 512], false),
            ([vec![0; 100], vec![1], vec![0; 2000]].concat(), false),
        ];
        for (bytes, whole) in &cases {
            let mut t = Tail::default();
            t.boundary(0);
            for (i, chunk) in bytes.chunks(300).enumerate() {
                t.saw(i as u64 * 300, chunk);
            }
            assert_eq!(t.complete(), *whole, "{} bytes", bytes.len());
        }
    }
}
