//! The mark phase: in each repository, the manifests to keep and every
//! blob they need.
//!
//! Roots are every revision (as `docker-registry garbage-collect` marks
//! them) or, with `--delete-untagged`, only what the tags' `current` links
//! name. From a kept manifest the mark follows index children, configs,
//! layers (schema1 `fsLayers` too) and OCI referrers: a manifest of the
//! same repository whose `subject` is kept is kept. Unlike distribution's
//! collector, children of a kept index and referrers of a kept manifest are
//! never removed (distribution/distribution#3004, #3178).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rayon::prelude::*;

use crate::catalog::{Catalog, Node, Repository};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::paths::Spec;

/// What the mark found.
#[derive(Debug, Default)]
pub struct Marked {
    /// Every blob (manifests included) a kept manifest needs.
    pub blobs: HashSet<Digest>,
    /// Manifests kept, per repository.
    pub kept: usize,
    /// Revisions no tag reaches, to remove with `--delete-untagged`.
    pub untagged: Vec<(String, Digest)>,
    /// Damage that does not stop gc (a revision whose blob is missing).
    pub warnings: Vec<Error>,
    /// Damage that stops gc: a manifest it must keep cannot be read, so the
    /// blobs it needs are unknown.
    pub blockers: Vec<Error>,
}

/// Marks every repository of the catalog (walked with `revisions`).
pub fn mark(catalog: &Catalog, delete_untagged: bool) -> Result<Marked> {
    let repos: Vec<&Repository> = catalog.repos.values().collect();
    let per_repo: Vec<Marked> = repos
        .par_iter()
        .map(|r| mark_repo(catalog, r, delete_untagged))
        .collect::<Result<_>>()?;
    let mut all = Marked::default();
    for m in per_repo {
        all.blobs.extend(m.blobs);
        all.kept += m.kept;
        all.untagged.extend(m.untagged);
        all.warnings.extend(m.warnings);
        all.blockers.extend(m.blockers);
    }
    Ok(all)
}

fn mark_repo(catalog: &Catalog, repo: &Repository, delete_untagged: bool) -> Result<Marked> {
    let name = repo.name.as_str();
    let mut out = Marked::default();
    // A revision is a folder with a link file, as the registry enumerates
    // them. A link that does not parse still names its manifest by its
    // folder: keep it rather than guess.
    let mut revisions: Vec<Digest> = Vec::new();
    let mut roots: Vec<Digest> = Vec::new();
    let digests: Vec<&Digest> = repo.revisions.iter().collect();
    let specs: Vec<Spec> = digests
        .iter()
        .map(|d| Spec::RevisionLink(name, d))
        .collect();
    let read = catalog
        .store
        .read_links_in(&Spec::RevisionsRoot(name), &specs);
    for (d, link) in digests.into_iter().zip(read) {
        match link {
            Ok(None) => {}
            Ok(Some(t)) => {
                if &t != d {
                    // The registry serves the link's target under this name.
                    out.blobs.insert(t);
                }
                revisions.push(d.clone());
            }
            Err(e) => {
                out.warnings.push(e);
                revisions.push(d.clone());
                roots.push(d.clone());
            }
        }
    }
    for target in repo.tags.values() {
        match target {
            Ok(d) => roots.push(d.clone()),
            // A tag folder without `current`: no tag (distribution skips it).
            Err(e) if matches!(**e, Error::Invalid { .. }) => {}
            // Which manifest the tag keeps is unknown: stop, as
            // distribution's collector does with --delete-untagged.
            Err(e) if delete_untagged => out.blockers.push(Error::Shared(e.clone())),
            Err(e) => out.warnings.push(Error::Shared(e.clone())),
        }
    }
    if !delete_untagged {
        roots.extend(revisions.iter().cloned());
    }

    let node =
        |d: &Digest| -> std::result::Result<Arc<Node>, Error> { catalog.node(d, "manifest") };
    // subject → the revisions that refer to it (OCI referrers).
    let mut referrers: HashMap<Digest, Vec<Digest>> = HashMap::new();
    for d in &revisions {
        if let Some(Ok(n)) = catalog.manifests.get(d) {
            if let Some(s) = &n.manifest.subject {
                referrers
                    .entry(s.digest.clone())
                    .or_default()
                    .push(d.clone());
            }
        }
    }

    let mut kept: HashSet<Digest> = HashSet::new();
    while let Some(d) = roots.pop() {
        if !kept.insert(d.clone()) {
            continue;
        }
        out.blobs.insert(d.clone());
        roots.extend(referrers.get(&d).into_iter().flatten().cloned());
        match node(&d) {
            Ok(n) => {
                roots.extend(n.manifest.children.iter().map(|c| c.digest.clone()));
                out.blobs
                    .extend(n.manifest.blobs().map(|b| b.digest.clone()));
            }
            // Nothing to keep for a manifest whose blob is gone.
            Err(e @ Error::MissingBlob { .. }) => {
                out.warnings.push(e.in_image(format!("{name}@{d}")))
            }
            Err(Error::Shared(e)) if matches!(*e, Error::MissingBlob { .. }) => out
                .warnings
                .push(Error::Shared(e).in_image(format!("{name}@{d}"))),
            Err(e) => out.blockers.push(e.in_image(format!("{name}@{d}"))),
        }
    }
    out.kept = kept.len();
    if delete_untagged {
        out.untagged = revisions
            .into_iter()
            .filter(|d| !kept.contains(d))
            .map(|d| (name.to_string(), d))
            .collect();
    }
    Ok(out)
}
