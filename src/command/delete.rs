//! `delete`: remove tags (and with `--manifest`, revisions) offline, as the
//! registry's API does: a tag delete removes the tag's folder; a manifest
//! delete removes the revision link and every tag whose `current` link
//! names it. Blobs stay until `gc`.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

use crate::catalog::{Catalog, WalkOptions};
use crate::digest::Digest;
use crate::error::Result;
use crate::lock::Lock;
use crate::paths::Spec;
use crate::reference::ImageRef;
use crate::selection;
use crate::store::Store;

/// What delete removed (or, for a dry run, would remove).
#[derive(Debug, Default, Serialize)]
pub struct Deleted {
    pub dry_run: bool,
    /// `(repository, tag)`: tag folders.
    pub tags: BTreeSet<(String, String)>,
    /// `(repository, digest)`: revision links.
    pub manifests: BTreeSet<(String, Digest)>,
}

pub fn run(root: &Path, refs: &[ImageRef], manifest: bool, dry_run: bool) -> Result<Deleted> {
    let store = Store::open(root)?;
    // Held from before the walk to the last removal: gc waits for it.
    let _lock = (!dry_run).then(|| Lock::shared(&store)).transpose()?;
    let catalog = Catalog::load(&store, WalkOptions::default())?;
    let mut out = Deleted {
        dry_run,
        ..Deleted::default()
    };
    for r in refs {
        // A tag whose link is broken can still be removed.
        if let (Some(tag), None, false) = (&r.tag, &r.digest, manifest) {
            if let Some(repo) = selection::find_repo(&catalog, r) {
                if repo.tags.contains_key(tag) {
                    out.tags.insert((repo.name.clone(), tag.clone()));
                    continue;
                }
            }
        }
        for (repo, tag, digest) in selection::expand(&catalog, r)? {
            if manifest || tag.is_none() {
                out.manifests.insert((repo.clone(), digest.clone()));
                // The registry removes every tag naming the manifest.
                for (t, target) in &catalog.repos[&repo].tags {
                    if target.as_ref().is_ok_and(|d| *d == digest) {
                        out.tags.insert((repo.clone(), t.clone()));
                    }
                }
            } else if let Some(t) = tag {
                out.tags.insert((repo, t));
            }
        }
    }
    if dry_run {
        return Ok(out);
    }
    // Tags first, so that no tag ever names a manifest without its revision.
    for (repo, tag) in &out.tags {
        crate::interrupt::check()?;
        store.remove_tree(&Spec::Tag(repo, tag))?;
    }
    for (repo, d) in &out.manifests {
        crate::interrupt::check()?;
        store.remove_tree(&Spec::RevisionDir(repo, d))?;
    }
    Ok(out)
}
