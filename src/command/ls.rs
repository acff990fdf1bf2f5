//! `ls`: every `repo:tag` with its digest, media type, platforms and size.

use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;

use crate::catalog::{Catalog, WalkOptions};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::selection;
use crate::store::Store;

/// One line of the listing.
#[derive(Debug, Serialize)]
pub struct Entry {
    pub name: String,
    pub repository: String,
    pub tag: String,
    pub digest: Option<Digest>,
    pub media_type: Option<&'static str>,
    /// Platforms of an index's children (empty for a single image).
    pub platforms: Vec<String>,
    /// Total size of the image's unique blobs, manifests included.
    pub size: Option<u64>,
    /// Why the image cannot be served, if it cannot (boxed: a listing has
    /// a line per tag, and an error is big and rare).
    #[serde(skip)]
    pub error: Option<Box<Error>>,
    #[serde(rename = "error", skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// Lists every tag of the tree, sorted by name.
pub fn run(root: &Path) -> Result<Vec<Entry>> {
    let store = Store::open(root)?;
    let catalog = Catalog::load(&store, WalkOptions::default())?;
    let tags: Vec<_> = catalog.tags().collect();
    let entries = tags
        .par_iter()
        .map(|(repo, tag, target)| {
            let name = format!("{repo}:{tag}");
            let resolved = match target {
                Ok(d) => selection::resolve(&catalog, repo, Some(tag.to_string()), d, &[]),
                Err(e) => Err(Error::Shared(e.clone())),
            };
            let digest = target.as_ref().ok().cloned();
            match resolved {
                Ok(img) => Entry {
                    name,
                    repository: repo.to_string(),
                    tag: tag.to_string(),
                    digest,
                    media_type: Some(img.kind().media_type()),
                    platforms: if img.kind().is_index() {
                        img.platforms().iter().map(|p| p.to_string()).collect()
                    } else {
                        vec![]
                    },
                    size: Some(img.size()),
                    error: None,
                    error_message: None,
                },
                Err(e) => {
                    let e = e.in_image(&name);
                    Entry {
                        name,
                        repository: repo.to_string(),
                        tag: tag.to_string(),
                        digest,
                        media_type: None,
                        platforms: vec![],
                        size: None,
                        error_message: Some(e.root().to_string()),
                        error: Some(Box::new(e)),
                    }
                }
            }
        })
        .collect();
    Ok(entries)
}
