//! What the checked images use: every manifest and blob with the images
//! that use it and the sizes their descriptors give, from which follow the
//! links the registry needs to serve them. In memory, from the catalog.

use std::collections::{BTreeSet, HashMap};

use crate::catalog::Catalog;
use crate::digest::Digest;
use crate::error::Error;
use crate::platform::Platform;

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
    /// The targets (indices) using it, sorted, unique.
    pub images: Vec<u32>,
}

/// One image to check: `repo`, its name, and its top manifest.
#[derive(Debug, Clone)]
pub struct Target {
    pub repo: String,
    pub name: String,
    pub digest: Digest,
}

#[derive(Debug, Default)]
pub struct Usage {
    pub manifests: HashMap<Digest, Use>,
    pub blobs: HashMap<Digest, Use>,
    /// Manifests that could not be read, for the first image reaching them.
    pub manifest_errors: HashMap<Digest, Error>,
}

impl Usage {
    /// The uses of one kind of link.
    pub fn of(&self, need: Need) -> &HashMap<Digest, Use> {
        match need {
            Need::Revision => &self.manifests,
            Need::Layer => &self.blobs,
        }
    }
}

const MAX_DEPTH: usize = 8;

/// How a manifest was reached, named only when first recorded.
#[derive(Clone, Copy)]
enum Reached<'a> {
    Top,
    Child(Option<&'a Platform>),
}

impl Reached<'_> {
    fn what(self) -> String {
        match self {
            Reached::Top => "manifest".into(),
            Reached::Child(Some(p)) => format!("child manifest {p}"),
            Reached::Child(None) => "child manifest".into(),
        }
    }
}

/// Walks every target over its children and blobs.
pub fn walk(catalog: &Catalog, targets: &[Target]) -> Usage {
    let mut usage = Usage::default();
    let mut seen = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        seen.clear();
        let i = u32::try_from(i).expect("fewer than 4 billion images");
        visit(
            catalog,
            &mut usage,
            i,
            &t.digest,
            None,
            Reached::Top,
            0,
            &mut seen,
        );
    }
    for u in usage.manifests.values_mut().chain(usage.blobs.values_mut()) {
        u.images.sort_unstable();
        u.images.dedup();
    }
    usage
}

#[allow(clippy::too_many_arguments)]
fn visit(
    catalog: &Catalog,
    usage: &mut Usage,
    image: u32,
    digest: &Digest,
    size: Option<u64>,
    reached: Reached,
    depth: usize,
    seen: &mut Vec<Digest>,
) {
    if depth > MAX_DEPTH || seen.contains(digest) {
        return;
    }
    seen.push(digest.clone());
    record(&mut usage.manifests, digest, size, image, || reached.what());
    let node = match catalog.node(digest, "manifest") {
        Ok(n) => n,
        Err(_) => {
            // Again, to name it in the error as this image reaches it.
            if let Err(e) = catalog.node(digest, &reached.what()) {
                usage.manifest_errors.entry(digest.clone()).or_insert(e);
            }
            return;
        }
    };
    let m = &node.manifest;
    for child in &m.children {
        let reached = Reached::Child(child.platform.as_ref());
        visit(
            catalog,
            usage,
            image,
            &child.digest,
            child.size,
            reached,
            depth + 1,
            seen,
        );
    }
    for b in m.blobs() {
        if b.is_foreign() {
            continue;
        }
        record(&mut usage.blobs, &b.digest, b.size, image, || {
            if m.config.as_ref().is_some_and(|c| c.digest == b.digest) {
                "config".to_string()
            } else {
                let pos = m.layers.iter().position(|l| l.digest == b.digest);
                format!("layer {} of {}", pos.unwrap_or(0) + 1, m.layers.len())
            }
        });
    }
}

fn record(
    map: &mut HashMap<Digest, Use>,
    digest: &Digest,
    size: Option<u64>,
    image: u32,
    what: impl FnOnce() -> String,
) {
    let u = match map.get_mut(digest) {
        Some(u) => u,
        None => map.entry(digest.clone()).or_insert_with(|| Use {
            what: what(),
            ..Use::default()
        }),
    };
    u.sizes.extend(size);
    if u.images.last() != Some(&image) {
        u.images.push(image);
    }
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
