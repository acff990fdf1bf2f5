//! A `docker save` archive, as `docker load`, `skopeo copy docker-archive:`
//! and `ctr images import` read it:
//!
//! ```text
//! manifest.json            [{"Config": "blobs/sha256/<hex>", "RepoTags": [...], "Layers": [...]}]
//! blobs/sha256/<hex>       each config and layer
//! ```
//!
//! One entry per image (config and layers), with every selected tag of it in
//! `RepoTags`. Paths are those Docker 25 writes. Layers are the registry's
//! blobs as they are (gzip, mostly), not decompressed as `docker save`
//! writes them: every reader decompresses them and checks them against the
//! config's `diff_ids`, and the files stay hardlinks of the store's.
//!
//! An archive holds one platform of an image: a multi-arch image needs
//! `--platform`.

use std::collections::HashMap;

use serde::Serialize;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layout::oci::blob_path;
use crate::layout::{full_name, refuse_schema1};
use crate::media;
use crate::plan::{Phase, Plan};
use crate::selection::{Image, Selection};

pub const MANIFEST_FILE: &str = "manifest.json";

/// One entry of `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Entry {
    /// The config's digest: the image ID.
    #[serde(skip)]
    pub id: Digest,
    pub config: String,
    pub repo_tags: Vec<String>,
    pub layers: Vec<String>,
}

/// Plans the archive of a selection; returns it with its `manifest.json`
/// entries.
pub fn plan(sel: &Selection, prefix: Option<&str>) -> Result<(Plan, Vec<Entry>)> {
    let mut plan = Plan::new();
    let mut entries: Vec<Entry> = Vec::new();
    let mut by_image: HashMap<(Digest, Vec<Digest>), usize> = HashMap::new();
    for img in &sel.images {
        let (config, layers) = add_image(&mut plan, img).map_err(|e| e.in_image(img.name()))?;
        let at = *by_image
            .entry((config.clone(), layers.clone()))
            .or_insert_with(|| {
                entries.push(Entry {
                    id: config.clone(),
                    config: blob_path(&config),
                    repo_tags: Vec::new(),
                    layers: layers.iter().map(blob_path).collect(),
                });
                entries.len() - 1
            });
        if img.tag.is_some() {
            entries[at].repo_tags.push(full_name(prefix, img));
        }
    }
    let json = serde_json::to_vec(&entries).expect("serializable");
    plan.bytes(MANIFEST_FILE, json, Phase::Name)?;
    Ok((plan, entries))
}

/// Adds the config and layers of the image's one platform.
fn add_image(plan: &mut Plan, img: &Image) -> Result<(Digest, Vec<Digest>)> {
    refuse_schema1(img)?;
    let leaves: Vec<_> = img
        .manifests
        .iter()
        .filter(|m| !m.node.manifest.kind.is_index())
        .collect();
    if leaves.len() != 1 {
        let platforms: Vec<String> = img.platforms().iter().map(|p| p.to_string()).collect();
        return Err(Error::invalid(format!(
            "a docker archive holds one platform of an image, and this one has {}: {}; choose one with --platform (e.g. --platform {})",
            leaves.len(),
            platforms.join(", "),
            platforms.first().map_or("linux/amd64", String::as_str),
        )));
    }
    let m = &leaves[0].node.manifest;
    let config = m.config.as_ref().expect("image manifests have a config");
    if config.media_type != media::DOCKER_CONFIG && config.media_type != media::OCI_CONFIG {
        return Err(Error::invalid(format!(
            "not a container image (its config is `{}`): a docker archive holds images only",
            config.media_type
        )));
    }
    if let Some(f) = m.layers.iter().find(|l| l.is_foreign()) {
        return Err(Error::invalid(format!(
            "foreign layer {} is not in storage, and a docker archive must hold every layer",
            f.digest
        )));
    }
    let blobs: HashMap<&Digest, (&Digest, u64)> = img
        .blobs
        .iter()
        .map(|b| (&b.digest, (&b.stored, b.size)))
        .collect();
    for d in std::iter::once(&config.digest).chain(m.layers.iter().map(|l| &l.digest)) {
        let (stored, size) = blobs[d];
        plan.blob(blob_path(d), stored, size, Phase::Content)?;
    }
    let layers = m.layers.iter().map(|l| l.digest.clone()).collect();
    Ok((config.digest.clone(), layers))
}
