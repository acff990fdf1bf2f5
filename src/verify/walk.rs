//! What the checked images use: every manifest and blob with the images
//! that use it and the sizes their descriptors give, from which follow the
//! links the registry needs to serve them. In memory, from the catalog.

use std::collections::HashMap;
use std::sync::Arc;

use crate::catalog::{Catalog, Node};
use crate::digest::Digest;
use crate::error::Error;
use crate::graph;
use crate::paths::Spec;

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
    /// The sizes descriptors give it (none for schema1 layers and tags),
    /// sorted, unique: almost always one (a set would take a node of its
    /// own per blob).
    pub sizes: Vec<u64>,
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
    /// Blobs named by another digest than they are stored as (sha512): the
    /// digest of the blob whose bytes they are.
    pub stored: HashMap<Digest, Digest>,
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

/// Walks every target over its children and blobs. An index nested
/// deeper than [`graph::MAX_DEPTH`] levels is a finding for the image
/// (extract refuses it too).
pub fn walk(catalog: &Catalog, targets: &[Target]) -> Usage {
    let mut usage = Usage::default();
    for (i, t) in targets.iter().enumerate() {
        let image = u32::try_from(i).expect("fewer than 4 billion images");
        let mut v = UsageWalk {
            catalog,
            usage: &mut usage,
            image,
            repo: &t.repo,
        };
        if let Err(e) = graph::walk(&t.digest, &mut v) {
            if let Error::TooDeep { digest, .. } = &e {
                let digest = digest.clone();
                record(&mut usage.manifests, &digest, None, image, || {
                    "child manifest".into()
                });
                usage.manifest_errors.entry(digest).or_insert(e);
            }
        }
    }
    for u in usage.manifests.values_mut().chain(usage.blobs.values_mut()) {
        u.images.sort_unstable();
        u.images.dedup();
    }
    usage
}

/// Records what one image uses; a manifest that cannot be read is an
/// error recorded for it, and the walk goes on with the rest.
struct UsageWalk<'a> {
    catalog: &'a Catalog,
    usage: &'a mut Usage,
    image: u32,
    repo: &'a str,
}

impl graph::Visitor for UsageWalk<'_> {
    fn manifest(&mut self, step: &graph::Step) -> crate::Result<Option<Arc<Node>>> {
        let size = step.entry.and_then(|e| e.size);
        record(
            &mut self.usage.manifests,
            step.digest,
            size,
            self.image,
            || step.what.clone(),
        );
        match self.catalog.node(step.digest, &step.what) {
            Ok(n) => Ok(Some(n)),
            Err(e) => {
                self.usage
                    .manifest_errors
                    .entry(step.digest.clone())
                    .or_insert(e);
                Ok(None)
            }
        }
    }

    fn blob(&mut self, _step: &graph::Step, blob: &graph::BlobRef) -> crate::Result<()> {
        let b = blob.descriptor;
        if b.is_foreign() {
            return Ok(());
        }
        record(&mut self.usage.blobs, &b.digest, b.size, self.image, || {
            blob.what.clone()
        });
        if !self.usage.stored.contains_key(&b.digest) {
            if let Ok(stored) = self.catalog.stored_as(self.repo, &b.digest) {
                if stored != b.digest {
                    self.usage.stored.insert(b.digest.clone(), stored);
                }
            }
        }
        Ok(())
    }

    fn path(&self, digest: &Digest) -> Option<std::path::PathBuf> {
        Some(self.catalog.store.display(&Spec::BlobData(digest)))
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
    if let Some(Err(at)) = size.map(|s| u.sizes.binary_search(&s)) {
        u.sizes.insert(at, size.expect("some"));
    }
    if u.images.last() != Some(&image) {
        u.images.push(image);
    }
}

/// Every manifest and blob that some tag of the tree reaches, blobs also
/// under the digest they are stored as (for `--all-blobs`: the rest are
/// orphans).
pub fn reached_by_tags(catalog: &Catalog) -> std::collections::HashSet<Digest> {
    struct Reach<'a> {
        catalog: &'a Catalog,
        repo: &'a str,
        out: std::collections::HashSet<Digest>,
    }
    impl graph::Visitor for Reach<'_> {
        fn manifest(&mut self, step: &graph::Step) -> crate::Result<Option<Arc<Node>>> {
            if !self.out.insert(step.digest.clone()) {
                return Ok(None);
            }
            Ok(match self.catalog.manifests.get(step.digest) {
                Some(Ok(n)) => Some(n.clone()),
                _ => None,
            })
        }
        fn blob(&mut self, _: &graph::Step, blob: &graph::BlobRef) -> crate::Result<()> {
            let d = &blob.descriptor.digest;
            if let Ok(stored) = self.catalog.stored_as(self.repo, d) {
                self.out.insert(stored);
            }
            self.out.insert(d.clone());
            Ok(())
        }
    }
    let mut out = std::collections::HashSet::new();
    for (repo, _, target) in catalog.tags() {
        let Ok(d) = target else { continue };
        let mut v = Reach {
            catalog,
            repo,
            out: std::mem::take(&mut out),
        };
        // Past the depth limit is a finding of its own.
        let _ = graph::walk(d, &mut v);
        out = v.out;
    }
    out
}
