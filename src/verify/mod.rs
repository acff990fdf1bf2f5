//! Integrity of a tree, as the registry needs it to serve images: every
//! blob the images use exists, has its descriptor's size and its name's
//! sha256; every manifest parses; every link parses and points at a blob;
//! every manifest and blob an image needs is linked in its repository.
//!
//! [`walk`] finds what the images use (in memory), [`links`] reads every
//! link file, [`crate::blobs`] hashes each blob once on all cores, and
//! [`check`] turns the three into findings, each naming its path and every
//! image it breaks.

pub mod links;
pub mod walk;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

use rayon::prelude::*;

use crate::blobs::{self, Checked};
use crate::catalog::{Catalog, Repository};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::paths::Spec;
use crate::progress::Progress;
use links::{Link, Role};
use walk::{Need, Target, Usage};

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
        let checked = blobs::check_all(store, &work, &progress);
        work.into_iter().zip(checked).collect::<Vec<_>>()
    };
    // The images' blobs are hashed while the link files are read.
    let ((mut usage, first), links) = rayon::join(
        || {
            let usage = walk::walk(catalog, targets);
            let work = usage.blobs.keys().map(|d| (d.clone(), opts.hash)).collect();
            let first = hash_wave(work);
            (usage, first)
        },
        || -> Result<_> {
            let links = links::read(store, repos)?;
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
    let mut findings = manifest_findings(catalog, targets, &usage, errors);
    findings.extend(blob_findings(catalog, targets, &usage, &status));
    findings.extend(link_findings(catalog, targets, &usage, &links, &exists));
    if opts.all_blobs {
        report.orphans = Some(orphans(catalog, &listed, &usage, &status, &mut findings));
    }
    findings.sort_by(|a, b| a.error.path().cmp(&b.error.path()));
    report.findings = findings;
    // Freeing tens of thousands of small allocations takes a while; let a
    // thread do it while the report is printed.
    std::thread::spawn(move || drop((usage, links, status)));
    Ok(report)
}

/// The names of the images (target indices).
fn names<'a>(targets: &'a [Target], images: &'a [u32]) -> impl Iterator<Item = &'a str> {
    images
        .iter()
        .map(move |&i| targets[i as usize].name.as_str())
}

fn manifest_findings(
    catalog: &Catalog,
    targets: &[Target],
    usage: &Usage,
    errors: HashMap<Digest, Error>,
) -> Vec<Finding> {
    let mut out: Vec<Finding> = usage
        .manifests
        .par_iter()
        .filter(|(d, u)| !errors.contains_key(*d) && !u.sizes.is_empty())
        .filter_map(|(d, u)| {
            let node = catalog.node(d, &u.what).ok()?;
            if u.sizes.contains(&node.size) {
                return None;
            }
            let e = Error::SizeMismatch {
                path: catalog.store.display(&Spec::BlobData(d)),
                digest: d.clone(),
                expected: *u.sizes.iter().next().expect("not empty"),
                actual: node.size,
            };
            Some(Finding::new(e, names(targets, &u.images)))
        })
        .collect();
    for (d, e) in errors {
        let images = usage.manifests.get(&d).map_or(&[][..], |u| &u.images);
        out.push(Finding::new(e, names(targets, images)));
    }
    out
}

fn blob_findings(
    catalog: &Catalog,
    targets: &[Target],
    usage: &Usage,
    status: &HashMap<Digest, Checked>,
) -> Vec<Finding> {
    let path = |d: &Digest| catalog.store.display(&Spec::BlobData(d));
    usage
        .blobs
        .par_iter()
        .filter_map(|(d, u)| {
            let e = match status.get(d)? {
                Checked::Missing => Error::MissingBlob {
                    digest: d.clone(),
                    what: u.what.clone(),
                    path: path(d),
                },
                Checked::Present { size, actual } => {
                    if !u.sizes.is_empty() && !u.sizes.contains(size) {
                        Error::SizeMismatch {
                            path: path(d),
                            digest: d.clone(),
                            expected: *u.sizes.iter().next().expect("not empty"),
                            actual: *size,
                        }
                    } else if let Some(a) = actual.as_ref().filter(|a| *a != d) {
                        Error::DigestMismatch {
                            path: path(d),
                            expected: d.clone(),
                            actual: a.clone(),
                        }
                    } else {
                        return None;
                    }
                }
                Checked::Unreadable(e) => Error::Shared(e.clone()),
            };
            Some(Finding::new(e, names(targets, &u.images)))
        })
        .collect()
}

fn link_findings(
    catalog: &Catalog,
    targets: &[Target],
    usage: &Usage,
    links: &[Link],
    exists: &(dyn Fn(&Digest) -> bool + Sync),
) -> Vec<Finding> {
    // The images of `repo` that need the link of `need` for `d`.
    let needing = |repo: &str, need: Need, d: &Digest| -> Vec<String> {
        usage
            .of(need)
            .get(d)
            .map(|u| {
                names(targets, &u.images)
                    .zip(u.images.iter())
                    .filter(|(_, &i)| targets[i as usize].repo == repo)
                    .map(|(n, _)| n.to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out: Vec<Finding> = links
        .par_iter()
        .filter_map(|l| {
            let e = match &l.target {
                Err(e) => Error::Shared(e.clone()),
                Ok(None) => return None,
                Ok(Some(t)) => match &l.folder {
                    Some(f) if f != t => Error::LinkMismatch {
                        path: l.path(&catalog.store),
                        folder: f.clone(),
                        target: t.clone(),
                    },
                    _ if !exists(t) => Error::DanglingLink {
                        path: l.path(&catalog.store),
                        digest: t.clone(),
                    },
                    _ => return None,
                },
            };
            let images: Vec<String> = match (&l.role, &l.folder) {
                (Role::TagCurrent(tag), _) => vec![format!("{}:{tag}", l.repo)],
                (role, Some(f)) => role
                    .need()
                    .map(|n| needing(&l.repo, n, f))
                    .unwrap_or_default(),
                _ => vec![],
            };
            Some(Finding::new(e, images))
        })
        .collect();
    // Links the images need that are not there at all.
    let present: HashSet<(&str, Need, &Digest)> = links
        .par_iter()
        .filter_map(|l| match (l.role.need(), &l.folder, &l.target) {
            (Some(n), Some(f), Ok(Some(_)) | Err(_)) => Some((l.repo.as_str(), n, f)),
            _ => None,
        })
        .collect();
    for need in [Need::Revision, Need::Layer] {
        out.par_extend(usage.of(need).par_iter().flat_map_iter(|(d, u)| {
            let repos: BTreeSet<&str> = u
                .images
                .iter()
                .map(|&i| targets[i as usize].repo.as_str())
                .collect();
            let present = &present;
            let needing = &needing;
            repos
                .into_iter()
                .filter(move |repo| !present.contains(&(*repo, need, d)))
                .map(move |repo| {
                    let (spec, kind) = match need {
                        Need::Revision => (Spec::RevisionLink(repo, d), "revision"),
                        Need::Layer => (Spec::LayerLink(repo, d), "_layers"),
                    };
                    let e = Error::MissingLink {
                        path: catalog.store.display(&spec),
                        digest: d.clone(),
                        what: u.what.clone(),
                        kind,
                    };
                    Finding::new(e, needing(repo, need, d))
                })
        }));
    }
    out
}

fn orphans(
    catalog: &Catalog,
    listed: &[Digest],
    usage: &Usage,
    status: &HashMap<Digest, Checked>,
    out: &mut Vec<Finding>,
) -> Vec<Orphan> {
    let reached = walk::reached_by_tags(catalog);
    let mut orphans = Vec::new();
    for d in listed {
        let path = catalog.store.display(&Spec::BlobData(d));
        let size = match status.get(d) {
            Some(Checked::Present { size, actual }) => {
                // The images' blobs were judged already.
                if !usage.blobs.contains_key(d) {
                    if let Some(a) = actual.as_ref().filter(|a| *a != d) {
                        let e = Error::DigestMismatch {
                            path: path.clone(),
                            expected: d.clone(),
                            actual: a.clone(),
                        };
                        out.push(Finding::new(e, Vec::<String>::new()));
                    }
                }
                *size
            }
            Some(_) => continue,
            None => match catalog.manifests.get(d) {
                Some(Ok(node)) => node.size,
                _ => continue,
            },
        };
        if !reached.contains(d) {
            orphans.push(Orphan {
                digest: d.clone(),
                size,
                path,
            });
        }
    }
    orphans
}
