//! The commands as library operations: each opens what it needs, runs the
//! catalog → selection → plan → sink pipeline and returns what happened, for
//! the CLI to print.

pub mod delete;
pub mod diff;
pub mod extract;
pub mod gc;
pub mod inspect;
pub mod ls;
pub mod pack;
pub mod push;
pub mod select;
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

/// Opens ROOT, walks it and resolves the request.
pub fn open_and_select(root: &Path, req: &Request) -> Result<(Store, Selection)> {
    let store = Store::open(root)?;
    let catalog = Catalog::load(&store, WalkOptions::default())?;
    let sel = selection::select(&catalog, req)?;
    Ok((store, sel))
}

/// Names the image behind an error about a blob, when the sink that hit it
/// only knew the blob.
pub fn with_image(e: crate::Error, sel: &Selection) -> crate::Error {
    let digest = match e.root() {
        crate::Error::DigestMismatch { expected, .. } => expected,
        crate::Error::MissingBlob { digest, .. } => digest,
        _ => return e,
    };
    let owner = sel.images.iter().find(|i| {
        i.blobs.iter().any(|b| &b.digest == digest)
            || i.manifests.iter().any(|m| &m.digest == digest)
    });
    match owner {
        Some(img) => e.in_image(img.name()),
        None => e,
    }
}

/// A progress bar over a plan's files.
pub fn plan_progress(plan: &Plan, verb: &str, opts: &WriteOptions) -> Progress {
    Progress::new(plan.files.len() as u64, verb, opts.quiet)
}
