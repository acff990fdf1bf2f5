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
    let (store, mut selection) = open_and_select(root, &super::checked_on_write(req, opts))?;
    if opts.dry_run {
        let plan = layout::dir::plan(&selection)?;
        if out.symlink_metadata().is_ok() && !opts.force {
            return Err(crate::Error::OutputExists { path: out.into() });
        }
        return Ok(Outcome {
            selection,
            plan,
            report: None,
        });
    }
    let (plan, report) =
        super::write_keeping_going(&mut selection, req.keep_going, layout::dir::plan, |plan| {
            let progress = plan_progress(plan, "extracting", opts);
            let r = sink::fs::write_new(plan, &store, out, opts.force, &progress)?;
            progress.finish();
            Ok(r)
        })?;
    Ok(Outcome {
        selection,
        plan,
        report: Some(report),
    })
}
