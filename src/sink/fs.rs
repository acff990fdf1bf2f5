//! Applying a plan to a new folder.
//!
//! A new output is built in a hidden sibling (`.OUT.regkit-tmp-<pid>`) and
//! put in place in one step at the end ([`crate::atomic::commit`]), so a
//! failure, a full disk or Ctrl-C leaves no half-written OUT, and an OUT
//! that appeared meanwhile is left alone. (Merging into an existing storage
//! tree goes through its store: [`crate::sink::store`].)

use std::fs;
use std::path::Path;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::interrupt;
use crate::plan::{FileEntry, Plan, Source};
use crate::progress::Progress;
use crate::sink::place::{Counts, Placer};
use crate::store::Store;

/// What writing a plan did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub counts: Counts,
    /// Files that were already present with the right content (merge).
    pub existing: u64,
}

/// Writes `plan` as a new folder `out`. An existing `out` is refused unless
/// `force`, in which case it is replaced only once the new one is complete.
pub fn write_new(
    plan: &Plan,
    store: &Store,
    out: &Path,
    force: bool,
    progress: &Progress,
) -> Result<Report> {
    if out.symlink_metadata().is_ok() && !force {
        return Err(Error::OutputExists { path: out.into() });
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| Error::io("create folder", parent, e))?;
    }
    let staging = sibling(out, "regkit-tmp");
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir(&staging).map_err(|e| Error::io("create staging folder", &staging, e))?;
    let placer = Placer::new();
    let result = write_all(plan, store, &staging, &placer, progress)
        .and_then(|()| crate::atomic::commit(&staging, out, force));
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&staging);
        return Err(e);
    }
    Ok(Report {
        counts: placer.counts(),
        existing: 0,
    })
}

pub use crate::atomic::sibling;

fn write_all(
    plan: &Plan,
    store: &Store,
    root: &Path,
    placer: &Placer,
    progress: &Progress,
) -> Result<()> {
    create_dirs(root, plan.dirs_by_depth())?;
    for (_, files) in plan.phases() {
        // One folder per task: threads writing into the same folder contend
        // for its lock, so each folder's files are written by one thread.
        by_folder(&files).par_iter().try_for_each(|group| {
            for (rel, entry) in *group {
                interrupt::check()?;
                place(store, placer, entry, &root.join(rel))?;
                progress.inc(1);
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// Splits files sorted by path into runs that share a parent folder.
fn by_folder<'a, T>(files: &'a [(&'a String, T)]) -> Vec<&'a [(&'a String, T)]> {
    let parent = |p: &str| p.rsplit_once('/').map_or("", |(d, _)| d).len();
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=files.len() {
        let boundary = i == files.len() || {
            let (a, b) = (files[start].0, files[i].0);
            let (la, lb) = (parent(a), parent(b));
            la != lb || a[..la] != b[..lb]
        };
        if boundary {
            out.push(&files[start..i]);
            start = i;
        }
    }
    out
}

/// Creates folders level by level, each level in parallel.
fn create_dirs(root: &Path, levels: Vec<Vec<&str>>) -> Result<()> {
    for level in levels {
        level.par_iter().try_for_each(|d| {
            let path = root.join(d);
            match fs::create_dir(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                    Err(Error::io("create folder", &path, e))
                }
                _ => Ok(()),
            }
        })?;
    }
    Ok(())
}

fn place(store: &Store, placer: &Placer, entry: &FileEntry, dst: &Path) -> Result<()> {
    match &entry.source {
        Source::Blob(d) => placer.place_blob(store, d, entry.size, dst).map(|_| ()),
        Source::Bytes(b) => placer.write_bytes(b, dst),
        Source::File { path, digest } => placer.place_file(path, dst, digest).map(|_| ()),
    }
}
