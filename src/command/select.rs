//! `select`: a new (or grown) registry storage tree holding exactly the
//! selected images, by hardlinks.

use std::path::Path;

use crate::command::{open_and_select, plan_progress, Outcome, WriteOptions};
use crate::error::{Error, Result};
use crate::layout;
use crate::selection::Request;
use crate::sink;
use crate::store::Store;

/// Writes the registry tree of the requested images at `out`. A missing or
/// empty `out` is built aside and renamed into place; an existing storage
/// tree is added to, refusing any file that differs.
pub fn run(root: &Path, out: &Path, req: &Request, opts: &WriteOptions) -> Result<Outcome> {
    let (store, selection) = open_and_select(root, req)?;
    let plan = layout::registry::plan(&selection)?;
    let target = Target::of(out, opts.force)?;
    if opts.dry_run {
        return Ok(Outcome {
            selection,
            plan,
            report: None,
        });
    }
    let progress = plan_progress(&plan, "selecting", opts);
    let report = match target {
        Target::New => sink::fs::write_new(&plan, &store, out, opts.force, &progress),
        Target::Merge => sink::fs::merge_into(&plan, &store, out, &progress),
    }
    .map_err(|e| super::with_image(e, &selection))?;
    progress.finish();
    Ok(Outcome {
        selection,
        plan,
        report: Some(report),
    })
}

enum Target {
    New,
    Merge,
}

impl Target {
    fn of(out: &Path, force: bool) -> Result<Target> {
        if out.symlink_metadata().is_err() {
            return Ok(Target::New);
        }
        let empty = out
            .read_dir()
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if empty || out.join(crate::paths::V2_PREFIX).is_dir() {
            return Ok(Target::Merge);
        }
        if Store::open(out).is_ok() {
            return Err(Error::Invalid {
                message: "this is inside or above a storage tree; name its root directory (the folder holding docker/registry/v2)".into(),
                path: Some(out.into()),
            });
        }
        if force {
            return Ok(Target::New);
        }
        Err(Error::Invalid {
            message:
                "the output exists and is not a registry storage tree (use --force to replace it)"
                    .into(),
            path: Some(out.into()),
        })
    }
}
