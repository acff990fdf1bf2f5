//! What serve reads of the tree once, at start: the repositories (for
//! `_catalog`), every manifest's `subject` (for the referrers API, which
//! distribution 2.8 lacks) and the size every manifest gives each blob (a
//! blob whose file has another size is damaged and never served). Tags,
//! links and blobs themselves are read on each request.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::catalog::{Catalog, WalkOptions};
use crate::digest::Digest;
use crate::error::Result;
use crate::store::Store;

/// A referrer as the referrers API lists it: an OCI index entry.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Referrer {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Default)]
pub struct Index {
    /// Repository names, sorted (only those the name grammar accepts).
    pub repositories: Vec<String>,
    /// (repository, subject) → its referrers, sorted by digest.
    pub referrers: HashMap<(String, Digest), Vec<Referrer>>,
    /// Blob → the size its descriptors give.
    pub sizes: HashMap<Digest, u64>,
    /// Tags seen at start (for the start-up line).
    pub tags: usize,
    /// Manifests read at start.
    pub manifests: usize,
}

impl Index {
    pub fn load(store: &Store) -> Result<Index> {
        let catalog = Catalog::load(
            store,
            WalkOptions {
                revisions: true,
                ..WalkOptions::default()
            },
        )?;
        let mut index = Index {
            repositories: catalog
                .repos
                .keys()
                .filter(|n| crate::paths::is_valid_repository_name(n))
                .cloned()
                .collect(),
            tags: catalog.repos.values().map(|r| r.tags.len()).sum(),
            ..Index::default()
        };
        for node in catalog.manifests.values().flatten() {
            index.manifests += 1;
            for d in node.manifest.blobs().chain(&node.manifest.children) {
                if let Some(size) = d.size {
                    index.sizes.insert(d.digest.clone(), size);
                }
            }
        }
        for repo in catalog.repos.values() {
            for digest in &repo.revisions {
                let Some(Ok(node)) = catalog.manifests.get(digest) else {
                    continue;
                };
                let m = &node.manifest;
                let Some(subject) = &m.subject else {
                    continue;
                };
                // The artifact type, else the config's media type (as the
                // distribution spec says a registry reports it).
                let artifact_type = m
                    .artifact_type
                    .clone()
                    .or_else(|| m.config.as_ref().map(|c| c.media_type.to_string()));
                index
                    .referrers
                    .entry((repo.name.clone(), subject.digest.clone()))
                    .or_default()
                    .push(Referrer {
                        media_type: m.media_type().to_string(),
                        digest: digest.clone(),
                        size: node.size,
                        artifact_type,
                        annotations: m.annotations.clone(),
                    });
            }
        }
        for list in index.referrers.values_mut() {
            list.sort_by(|a, b| a.digest.cmp(&b.digest));
        }
        Ok(index)
    }
}
