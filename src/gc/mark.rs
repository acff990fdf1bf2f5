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
//!
//! Damage is worked around, not given up on: a repository with a tag link
//! or a kept manifest that cannot be read (so the blobs it needs are
//! unknown) is kept whole — every revision, every blob its revision and
//! `_layers` links name — and the rest of the tree is collected as usual.
//! A revision written since gc started (a push in progress) is kept with
//! everything it needs.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rayon::prelude::*;

use crate::catalog::{Catalog, Node, Repository};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::graph;
use crate::paths::Spec;

/// A repository kept whole, and why.
#[derive(Debug)]
pub struct KeptWhole {
    pub repository: String,
    /// What could not be read, each with its path.
    pub reasons: Vec<Error>,
}

/// What the mark found.
#[derive(Debug, Default)]
pub struct Marked {
    /// Every blob (manifests included) a kept manifest needs.
    pub blobs: HashSet<Digest>,
    /// Manifests kept, per repository.
    pub kept: usize,
    /// Revisions no tag reaches, to remove with `--delete-untagged`.
    pub untagged: Vec<(String, Digest)>,
    /// Damage that changes nothing gc does (a revision whose blob is
    /// missing: it needs nothing).
    pub warnings: Vec<Error>,
    /// Repositories kept whole because of damage, sorted by name.
    pub kept_whole: Vec<KeptWhole>,
}

impl Marked {
    /// Whether `repo` is kept whole (none of its links may go).
    pub fn is_whole(&self, repo: &str) -> bool {
        self.kept_whole.iter().any(|k| k.repository == repo)
    }
}

/// Marks every repository of the catalog (walked with `revisions`).
/// `fresh(repo, digest)` says whether a revision link was written since gc
/// started; such a revision is kept even if no tag reaches it.
pub fn mark(
    catalog: &Catalog,
    delete_untagged: bool,
    fresh: &(dyn Fn(&str, &Digest) -> bool + Sync),
) -> Result<Marked> {
    let repos: Vec<&Repository> = catalog.repos.values().collect();
    let per_repo: Vec<Marked> = repos
        .par_iter()
        .map(|r| mark_repo(catalog, r, delete_untagged, fresh))
        .collect::<Result<_>>()?;
    let mut all = Marked::default();
    for m in per_repo {
        all.blobs.extend(m.blobs);
        all.kept += m.kept;
        all.untagged.extend(m.untagged);
        all.warnings.extend(m.warnings);
        all.kept_whole.extend(m.kept_whole);
    }
    Ok(all)
}

/// One repository's mark.
struct RepoMark<'a> {
    catalog: &'a Catalog,
    name: &'a str,
    /// subject → the revisions that refer to it (OCI referrers).
    referrers: HashMap<Digest, Vec<Digest>>,
    kept: HashSet<Digest>,
    out: Marked,
    /// Why the repository must be kept whole.
    reasons: Vec<Error>,
}

impl RepoMark<'_> {
    /// Keeps `roots` and everything they need.
    fn keep(&mut self, roots: Vec<Digest>) {
        let mut roots = roots;
        while let Some(d) = roots.pop() {
            if self.kept.contains(&d) {
                continue;
            }
            let mut walk = MarkWalk {
                mark: self,
                referrers: Vec::new(),
            };
            let result = graph::walk(&d, &mut walk);
            roots.extend(walk.referrers);
            if let Err(e) = result {
                let image = format!("{}@{d}", self.name);
                self.reasons.push(e.in_image(image));
            }
        }
    }
}

/// Marks one root's graph: each manifest kept once, its blobs marked, its
/// referrers queued as roots of their own.
struct MarkWalk<'a, 'b> {
    mark: &'a mut RepoMark<'b>,
    referrers: Vec<Digest>,
}

impl graph::Visitor for MarkWalk<'_, '_> {
    fn manifest(&mut self, step: &graph::Step) -> Result<Option<Arc<Node>>> {
        let m = &mut *self.mark;
        let d = step.digest;
        if !m.kept.insert(d.clone()) {
            return Ok(None);
        }
        m.out.blobs.insert(d.clone());
        self.referrers
            .extend(m.referrers.get(d).into_iter().flatten().cloned());
        match m.catalog.node(d, &step.what) {
            Ok(n) => Ok(Some(n)),
            // Nothing to keep for a manifest whose blob is gone.
            Err(e) if matches!(e.root(), Error::MissingBlob { .. }) => {
                m.out.warnings.push(e.in_image(format!("{}@{d}", m.name)));
                Ok(None)
            }
            // What it needs is unknown.
            Err(e) => Err(e),
        }
    }

    fn blob(&mut self, _step: &graph::Step, blob: &graph::BlobRef) -> Result<()> {
        let m = &mut *self.mark;
        let d = &blob.descriptor.digest;
        // A blob named by its sha512 is stored as its sha256: keep that.
        let stored = m.catalog.stored_as(m.name, d)?;
        if &stored != d {
            m.out.blobs.insert(stored);
        }
        m.out.blobs.insert(d.clone());
        Ok(())
    }
}

fn mark_repo(
    catalog: &Catalog,
    repo: &Repository,
    delete_untagged: bool,
    fresh: &(dyn Fn(&str, &Digest) -> bool + Sync),
) -> Result<Marked> {
    let name = repo.name.as_str();
    let mut out = Marked::default();
    let mut reasons = Vec::new();
    // A revision is a folder with a link file, as the registry enumerates
    // them. A link that does not parse still names its manifest by its
    // folder: keep it rather than guess.
    let mut revisions: Vec<Digest> = Vec::new();
    let mut roots: Vec<Digest> = Vec::new();
    // In a bucket the listing named every revision link, and each of the
    // size of a link to its folder's digest is taken to hold it: only odd
    // ones are read (a request each).
    let digests: Vec<&Digest> = repo
        .revisions
        .iter()
        .filter(|d| !catalog.trusts_link_names || repo.odd_revisions.contains(*d))
        .collect();
    if catalog.trusts_link_names {
        revisions.extend(
            repo.revisions
                .iter()
                .filter(|d| !repo.odd_revisions.contains(*d))
                .cloned(),
        );
    }
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
    for (tag, target) in &repo.tags {
        match target {
            Ok(d) => roots.push(d.clone()),
            // A tag folder without `current`: no tag (distribution skips it).
            Err(e) if matches!(**e, Error::Invalid { .. }) => {}
            // Which manifest the tag keeps is unknown.
            Err(e) => reasons.push(Error::Shared(e.clone()).in_image(format!("{name}:{tag}"))),
        }
    }
    if !delete_untagged {
        roots.extend(revisions.iter().cloned());
    }

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
    let mut m = RepoMark {
        catalog,
        name,
        referrers,
        kept: HashSet::new(),
        out,
        reasons,
    };
    m.keep(roots);
    if delete_untagged && m.reasons.is_empty() {
        // Revisions written since gc started belong to a push in progress.
        let fresh: Vec<Digest> = revisions
            .iter()
            .filter(|d| !m.kept.contains(*d) && fresh(name, d))
            .cloned()
            .collect();
        m.keep(fresh);
    }
    if !m.reasons.is_empty() {
        keep_whole(&mut m, &revisions, repo);
    }
    let RepoMark {
        kept,
        mut out,
        reasons,
        ..
    } = m;
    out.kept = kept.len();
    if !reasons.is_empty() {
        out.kept_whole.push(KeptWhole {
            repository: name.to_string(),
            reasons,
        });
    } else if delete_untagged {
        out.untagged = revisions
            .into_iter()
            .filter(|d| !kept.contains(d))
            .map(|d| (name.to_string(), d))
            .collect();
    }
    Ok(out)
}

/// Keeps every revision of a damaged repository with what it needs, and
/// every blob its `_layers` links name (by folder and by content).
fn keep_whole(m: &mut RepoMark, revisions: &[Digest], repo: &Repository) {
    m.keep(revisions.to_vec());
    m.out.blobs.extend(revisions.iter().cloned());
    let name = repo.name.as_str();
    let layers: Vec<&Digest> = repo.layers.iter().collect();
    let specs: Vec<Spec> = layers.iter().map(|d| Spec::LayerLink(name, d)).collect();
    let read = m
        .catalog
        .store
        .read_links_in(&Spec::LayersRoot(name), &specs);
    for (d, link) in layers.into_iter().zip(read) {
        m.out.blobs.insert(d.clone());
        if let Ok(Some(t)) = link {
            m.out.blobs.insert(t);
        }
    }
}

/// Every manifest and blob the manifest `digest` of `repo` needs (itself
/// included, blobs also as stored), as far as the catalog can read them.
pub fn needs(catalog: &Catalog, repo: &str, digest: &Digest) -> Vec<Digest> {
    struct Needs<'a> {
        catalog: &'a Catalog,
        repo: &'a str,
        out: Vec<Digest>,
    }
    impl graph::Visitor for Needs<'_> {
        fn manifest(&mut self, step: &graph::Step) -> Result<Option<Arc<Node>>> {
            self.out.push(step.digest.clone());
            Ok(self.catalog.node(step.digest, &step.what).ok())
        }
        fn blob(&mut self, _: &graph::Step, blob: &graph::BlobRef) -> Result<()> {
            let d = &blob.descriptor.digest;
            if let Ok(stored) = self.catalog.stored_as(self.repo, d) {
                self.out.push(stored);
            }
            self.out.push(d.clone());
            Ok(())
        }
    }
    let mut v = Needs {
        catalog,
        repo,
        out: Vec::new(),
    };
    let _ = graph::walk(digest, &mut v);
    v.out
}
