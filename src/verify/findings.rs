//! Turning what was read into findings: each broken blob, manifest and
//! link with its path and every image it breaks; orphans for `--all-blobs`.

use std::collections::{BTreeSet, HashMap, HashSet};

use rayon::prelude::*;

use crate::blobs::Checked;
use crate::catalog::Catalog;
use crate::digest::Digest;
use crate::error::Error;
use crate::paths::Spec;
use crate::verify::links::{Link, Role};
use crate::verify::walk::{self, Need, Target, Usage};
use crate::verify::{Finding, Orphan};

/// The names of the images (target indices).
fn names<'a>(targets: &'a [Target], images: &'a [u32]) -> impl Iterator<Item = &'a str> {
    images
        .iter()
        .map(move |&i| targets[i as usize].name.as_str())
}

pub fn manifest_findings(
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
                expected: *u.sizes.first().expect("not empty"),
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

pub fn blob_findings(
    catalog: &Catalog,
    targets: &[Target],
    usage: &Usage,
    status: &HashMap<Digest, Checked>,
) -> Vec<Finding> {
    let path = |d: &Digest| {
        let stored = usage.stored.get(d).unwrap_or(d);
        catalog.store.display(&Spec::BlobData(stored))
    };
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
                            expected: *u.sizes.first().expect("not empty"),
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

pub fn link_findings(
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
                    // Another name of a stored blob (a sha512 the registry
                    // links to the sha256 it stores the bytes under).
                    Some(f) if f.algorithm() != t.algorithm() && exists(t) => return None,
                    Some(f) if f != t && f.algorithm() == t.algorithm() => Error::LinkMismatch {
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
            (Some(n), Some(f), Ok(Some(_)) | Err(_)) => Some((&*l.repo, n, f)),
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

pub fn orphans(
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
