//! What the checked images use: every manifest and blob with the images
//! that use it and the sizes their descriptors give, and every link the
//! registry needs to serve them. In memory, from the catalog.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::catalog::Catalog;
use crate::digest::Digest;
use crate::error::Error;

/// The link kinds an image needs in its repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Need {
    /// `_manifests/revisions/.../link`: every manifest served by digest.
    Revision,
    /// `_layers/.../link`: every config and layer.
    Layer,
}

/// How a blob or manifest is used.
#[derive(Debug, Default)]
pub struct Use {
    /// What it is, as the first image using it saw it (`layer 2 of 3`).
    pub what: String,
    /// The sizes descriptors give it (none for schema1 layers and tags).
    pub sizes: BTreeSet<u64>,
    pub images: BTreeSet<Arc<str>>,
}

/// One image to check: `repo`, its name, and its top manifest.
#[derive(Debug, Clone)]
pub struct Target {
    pub repo: String,
    pub name: Arc<str>,
    pub digest: Digest,
}

#[derive(Debug, Default)]
pub struct Usage {
    pub manifests: HashMap<Digest, Use>,
    pub blobs: HashMap<Digest, Use>,
    /// Links the images need: (repository, kind, digest) → images.
    pub needs: HashMap<(String, Need, Digest), BTreeSet<Arc<str>>>,
    /// Manifests that could not be read, for the first image reaching them.
    pub manifest_errors: HashMap<Digest, Error>,
}

const MAX_DEPTH: usize = 8;

/// Walks every target over its children and blobs.
pub fn walk(catalog: &Catalog, targets: &[Target]) -> Usage {
    let mut usage = Usage::default();
    for t in targets {
        let mut seen = BTreeSet::new();
        visit(
            catalog,
            &mut usage,
            t,
            &t.digest,
            None,
            "manifest".into(),
            0,
            &mut seen,
        );
    }
    usage
}

#[allow(clippy::too_many_arguments)]
fn visit(
    catalog: &Catalog,
    usage: &mut Usage,
    t: &Target,
    digest: &Digest,
    size: Option<u64>,
    what: String,
    depth: usize,
    seen: &mut BTreeSet<Digest>,
) {
    if depth > MAX_DEPTH || !seen.insert(digest.clone()) {
        return;
    }
    need(usage, t, Need::Revision, digest);
    let u = usage.manifests.entry(digest.clone()).or_default();
    if u.what.is_empty() {
        u.what = what.clone();
    }
    u.sizes.extend(size);
    u.images.insert(t.name.clone());
    let node = match catalog.node(digest, &what) {
        Ok(n) => n,
        Err(e) => {
            usage.manifest_errors.entry(digest.clone()).or_insert(e);
            return;
        }
    };
    let m = &node.manifest;
    for child in &m.children {
        let what = match &child.platform {
            Some(p) => format!("child manifest {p}"),
            None => "child manifest".to_string(),
        };
        visit(
            catalog,
            usage,
            t,
            &child.digest,
            child.size,
            what,
            depth + 1,
            seen,
        );
    }
    let n = m.layers.len();
    for b in m.blobs() {
        if b.is_foreign() {
            continue;
        }
        let what = if m.config.as_ref().is_some_and(|c| c.digest == b.digest) {
            "config".to_string()
        } else {
            let pos = m
                .layers
                .iter()
                .position(|l| l.digest == b.digest)
                .unwrap_or(0);
            format!("layer {} of {n}", pos + 1)
        };
        need(usage, t, Need::Layer, &b.digest);
        let u = usage.blobs.entry(b.digest.clone()).or_default();
        if u.what.is_empty() {
            u.what = what;
        }
        u.sizes.extend(b.size);
        u.images.insert(t.name.clone());
    }
}

fn need(usage: &mut Usage, t: &Target, kind: Need, digest: &Digest) {
    usage
        .needs
        .entry((t.repo.clone(), kind, digest.clone()))
        .or_default()
        .insert(t.name.clone());
}

/// Every manifest and blob that some tag of the tree reaches (for
/// `--all-blobs`: the rest are orphans).
pub fn reached_by_tags(catalog: &Catalog) -> std::collections::HashSet<Digest> {
    let mut out = std::collections::HashSet::new();
    let mut stack: Vec<Digest> = catalog
        .tags()
        .filter_map(|(_, _, t)| t.as_ref().ok().cloned())
        .collect();
    while let Some(d) = stack.pop() {
        if !out.insert(d.clone()) {
            continue;
        }
        if let Some(Ok(node)) = catalog.manifests.get(&d) {
            let m = &node.manifest;
            stack.extend(m.children.iter().map(|c| c.digest.clone()));
            out.extend(m.blobs().map(|b| b.digest.clone()));
        }
    }
    out
}
