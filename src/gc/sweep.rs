//! The sweep, ordered so that a crash or Ctrl-C at any point leaves a tree
//! the registry serves: links go before the blobs they name (tag index
//! entries, then revision links, then `_layers` links), a blob's `data`
//! before its folder, and nothing a kept manifest needs is touched.

use std::collections::BTreeSet;

use rayon::prelude::*;

use crate::error::Result;
use crate::gc::Plan;
use crate::interrupt;
use crate::paths::Spec;
use crate::progress::Progress;
use crate::store_write::TreeWriter;

/// Removes everything the plan names.
pub fn apply(plan: &Plan, w: &TreeWriter, progress: &Progress) -> Result<()> {
    for m in &plan.manifests {
        interrupt::check()?;
        let (repo, d) = (m.repository.as_str(), &m.digest);
        for tag in &m.tags {
            w.remove_tree(&Spec::TagIndexDir(repo, tag, d))?;
        }
        w.remove_tree(&Spec::RevisionDir(repo, d))?;
        progress.inc(1);
    }
    plan.layer_links.par_iter().try_for_each(|l| {
        interrupt::check()?;
        w.remove_file(&Spec::LayerLink(&l.repository, &l.digest))?;
        w.remove_tree(&Spec::LayerDir(&l.repository, &l.digest))?;
        progress.inc(1);
        Ok::<_, crate::Error>(())
    })?;
    plan.blobs.par_iter().try_for_each(|b| {
        interrupt::check()?;
        w.remove_file(&Spec::BlobData(&b.digest))?;
        w.remove_empty_dir(&Spec::BlobDir(&b.digest))?;
        progress.inc(1);
        Ok::<_, crate::Error>(())
    })?;
    let prefixes: BTreeSet<&str> = plan
        .blobs
        .iter()
        .filter(|b| b.digest.algorithm() == crate::digest::Algorithm::Sha256)
        .map(|b| &b.digest.hex()[..2])
        .collect();
    for p in prefixes {
        w.remove_empty_dir(&Spec::BlobPrefix(p))?;
    }
    for u in &plan.uploads {
        interrupt::check()?;
        w.remove_tree(&Spec::Upload(&u.repository, &u.id))?;
        progress.inc(1);
    }
    Ok(())
}
