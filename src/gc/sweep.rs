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
use crate::store::Store;

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
/// keep for a manifest that is left). On a filesystem each entry goes with
/// its folder; in an object store (no folders) the files of each phase go
/// in batches of 1000 keys, in the same order.
pub fn apply(
    plan: &Plan,
    store: &Store,
    fresh: &Fresh,
    needs: &(dyn Fn(&str, &Digest) -> Vec<Digest> + Sync),
    progress: &Progress,
) -> Result<Left> {
    let folders = store.has_folders();
    let mut left = Left::default();
    let mut keep: HashSet<Digest> = HashSet::new();
    // Tag index entries, then revision links.
    let mut batch: Vec<Spec> = Vec::new();
    let mut revisions: Vec<Spec> = Vec::new();
    for (i, m) in plan.manifests.iter().enumerate() {
        interrupt::check()?;
        let (repo, d) = (m.repository.as_str(), &m.digest);
        if fresh.is(&Spec::RevisionLink(repo, d)) {
            left.manifests.insert(i);
            keep.extend(needs(repo, d));
            continue;
        }
        if folders {
            for tag in &m.tags {
                store.remove_tree(&Spec::TagIndexDir(repo, tag, d))?;
            }
            store.remove_tree(&Spec::RevisionDir(repo, d))?;
            progress.inc(1);
        } else {
            batch.extend(m.tags.iter().map(|t| Spec::TagIndexLink(repo, t, d)));
            revisions.push(Spec::RevisionLink(repo, d));
        }
    }
    if !folders {
        store.remove_files(&batch)?;
        store.remove_files(&revisions)?;
        progress.inc(revisions.len() as u64);
    }
    let fresh_links: Vec<usize> = plan
        .layer_links
        .par_iter()
        .enumerate()
        .filter(|(_, l)| {
            keep.contains(&l.digest) || fresh.is(&Spec::LayerLink(&l.repository, &l.digest))
        })
        .map(|(i, _)| i)
        .collect();
    left.layer_links = fresh_links.into_iter().collect();
    let links: Vec<(usize, &crate::gc::LayerLinkDel)> = plan
        .layer_links
        .iter()
        .enumerate()
        .filter(|(i, _)| !left.layer_links.contains(i))
        .collect();
    if folders {
        links.par_iter().try_for_each(|(_, l)| {
            interrupt::check()?;
            store.remove_file(&Spec::LayerLink(&l.repository, &l.digest))?;
            store.remove_tree(&Spec::LayerDir(&l.repository, &l.digest))?;
            progress.inc(1);
            Ok::<_, crate::Error>(())
        })?;
    } else {
        interrupt::check()?;
        let specs: Vec<Spec> = links
            .iter()
            .map(|(_, l)| Spec::LayerLink(&l.repository, &l.digest))
            .collect();
        store.remove_files(&specs)?;
        progress.inc(specs.len() as u64);
    }
    keep.extend(
        left.layer_links
            .iter()
            .map(|&i| plan.layer_links[i].digest.clone()),
    );
    let left_blobs = Mutex::new(HashSet::new());
    let gone: Vec<&Digest> = plan
        .blobs
        .par_iter()
        .enumerate()
        .filter_map(|(i, b)| {
            if keep.contains(&b.digest) || fresh.is(&Spec::BlobData(&b.digest)) {
                left_blobs.lock().expect("not poisoned").insert(i);
                return None;
            }
            Some(&b.digest)
        })
        .collect();
    left.blobs = left_blobs.into_inner().expect("not poisoned");
    if folders {
        gone.par_iter().try_for_each(|d| {
            interrupt::check()?;
            store.remove_file(&Spec::BlobData(d))?;
            store.remove_empty_dir(&Spec::BlobDir(d))?;
            progress.inc(1);
            Ok::<_, crate::Error>(())
        })?;
        // Each emptied prefix folder, once.
        let mut prefixes: BTreeSet<(&str, &str)> = BTreeSet::new();
        for d in &gone {
            if prefixes.insert((d.algorithm().name(), &d.hex()[..2])) {
                store.remove_empty_dir(&Spec::BlobPrefix(d))?;
            }
        }
    } else {
        interrupt::check()?;
        let specs: Vec<Spec> = gone.iter().map(|d| Spec::BlobData(d)).collect();
        store.remove_files(&specs)?;
        progress.inc(specs.len() as u64);
    }
    for u in &plan.uploads {
        interrupt::check()?;
        crate::gc::uploads::purge(store, u)?;
        progress.inc(1);
    }
    Ok(left)
}
