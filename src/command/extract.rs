//! `extract`: images to containers/image `dir:` folders, by hardlinks.

use std::path::Path;

use crate::command::{open_and_select, plan_progress, Outcome, WriteOptions};
use crate::error::Result;
use crate::layout;
use crate::selection::Request;
use crate::sink;

/// Extracts the requested images to `out/<repo>:<tag>/`.
pub fn run(root: &Path, out: &Path, req: &Request, opts: &WriteOptions) -> Result<Outcome> {
    super::refuse_overlap(root, &[(out, "the output")])?;
    let (store, selection) = open_and_select(root, &super::checked_on_write(req, opts))?;
    let plan = layout::dir::plan(&selection)?;
    if opts.dry_run {
        if out.symlink_metadata().is_ok() && !opts.force {
            return Err(crate::Error::OutputExists { path: out.into() });
        }
        return Ok(Outcome {
            selection,
            plan,
            report: None,
        });
    }
    let progress = plan_progress(&plan, "extracting", opts);
    let report = sink::fs::write_new(&plan, &store, out, opts.force, &progress)
        .map_err(|e| super::with_image(e, &selection))?;
    progress.finish();
    Ok(Outcome {
        selection,
        plan,
        report: Some(report),
    })
}
