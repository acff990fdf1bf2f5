//! Applying a plan to a folder.
//!
//! A new output is built in a hidden sibling (`.OUT.regkit-tmp-<pid>`) and
//! renamed into place at the end, so a failure, a full disk or Ctrl-C leaves
//! no half-written OUT. Merging into an existing tree first checks every
//! file that already exists (a file that differs is an error naming both,
//! and nothing is written), then writes the missing files phase by phase,
//! each to a temporary name renamed into place: blobs before the links that
//! reach them, tags last.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::digest::{self, Digest};
use crate::error::{Error, Result};
use crate::interrupt;
use crate::plan::{describe, FileEntry, Plan, Source};
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
    let result =
        write_all(plan, store, &staging, &placer, progress).and_then(|()| swap_in(&staging, out));
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&staging);
        return Err(e);
    }
    Ok(Report {
        counts: placer.counts(),
        existing: 0,
    })
}

/// Renames the finished staging folder to `out`, replacing an old `out`.
fn swap_in(staging: &Path, out: &Path) -> Result<()> {
    if out.symlink_metadata().is_ok() {
        let old = sibling(out, "regkit-old");
        fs::rename(out, &old).map_err(|e| Error::io("move the old output aside", out, e))?;
        fs::rename(staging, out).map_err(|e| Error::io("rename the output into place", out, e))?;
        fs::remove_dir_all(&old).map_err(|e| Error::io("remove the old output", &old, e))
    } else {
        fs::rename(staging, out).map_err(|e| Error::io("rename the output into place", out, e))
    }
}

/// A hidden sibling of `path`: `.<name>.<tag>-<pid>`.
pub fn sibling(path: &Path, tag: &str) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(path.file_name().unwrap_or_else(|| "out".as_ref()));
    name.push(format!(".{tag}-{}", std::process::id()));
    path.with_file_name(name)
}

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
        Source::Blob(d) => placer.place_blob(store, d, dst).map(|_| ()),
        Source::Bytes(b) => placer.write_bytes(b, dst),
        Source::File { path, digest } => placer.place_file(path, dst, digest).map(|_| ()),
    }
}

/// Adds `plan` to the existing folder `out` (created if missing).
pub fn merge_into(plan: &Plan, store: &Store, out: &Path, progress: &Progress) -> Result<Report> {
    // Check everything before writing anything.
    let states: Vec<(&String, &FileEntry, bool)> = plan
        .files
        .par_iter()
        .map(|(rel, entry)| {
            let present = check_existing(store, entry, &out.join(rel))?;
            Ok((rel, entry, present))
        })
        .collect::<Result<_>>()?;
    let existing = states.iter().filter(|s| s.2).count() as u64;
    progress.inc(existing);
    let missing: Plan = Plan {
        dirs: plan.dirs.clone(),
        files: states
            .into_iter()
            .filter(|s| !s.2)
            .map(|(rel, entry, _)| (rel.clone(), entry.clone()))
            .collect(),
    };
    fs::create_dir_all(out).map_err(|e| Error::io("create folder", out, e))?;
    create_dirs(out, missing.dirs_by_depth())?;
    let placer = Placer::new();
    for (_, files) in missing.phases() {
        files.par_iter().try_for_each(|(rel, entry)| {
            interrupt::check()?;
            let dst = out.join(rel);
            let tmp = sibling(&dst, "regkit-tmp");
            let _ = fs::remove_file(&tmp);
            let r = place(store, &placer, entry, &tmp).and_then(|()| {
                fs::rename(&tmp, &dst).map_err(|e| Error::io("rename into place", &dst, e))
            });
            if r.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            progress.inc(1);
            r
        })?;
    }
    Ok(Report {
        counts: placer.counts(),
        existing,
    })
}

/// Whether `dst` already holds what `entry` wants; an error if it holds
/// something else.
fn check_existing(store: &Store, entry: &FileEntry, dst: &Path) -> Result<bool> {
    let meta = match dst.symlink_metadata() {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io("stat", dst, e)),
    };
    let conflict = |existing: String| Error::Conflict {
        path: dst.into(),
        existing,
        wanted: describe(&entry.source),
    };
    if !meta.is_file() {
        return Err(conflict("something that is not a regular file".into()));
    }
    match &entry.source {
        Source::Bytes(want) => {
            let have = fs::read(dst).map_err(|e| Error::io("read", dst, e))?;
            if have[..] == want[..] {
                Ok(true)
            } else {
                Err(conflict(describe(&Source::Bytes(have.into()))))
            }
        }
        Source::Blob(d) | Source::File { digest: d, .. } => {
            let src = match &entry.source {
                Source::File { path, .. } => Some(path.clone()),
                _ => store.blob_local_path(d),
            };
            let same_inode = src
                .and_then(|p| p.metadata().ok())
                .is_some_and(|s| s.dev() == meta.dev() && s.ino() == meta.ino());
            if same_inode {
                return Ok(true);
            }
            if meta.len() != entry.size {
                return Err(conflict(format!(
                    "{} bytes, not {}",
                    meta.len(),
                    entry.size
                )));
            }
            let actual = hash_file(dst, d)?;
            if actual == *d {
                Ok(true)
            } else {
                Err(conflict(format!("blob {actual}")))
            }
        }
    }
}

fn hash_file(path: &Path, like: &Digest) -> Result<Digest> {
    let f = fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    digest::hash_reader(like.algorithm(), f)
        .map(|(d, _)| d)
        .map_err(|e| Error::io("read", path, e))
}
