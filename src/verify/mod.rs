//! Integrity of a tree, as the registry needs it to serve images: every
//! blob the images use exists, has its descriptor's size and its name's
//! sha256; every manifest parses; every link parses and points at a blob;
//! every manifest and blob an image needs is linked in its repository.
//!
//! [`walk`] finds what the images use (in memory), [`links`] reads every
//! link file, [`crate::blobs`] hashes each blob once on all cores, and
//! [`findings`] turns the three into findings, each naming its path and
//! every image it breaks; [`check`] runs them.

pub mod findings;
pub mod links;
pub mod walk;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use rayon::prelude::*;

use crate::blobs::{self, Checked};
use crate::catalog::{Catalog, Repository};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::progress::Progress;
use walk::Target;

/// How deep to look.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Hash every blob (off with `--fast`: sizes only).
    pub hash: bool,
    /// Also hash the blobs no tag reaches, and list them.
    pub all_blobs: bool,
    pub quiet: bool,
}

/// Whether a finding is about a blob or a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Blob,
    Link,
}

/// One problem, with every image it breaks (sorted).
#[derive(Debug)]
pub struct Finding {
    pub error: Error,
    pub images: Vec<String>,
}

impl Finding {
    fn new(error: Error, images: impl IntoIterator<Item = impl AsRef<str>>) -> Finding {
        let mut images: Vec<String> = images.into_iter().map(|s| s.as_ref().to_string()).collect();
        images.sort();
        images.dedup();
        Finding { error, images }
    }

    /// A short name for scripts: `missing-blob`, `digest-mismatch`, ...
    pub fn kind(&self) -> &'static str {
        match self.error.root() {
            Error::MissingBlob { .. } => "missing-blob",
            Error::SizeMismatch { .. } => "size-mismatch",
            Error::DigestMismatch { .. } => "digest-mismatch",
            Error::BadManifest { .. } => "bad-manifest",
            Error::BadLink { .. } => "bad-link",
            Error::DanglingLink { .. } => "dangling-link",
            Error::MissingLink { .. } => "missing-link",
            Error::LinkMismatch { .. } => "link-mismatch",
            // A tag folder without its `current` link.
            Error::Invalid { .. } => "missing-link",
            Error::TooDeep { .. } => "too-deep",
            _ => "unreadable",
        }
    }

    pub fn class(&self) -> Class {
        match self.kind() {
            "bad-link" | "dangling-link" | "missing-link" | "link-mismatch" => Class::Link,
            "unreadable" if self.error.path().is_some_and(|p| p.ends_with("link")) => Class::Link,
            _ => Class::Blob,
        }
    }
}

/// A blob no tag reaches.
#[derive(Debug, serde::Serialize)]
pub struct Orphan {
    pub digest: Digest,
    pub size: u64,
    pub path: PathBuf,
}

/// What verify found.
#[derive(Debug, Default)]
pub struct Report {
    pub images: usize,
    pub manifests: usize,
    /// Configs and layers checked.
    pub blobs: usize,
    pub hashed_blobs: usize,
    pub hashed_bytes: u64,
    pub links: usize,
    pub findings: Vec<Finding>,
    /// With `all_blobs`: every blob no tag reaches.
    pub orphans: Option<Vec<Orphan>>,
    /// regkit's own temporaries in the tree (`v2/.regkit-tmp/`): a run
    /// that is writing now, or one that was killed (`stale`; gc removes
    /// those).
    pub leftovers: Vec<crate::store::Leftover>,
    /// Requests sent to the object store (0 on disk).
    pub requests: u64,
}

impl Report {
    pub fn count(&self, class: Class) -> usize {
        self.findings.iter().filter(|f| f.class() == class).count()
    }
}

/// Checks the targets (images) and every link of `repos`.
pub fn check(
    catalog: &Catalog,
    targets: &[Target],
    repos: &[&Repository],
    opts: Options,
) -> Result<Report> {
    let store = &catalog.store;
    let progress = Progress::new(0, "verifying", opts.quiet);
    let hash_wave = |work: Vec<(Digest, bool)>| {
        progress.inc_length(work.len() as u64);
        // In a bucket every blob's size came with one listing: sizing one
        // needs no request.
        let (listed, work): (Vec<_>, Vec<_>) = work
            .into_iter()
            .partition(|(_, hash)| !hash && catalog.listed_blobs().is_some());
        let checked = blobs::check_all(store, &work, &progress);
        let mut out: Vec<_> = work.into_iter().zip(checked).collect();
        out.extend(listed.into_iter().map(|(d, hash)| {
            let c = match catalog.blob_size(&d) {
                Ok(Some(size)) => Checked::Present { size, actual: None },
                Ok(None) => Checked::Missing,
                Err(e) => Checked::Unreadable(Arc::new(e)),
            };
            progress.inc(1);
            ((d, hash), c)
        }));
        out
    };
    // The images' blobs are hashed while the link files are read.
    let ((mut usage, first), links) = rayon::join(
        || {
            let usage = walk::walk(catalog, targets);
            let work = usage
                .blobs
                .keys()
                .filter(|d| !usage.stored.contains_key(*d))
                .map(|d| (d.clone(), opts.hash))
                .collect();
            let mut first = hash_wave(work);
            // Blobs stored under another digest: their stored bytes, hashed
            // as the digest that names them.
            first.par_extend(usage.stored.par_iter().map(|(name, stored)| {
                let c = match opts.hash {
                    true => blobs::check_as(store, name, stored),
                    false => blobs::check(store, stored, false),
                };
                ((name.clone(), opts.hash), c)
            }));
            (usage, first)
        },
        || -> Result<_> {
            let links = links::read(store, repos, !opts.hash)?;
            let listed = if opts.all_blobs {
                blobs::list(store)?
            } else {
                Vec::new()
            };
            Ok((links, listed))
        },
    );
    let (links, listed) = links?;
    crate::interrupt::check()?;

    // Then what is left: with --all-blobs every other blob of the tree
    // (hashed), and the targets of links no image uses (sized). Manifests
    // the catalog read were hashed by it already.
    let known = |d: &Digest| {
        catalog.manifests.contains_key(d)
            || usage.blobs.contains_key(d)
            || usage.manifests.contains_key(d)
    };
    let mut work: Vec<(Digest, bool)> = listed
        .par_iter()
        .filter(|d| !known(d))
        .map(|d| (d.clone(), true))
        .collect();
    let unknown: Vec<&Digest> = links
        .par_iter()
        .filter_map(|l| match &l.target {
            Ok(Some(t)) if !known(t) => Some(t),
            _ => None,
        })
        .collect();
    if !unknown.is_empty() {
        let mut queued: HashSet<Digest> = work.iter().map(|(d, _)| d.clone()).collect();
        for t in unknown {
            if queued.insert(t.clone()) {
                work.push((t.clone(), false));
            }
        }
    }
    let second = hash_wave(work);
    crate::interrupt::check()?;
    progress.finish();

    let mut report = Report {
        images: targets.len(),
        manifests: usage.manifests.len(),
        blobs: usage.blobs.len(),
        links: links.len(),
        ..Report::default()
    };
    let mut status: HashMap<Digest, Checked> = HashMap::with_capacity(first.len() + second.len());
    for ((d, hash), c) in first.into_iter().chain(second) {
        if let (true, Checked::Present { size, .. }) = (hash, &c) {
            report.hashed_blobs += 1;
            report.hashed_bytes += size;
        }
        status.insert(d, c);
    }
    let exists = |d: &Digest| match status.get(d) {
        Some(Checked::Missing) => false,
        Some(_) => true,
        None => !matches!(
            catalog.manifests.get(d),
            Some(Err(e)) if matches!(**e, Error::MissingBlob { .. })
        ),
    };

    let errors = std::mem::take(&mut usage.manifest_errors);
    let mut findings = findings::manifest_findings(catalog, targets, &usage, errors);
    findings.extend(findings::blob_findings(catalog, targets, &usage, &status));
    findings.extend(findings::link_findings(
        catalog, targets, &usage, &links, &exists,
    ));
    if opts.all_blobs {
        report.orphans = Some(findings::orphans(
            catalog,
            &listed,
            &usage,
            &status,
            &mut findings,
        ));
    }
    findings.sort_by(|a, b| a.error.path().cmp(&b.error.path()));
    report.findings = findings;
    report.leftovers = store.leftovers(std::time::SystemTime::now())?;
    // Freeing tens of thousands of small allocations takes a while; let a
    // thread do it while the report is printed.
    std::thread::spawn(move || drop((usage, links, status)));
    Ok(report)
}
