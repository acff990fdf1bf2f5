//! `select`: a new (or grown) registry storage tree holding exactly the
//! selected images, by hardlinks.

use std::path::Path;

use crate::command::{open_and_select, plan_progress, Outcome, StorageTarget, WriteOptions};
use crate::error::Result;
use crate::layout;
use crate::selection::Request;

/// Writes the registry tree of the requested images at `out`. A missing or
/// empty `out` is built aside and renamed into place; an existing storage
/// tree is added to, refusing any file that differs.
pub fn run(root: &Path, out: &Path, req: &Request, opts: &WriteOptions) -> Result<Outcome> {
    super::refuse_overlap(root, &[(out, "the output")])?;
    let target = StorageTarget::of(out, Some(opts.force))?;
    // A new tree's sink checks each blob's size as it links it; a merge
    // does not, so its blobs are looked up while choosing.
    let req = match target {
        StorageTarget::New => super::checked_on_write(req, opts),
        StorageTarget::Merge => req.clone(),
    };
    let (store, mut selection) = open_and_select(root, &req)?;
    if opts.dry_run {
        let plan = layout::registry::plan(&selection)?;
        return Ok(Outcome {
            selection,
            plan,
            report: None,
        });
    }
    let (plan, report) = super::write_keeping_going(
        &mut selection,
        req.keep_going,
        layout::registry::plan,
        |plan| {
            let progress = plan_progress(plan, "selecting", opts);
            let r = target.write(plan, &store, out, opts.force, &progress)?;
            progress.finish();
            Ok(r)
        },
    )?;
    Ok(Outcome {
        selection,
        plan,
        report: Some(report),
    })
}
