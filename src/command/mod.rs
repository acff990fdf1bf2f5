//! The commands as library operations: each opens what it needs, runs the
//! catalog → selection → plan → sink pipeline and returns what happened, for
//! the CLI to print.

pub mod delete;
pub mod diff;
pub mod du;
pub mod export;
pub mod extract;
pub mod gc;
pub mod import;
pub mod inspect;
pub mod ls;
pub mod pack;
pub mod pull;
pub mod push;
pub mod select;
pub mod serve;
pub mod unpack;
pub mod verify;

use std::path::Path;

use crate::catalog::{Catalog, WalkOptions};
use crate::error::Result;
use crate::plan::Plan;
use crate::progress::Progress;
use crate::selection::{self, Request, Selection};
use crate::sink::fs::Report;
use crate::store::Store;

/// How an output is written.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Replace an existing output (once the new one is complete).
    pub force: bool,
    /// Plan only; write nothing.
    pub dry_run: bool,
    /// No progress bar.
    pub quiet: bool,
}

/// What a writing command did.
pub struct Outcome {
    pub selection: Selection,
    pub plan: Plan,
    /// `None` for a dry run.
    pub report: Option<Report>,
}

/// Refuses outputs that are ROOT, contain it or lie inside it, before
/// anything is read or written ([`crate::overlap`]); `outs` are the
/// outputs with what to call them (`the output`, `the bundle`).
pub fn refuse_overlap(root: &Path, outs: &[(&Path, &'static str)]) -> Result<()> {
    let store = Store::open(root)?;
    let protected = crate::overlap::Protected::tree(root, store.v2());
    for (out, what) in outs {
        protected.check(out, what)?;
    }
    Ok(())
}

/// Opens ROOT, walks it and resolves the request. When the request names
/// images, only their repositories are walked; an unknown name walks the
/// whole tree again, so the error can say which names are near.
pub fn open_and_select(root: &Path, req: &Request) -> Result<(Store, Selection)> {
    let store = Store::open(root)?;
    if !req.refs.is_empty() {
        let repos = req.refs.iter().flat_map(|r| r.candidates()).collect();
        let opts = WalkOptions {
            repos: Some(repos),
            // Referrers are found among every revision's manifests.
            revisions: req.referrers,
            ..WalkOptions::default()
        };
        let catalog = Catalog::load(&store, opts)?;
        let unknown = |e: &crate::Error| matches!(e.root(), crate::Error::UnknownImage { .. });
        match selection::select(&catalog, req) {
            Ok(sel) if !sel.skipped.iter().chain(&sel.failures).any(unknown) => {
                return Ok((store, sel))
            }
            Err(e) if !unknown(&e) => return Err(e),
            _ => {}
        }
    }
    let opts = WalkOptions {
        revisions: req.referrers,
        ..WalkOptions::default()
    };
    let catalog = Catalog::load(&store, opts)?;
    let sel = selection::select(&catalog, req)?;
    Ok((store, sel))
}

/// Names the image behind an error about a blob, when the sink that hit it
/// only knew the blob.
pub fn with_image(e: crate::Error, sel: &Selection) -> crate::Error {
    let digest = match e.root() {
        crate::Error::DigestMismatch { expected, .. } => expected.clone(),
        crate::Error::MissingBlob { digest, .. } => digest.clone(),
        crate::Error::SizeMismatch { digest, .. } => digest.clone(),
        // Any other error about a blob's file (not a regular file, unreadable).
        _ => match e.path().and_then(blob_of_path) {
            Some(d) => d,
            None => return e,
        },
    };
    let Some(img) = sel.images.iter().find(|i| i.role_of(&digest).is_some()) else {
        return e;
    };
    let e = match e {
        // Say what the blob is to the image (`layer 2 of 3`).
        crate::Error::MissingBlob { digest, path, .. } => crate::Error::MissingBlob {
            what: img.role_of(&digest).unwrap_or_else(|| "blob".into()),
            digest,
            path,
        },
        e => e,
    };
    e.in_image(img.name())
}

/// Writes the plan of `sel` (made by `plan`) with `write`. With
/// `keep_going`, an image whose blob fails while being written (a copy
/// whose digest or size is wrong, a blob that cannot be read) is left out,
/// with every other image that uses that blob, and reported in
/// `sel.failures`; the others are planned and written again. The failed
/// attempt left no link behind: a new output is built aside and put in
/// place only when whole, a merge writes links only after every blob.
pub fn write_keeping_going<R>(
    sel: &mut Selection,
    keep_going: bool,
    plan: impl Fn(&Selection) -> Result<Plan>,
    mut write: impl FnMut(&Plan) -> Result<R>,
) -> Result<(Plan, R)> {
    loop {
        let p = plan(sel)?;
        match write(&p) {
            Ok(r) => return Ok((p, r)),
            Err(e) => {
                let e = with_image(e, sel);
                let Some(d) = failed_blob(&e).filter(|_| keep_going) else {
                    return Err(e);
                };
                if !sel.images.iter().any(|i| i.role_of(&d).is_some()) {
                    return Err(e);
                }
                drop_images_using(sel, &d, e.root_shared());
            }
        }
    }
}

/// Hashes every config and layer of `sel` once (for outputs streamed in
/// one pass, which cannot leave an image out once it is under way): an
/// image with a blob whose content is not its digest, or that cannot be
/// read, is moved to the failures with every other image using it.
pub fn check_blobs_first(store: &Store, sel: &mut Selection, quiet: bool) -> Result<()> {
    let blobs: Vec<(crate::Digest, bool)> = sel
        .unique_blobs()
        .into_iter()
        .map(|d| (d.clone(), true))
        .collect();
    let progress = Progress::new(blobs.len() as u64, "checking", quiet);
    let checked = crate::blobs::check_all(store, &blobs, &progress);
    progress.finish();
    crate::interrupt::check()?;
    for ((d, _), c) in blobs.iter().zip(checked) {
        let path = || store.display(&crate::paths::Spec::BlobData(d));
        let e = match c {
            crate::blobs::Checked::Present {
                actual: Some(a), ..
            } if &a != d => crate::Error::DigestMismatch {
                path: path(),
                expected: d.clone(),
                actual: a,
            },
            crate::blobs::Checked::Present { .. } => continue,
            crate::blobs::Checked::Missing => crate::Error::MissingBlob {
                digest: d.clone(),
                what: "blob".into(),
                path: path(),
            },
            crate::blobs::Checked::Unreadable(e) => crate::Error::Shared(e),
        };
        drop_images_using(sel, d, std::sync::Arc::new(e));
    }
    Ok(())
}

/// Moves the images of `sel` that use the blob `digest` to its failures,
/// each with `error`; says whether there was one.
pub fn drop_images_using(
    sel: &mut Selection,
    digest: &crate::Digest,
    error: std::sync::Arc<crate::Error>,
) -> bool {
    let (bad, good): (Vec<_>, Vec<_>) = std::mem::take(&mut sel.images)
        .into_iter()
        .partition(|i| i.role_of(digest).is_some());
    sel.images = good;
    let any = !bad.is_empty();
    for img in bad {
        sel.failures
            .push(crate::Error::Shared(error.clone()).in_image(img.name()));
    }
    any
}

/// The source blob an error found broken while writing, if it is about
/// one: its content, its size, or reading it (not writing the output).
fn failed_blob(e: &crate::Error) -> Option<crate::Digest> {
    match e.root() {
        crate::Error::DigestMismatch { expected, .. } => Some(expected.clone()),
        crate::Error::SizeMismatch { digest, .. } => Some(digest.clone()),
        crate::Error::MissingBlob { digest, .. } => Some(digest.clone()),
        crate::Error::Io { action, path, .. } if *action == "read" || *action == "open" => {
            blob_of_path(path)
        }
        _ => None,
    }
}

/// The blob whose `data` file `path` is (`.../blobs/<algo>/<2 hex>/<hex>/data`).
fn blob_of_path(path: &Path) -> Option<crate::Digest> {
    let parts: Vec<&str> = path
        .components()
        .rev()
        .take(5)
        .filter_map(|c| c.as_os_str().to_str())
        .collect();
    let rel: Vec<&str> = parts.into_iter().rev().collect();
    match crate::paths::parse(&rel.join("/")) {
        Some(crate::paths::Parsed::BlobData(d)) => Some(d),
        _ => None,
    }
}

/// The request for an output built by hardlinks or reads of every blob,
/// which find a missing blob themselves: choosing need not look each blob
/// up first, unless broken images must be left out (`keep_going`) or named
/// without writing (`dry_run`).
pub fn checked_on_write(req: &Request, opts: &WriteOptions) -> Request {
    Request {
        blobs_checked_on_write: !req.keep_going && !opts.dry_run,
        ..req.clone()
    }
}

/// A progress bar over a plan's files.
pub fn plan_progress(plan: &Plan, verb: &str, opts: &WriteOptions) -> Progress {
    Progress::new(plan.files.len() as u64, verb, opts.quiet)
}

/// Where a registry tree is written: a new folder, or an existing tree
/// (or empty folder) that is added to.
pub enum StorageTarget {
    New,
    Merge,
}

impl StorageTarget {
    /// What `out` is. `force` is `None` for commands that never replace an
    /// output, `Some(--force)` for those that may.
    pub fn of(out: &Path, force: Option<bool>) -> Result<StorageTarget> {
        // A bucket (or a registry configuration naming one) is written key
        // by key, in the safe order; it has no folder to build aside.
        let env = crate::store::s3::config::Env::current();
        if let crate::store::s3::config::Target::S3(_) =
            crate::store::s3::config::target(out, &env)?
        {
            return Ok(StorageTarget::Merge);
        }
        if out.symlink_metadata().is_err() {
            return Ok(StorageTarget::New);
        }
        let empty = out
            .read_dir()
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if empty || out.join(crate::paths::V2_PREFIX).is_dir() {
            return Ok(StorageTarget::Merge);
        }
        if crate::store::tar::is_archive(out) {
            let message = match force {
                Some(true) => return Ok(StorageTarget::New),
                Some(false) => "the output is a bundle, which is read only (use --force to replace it, or unpack it into a tree to add to it)",
                None => crate::store::tar::READ_ONLY,
            };
            return Err(crate::Error::Invalid {
                message: message.into(),
                path: Some(out.into()),
            });
        }
        if Store::open(out).is_ok() {
            return Err(crate::Error::Invalid {
                message: "this is inside or above a storage tree; name its root directory (the folder holding docker/registry/v2)".into(),
                path: Some(out.into()),
            });
        }
        let message = match force {
            Some(true) => return Ok(StorageTarget::New),
            Some(false) => {
                "the output exists and is not a registry storage tree (use --force to replace it)"
            }
            None => "this exists and is not a registry storage tree",
        };
        Err(crate::Error::Invalid {
            message: message.into(),
            path: Some(out.into()),
        })
    }

    /// Writes `plan` there: a new tree is built aside and put in place in
    /// one step; an existing one is merged into through its store,
    /// refusing what differs.
    pub fn write(
        &self,
        plan: &Plan,
        store: &Store,
        out: &Path,
        force: bool,
        progress: &Progress,
    ) -> Result<crate::sink::fs::Report> {
        match self {
            StorageTarget::New => crate::sink::fs::write_new(plan, store, out, force, progress),
            StorageTarget::Merge => {
                let dst = Store::create(out)?;
                // An existing tree: hold its writers' lock, so that no gc
                // runs while blobs are in place and their links not yet.
                let _lock = crate::lock::Lock::shared(&dst)?;
                crate::sink::store::merge(plan, store, &dst, progress)
            }
        }
    }
}
