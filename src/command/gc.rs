//! `gc`: offline mark and sweep of a storage tree, like
//! `docker-registry garbage-collect`, with the safety checks an offline
//! tool needs.

use std::path::Path;
use std::time::SystemTime;

use crate::catalog::{Catalog, WalkOptions};
use crate::error::{Error, Result};
use crate::gc::{self, mark, sweep, uploads, Options, Plan};
use crate::paths::Spec;
use crate::progress::Progress;
use crate::store::Store;
use crate::store_write::TreeWriter;

/// What gc did (or, for a dry run, would do).
#[derive(Debug)]
pub struct Outcome {
    pub plan: Plan,
    pub dry_run: bool,
    /// Manifests kept, summed over repositories.
    pub kept_manifests: usize,
    /// Blobs marked (manifests included).
    pub marked_blobs: usize,
    pub warnings: Vec<Error>,
    /// When not empty, gc refused and removed nothing.
    pub blockers: Vec<Error>,
}

pub fn run(root: &Path, opts: &Options) -> Result<Outcome> {
    let store = Store::open(root)?;
    let writer = TreeWriter::new(&store)?;
    // Refuse early; take the lock only to sweep, so that a refused run
    // writes nothing. (Work done before the lock is safe: another delete
    // can only make more garbage, never make garbage needed.)
    writer.check_unlocked()?;
    let now = SystemTime::now();
    let uploads = uploads::find(&store)?;
    let recent = gc::recent(&uploads, now);
    if let (false, Some(u)) = (opts.force, recent.first()) {
        return Err(Error::Refused {
            message: format!(
                "a registry may be writing to this tree: {} upload(s) were written to in the last {} minutes",
                recent.len(),
                gc::RECENT_UPLOAD.as_secs() / 60
            ),
            path: store.display(&Spec::Upload(&u.repository, &u.id)),
            help: "stop the registry (or set it read-only) before collecting; --force runs anyway"
                .into(),
        });
    }
    let catalog = Catalog::load(
        &store,
        WalkOptions {
            links: true,
            revisions: true,
            repos: None,
        },
    )?;
    let marked = mark::mark(&catalog, opts.delete_untagged)?;
    let mut outcome = Outcome {
        plan: Plan::default(),
        dry_run: opts.dry_run,
        kept_manifests: marked.kept,
        marked_blobs: marked.blobs.len(),
        warnings: Vec::new(),
        blockers: Vec::new(),
    };
    if !marked.blockers.is_empty() {
        outcome.warnings = marked.warnings;
        outcome.blockers = marked.blockers;
        return Ok(outcome);
    }
    outcome.plan = gc::plan(&catalog, &marked, &uploads, opts, now)?;
    crate::interrupt::check()?;
    outcome.warnings = marked.warnings;
    if !opts.dry_run {
        let _lock = writer.lock()?;
        let progress = Progress::new(outcome.plan.steps(), "collecting", opts.quiet);
        sweep::apply(&outcome.plan, &writer, &progress)?;
        progress.finish();
    }
    std::thread::spawn(move || drop((catalog, marked.blobs)));
    Ok(outcome)
}
