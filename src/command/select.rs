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
    let (store, selection) = open_and_select(root, &super::checked_on_write(req, opts))?;
    let plan = layout::registry::plan(&selection)?;
    let target = StorageTarget::of(out, Some(opts.force))?;
    if opts.dry_run {
        return Ok(Outcome {
            selection,
            plan,
            report: None,
        });
    }
    let progress = plan_progress(&plan, "selecting", opts);
    let report = target
        .write(&plan, &store, out, opts.force, &progress)
        .map_err(|e| super::with_image(e, &selection))?;
    progress.finish();
    Ok(Outcome {
        selection,
        plan,
        report: Some(report),
    })
}
