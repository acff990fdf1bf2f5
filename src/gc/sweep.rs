//! The sweep, ordered so that a crash or Ctrl-C at any point leaves a tree
//! the registry serves: links go before the blobs they name (tag index
//! entries, then revision links, then `_layers` links), a blob's `data`
//! before its folder, and nothing a kept manifest needs is touched. Right
//! before each removal the file is looked at again: one written since gc
//! started is left, with what it needs.

use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::digest::Digest;
use crate::error::Result;
use crate::gc::{Fresh, Plan};
use crate::interrupt;
use crate::paths::Spec;
use crate::progress::Progress;
use crate::store_write::TreeWriter;

/// What the sweep left because it was written since gc started: indices
/// into the plan's lists.
#[derive(Debug, Default)]
pub struct Left {
    pub manifests: HashSet<usize>,
    pub layer_links: HashSet<usize>,
    pub blobs: HashSet<usize>,
}

impl Left {
    pub fn is_empty(&self) -> bool {
        self.manifests.is_empty() && self.layer_links.is_empty() && self.blobs.is_empty()
    }
}

/// Removes everything the plan names but what was written since gc
/// started; `needs(repo, digest)` gives every blob a manifest needs (to
/// keep for a manifest that is left).
pub fn apply(
    plan: &Plan,
    w: &TreeWriter,
    fresh: &Fresh,
    needs: &(dyn Fn(&str, &Digest) -> Vec<Digest> + Sync),
    progress: &Progress,
) -> Result<Left> {
    let mut left = Left::default();
    let mut keep: HashSet<Digest> = HashSet::new();
    for (i, m) in plan.manifests.iter().enumerate() {
        interrupt::check()?;
        let (repo, d) = (m.repository.as_str(), &m.digest);
        if fresh.is(&Spec::RevisionLink(repo, d)) {
            left.manifests.insert(i);
            keep.extend(needs(repo, d));
            continue;
        }
        for tag in &m.tags {
            w.remove_tree(&Spec::TagIndexDir(repo, tag, d))?;
        }
        w.remove_tree(&Spec::RevisionDir(repo, d))?;
        progress.inc(1);
    }
    let left_links = Mutex::new(HashSet::new());
    plan.layer_links
        .par_iter()
        .enumerate()
        .try_for_each(|(i, l)| {
            interrupt::check()?;
            let link = Spec::LayerLink(&l.repository, &l.digest);
            if keep.contains(&l.digest) || fresh.is(&link) {
                left_links.lock().expect("not poisoned").insert(i);
                return Ok(());
            }
            w.remove_file(&link)?;
            w.remove_tree(&Spec::LayerDir(&l.repository, &l.digest))?;
            progress.inc(1);
            Ok::<_, crate::Error>(())
        })?;
    left.layer_links = left_links.into_inner().expect("not poisoned");
    keep.extend(
        left.layer_links
            .iter()
            .map(|&i| plan.layer_links[i].digest.clone()),
    );
    let left_blobs = Mutex::new(HashSet::new());
    plan.blobs.par_iter().enumerate().try_for_each(|(i, b)| {
        interrupt::check()?;
        let data = Spec::BlobData(&b.digest);
        if keep.contains(&b.digest) || fresh.is(&data) {
            left_blobs.lock().expect("not poisoned").insert(i);
            return Ok(());
        }
        w.remove_file(&data)?;
        w.remove_empty_dir(&Spec::BlobDir(&b.digest))?;
        progress.inc(1);
        Ok::<_, crate::Error>(())
    })?;
    left.blobs = left_blobs.into_inner().expect("not poisoned");
    // Each emptied prefix folder, once.
    let mut prefixes: BTreeSet<(&str, &str)> = BTreeSet::new();
    for b in &plan.blobs {
        if prefixes.insert((b.digest.algorithm().name(), &b.digest.hex()[..2])) {
            w.remove_empty_dir(&Spec::BlobPrefix(&b.digest))?;
        }
    }
    for u in &plan.uploads {
        interrupt::check()?;
        w.remove_tree(&Spec::Upload(&u.repository, &u.id))?;
        progress.inc(1);
    }
    Ok(left)
}
