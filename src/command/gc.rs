//! `gc`: offline mark and sweep of a storage tree, like
//! `docker-registry garbage-collect`, with the safety checks an offline
//! tool needs: it holds the tree's lock alone (no regkit writes meanwhile),
//! refuses while uploads are fresh (a registry may be running), never
//! removes what was written since it started, and works around damage by
//! keeping the damaged repositories whole.

use std::path::Path;
use std::time::SystemTime;

use crate::catalog::{Catalog, WalkOptions};
use crate::error::{Error, Result};
use crate::gc::{self, mark, sweep, uploads, Fresh, Options, Plan};
use crate::lock::Lock;
use crate::paths::Spec;
use crate::progress::Progress;
use crate::store::Store;

pub use crate::gc::mark::KeptWhole;

/// What gc did (or, for a dry run, would do).
#[derive(Debug)]
pub struct Outcome {
    /// What was removed (or would be).
    pub plan: Plan,
    pub dry_run: bool,
    /// Manifests kept, summed over repositories.
    pub kept_manifests: usize,
    /// Blobs marked (manifests included).
    pub marked_blobs: usize,
    pub warnings: Vec<Error>,
    /// Repositories kept whole because of damage: gc did its work
    /// everywhere else, but the tree needs attention.
    pub kept_whole: Vec<KeptWhole>,
    /// Files the plan named that were left because they were written
    /// since gc started (a writer that takes no lock was at work).
    pub left_fresh: usize,
    /// Requests sent to the object store (0 on disk).
    pub requests: u64,
}

pub fn run(root: &Path, opts: &Options) -> Result<Outcome> {
    let started = SystemTime::now();
    let store = Store::open(root)?;
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
    // Held from before the walk to the last removal, so that no regkit
    // writer links a blob the mark did not see. A dry run removes nothing
    // and takes no lock.
    let lock = (!opts.dry_run)
        .then(|| Lock::exclusive(&store))
        .transpose()?;
    // Files stamped after the lock was taken were written since.
    let since = lock.as_ref().and_then(Lock::taken_at).unwrap_or(started);
    let mut fresh = Fresh::new(&store, since, !opts.dry_run)?;
    let catalog = Catalog::load(
        &store,
        WalkOptions {
            links: true,
            revisions: true,
            repos: None,
            // Every revision is kept then, and what tags point at among them.
            skip_tag_targets: !opts.delete_untagged,
        },
    )?;
    let marked = mark::mark(&catalog, opts.delete_untagged, &|repo, d| {
        fresh.is(&Spec::RevisionLink(repo, d))
    })?;
    let mut plan = gc::plan(&catalog, &marked, &uploads, opts, now, &fresh)?;
    let mut warnings = marked.warnings;
    warnings.append(&mut plan.unreadable);
    crate::interrupt::check()?;
    let mut left_fresh = 0;
    if !opts.dry_run {
        fresh.refresh()?;
        let progress = Progress::new(plan.steps(), "collecting", opts.quiet);
        let needs = |repo: &str, d: &crate::Digest| mark::needs(&catalog, repo, d);
        let left = sweep::apply(&plan, &store, &fresh, &needs, &progress)?;
        for l in &plan.leftovers {
            crate::interrupt::check()?;
            store.remove_leftover(l)?;
            progress.inc(1);
        }
        progress.finish();
        if !left.is_empty() {
            left_fresh = left.manifests.len() + left.layer_links.len() + left.blobs.len();
            plan = without(plan, &left);
        }
    }
    let outcome = Outcome {
        plan,
        dry_run: opts.dry_run,
        kept_manifests: marked.kept,
        marked_blobs: marked.blobs.len(),
        warnings,
        kept_whole: marked.kept_whole,
        left_fresh,
        requests: store.requests(),
    };
    std::thread::spawn(move || drop((catalog, marked.blobs)));
    Ok(outcome)
}

/// The plan without what the sweep left.
fn without(plan: Plan, left: &sweep::Left) -> Plan {
    fn keep<T>(v: Vec<T>, left: &std::collections::HashSet<usize>) -> Vec<T> {
        v.into_iter()
            .enumerate()
            .filter(|(i, _)| !left.contains(i))
            .map(|(_, x)| x)
            .collect()
    }
    Plan {
        manifests: keep(plan.manifests, &left.manifests),
        layer_links: keep(plan.layer_links, &left.layer_links),
        blobs: keep(plan.blobs, &left.blobs),
        uploads: plan.uploads,
        leftovers: plan.leftovers,
        unreadable: plan.unreadable,
    }
}
