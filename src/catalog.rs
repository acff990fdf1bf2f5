//! One parallel walk of a storage tree into an in-memory graph.
//!
//! The walk finds every repository (a folder holding `_manifests`, at any
//! depth), reads every tag's `current` link, lists revisions and `_layers`,
//! then reads and parses every manifest those reach, following index children
//! until nothing new appears. Damage becomes an error stored in the graph,
//! with its path, and is reported for each image it breaks; it never panics
//! the walk.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use crate::digest::Digest;
use crate::error::{Error, Result};
pub use crate::graph::Node;
use crate::manifest::Manifest;
use crate::paths::{self, Spec};
use crate::store::Store;

/// A stored error, shared by everything it breaks.
pub type Broken = Arc<Error>;

/// What a tag's `current` link says.
pub type TagTarget = std::result::Result<Digest, Broken>;

/// A repository: its tags, revisions and layer links.
#[derive(Debug, Default)]
pub struct Repository {
    pub name: String,
    /// Tag → the digest its `current` link holds, or why it cannot be read.
    pub tags: BTreeMap<String, TagTarget>,
    /// Digests with a revision link (names of the folders); listed only
    /// when the walk was asked for links.
    pub revisions: BTreeSet<Digest>,
    /// Digests with a `_layers` link (names of the folders).
    pub layers: BTreeSet<Digest>,
}

/// What the walk should read besides tags and what they reach.
#[derive(Debug, Clone, Default)]
pub struct WalkOptions {
    /// List every repository's revision and `_layers` links (verify and gc
    /// need them; listing and copying images do not).
    pub links: bool,
    /// Also read every manifest that has a revision link (untagged ones
    /// too), as garbage collection needs. Implies `links`.
    pub revisions: bool,
    /// Walk only these repositories (those that exist); `None` walks all.
    pub repos: Option<Vec<String>>,
}

/// The graph of a storage tree.
pub struct Catalog {
    pub store: Store,
    pub repos: BTreeMap<String, Repository>,
    /// Every manifest read, by digest, or why it could not be read.
    pub manifests: HashMap<Digest, std::result::Result<Arc<Node>, Broken>>,
    /// Whether `Repository::revisions` and `layers` were listed.
    pub links_listed: bool,
    /// Blob sizes looked up so far (`None`: missing), shared by every image.
    blob_sizes: Mutex<HashMap<Digest, Option<u64>>>,
}

impl Catalog {
    /// Walks the whole tree once, in parallel.
    pub fn load(store: &Store, opts: WalkOptions) -> Result<Catalog> {
        let names = match &opts.repos {
            None => find_repositories(store)?,
            Some(wanted) => {
                let mut v: Vec<String> = Vec::new();
                for name in wanted {
                    if !v.contains(name) && is_repository(store, name)? {
                        v.push(name.clone());
                    }
                }
                v.sort();
                v
            }
        };
        let repos: Vec<Repository> = names
            .par_iter()
            .map(|name| load_repository(store, name, opts.links || opts.revisions))
            .collect::<Result<_>>()?;
        let repos: BTreeMap<String, Repository> =
            repos.into_iter().map(|r| (r.name.clone(), r)).collect();

        let mut wanted: BTreeSet<Digest> = repos
            .values()
            .flat_map(|r| r.tags.values().filter_map(|t| t.as_ref().ok().cloned()))
            .collect();
        if opts.revisions {
            wanted.extend(repos.values().flat_map(|r| r.revisions.iter().cloned()));
        }
        let mut catalog = Catalog {
            store: store.clone(),
            repos,
            manifests: HashMap::new(),
            links_listed: opts.links || opts.revisions,
            blob_sizes: Mutex::new(HashMap::new()),
        };
        catalog.read_manifests(wanted);
        Ok(catalog)
    }

    /// Reads the given manifests and, transitively, their index children,
    /// level by level, no deeper than the walks go
    /// ([`crate::graph::MAX_DEPTH`]): one past it is read on demand, to be
    /// refused.
    fn read_manifests(&mut self, mut wanted: BTreeSet<Digest>) {
        for _level in 0..=crate::graph::MAX_DEPTH {
            if wanted.is_empty() {
                break;
            }
            let read: Vec<(Digest, std::result::Result<Arc<Node>, Broken>)> = wanted
                .par_iter()
                .map(|d| {
                    (
                        d.clone(),
                        read_node(&self.store, d).map(Arc::new).map_err(Arc::new),
                    )
                })
                .collect();
            let mut next = BTreeSet::new();
            for (digest, node) in read {
                if let Ok(n) = &node {
                    for c in &n.manifest.children {
                        if !self.manifests.contains_key(&c.digest) {
                            next.insert(c.digest.clone());
                        }
                    }
                }
                self.manifests.insert(digest, node);
            }
            next.retain(|d| !self.manifests.contains_key(d));
            wanted = next;
        }
    }

    /// The manifest with this digest, as read by the walk.
    pub fn node(&self, digest: &Digest, what: &str) -> Result<Arc<Node>> {
        match self.manifests.get(digest) {
            Some(Ok(n)) => Ok(n.clone()),
            Some(Err(e)) => Err(match &**e {
                // Say which manifest of the image it was.
                Error::MissingBlob { digest, path, .. } => Error::MissingBlob {
                    digest: digest.clone(),
                    path: path.clone(),
                    what: what.into(),
                },
                _ => Error::Shared(e.clone()),
            }),
            // Not reached by the walk (e.g. a by-digest reference): read now.
            None => read_node(&self.store, digest)
                .map(Arc::new)
                .map_err(|e| match e {
                    Error::MissingBlob { digest, path, .. } => Error::MissingBlob {
                        digest,
                        path,
                        what: what.into(),
                    },
                    e => e,
                }),
        }
    }

    /// The size of a blob, or `None` if it is missing; each blob is looked
    /// up once however many images share it.
    pub fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        if let Some(s) = self.blob_sizes.lock().expect("not poisoned").get(digest) {
            return Ok(*s);
        }
        let size = self.store.blob_size(digest)?;
        self.blob_sizes
            .lock()
            .expect("not poisoned")
            .insert(digest.clone(), size);
        Ok(size)
    }

    /// The blob whose bytes the blob `digest` of `repo` is. Blobs are stored
    /// under their sha256: one pushed under another algorithm's digest
    /// (sha512) is stored under its sha256, and `repo`'s `_layers` link for
    /// the sha512 names it, as the registry resolves it. A digest with
    /// neither a blob nor such a link is itself (and missing).
    pub fn stored_as(&self, repo: &str, digest: &Digest) -> Result<Digest> {
        if digest.algorithm() == crate::digest::Algorithm::Sha256 {
            return Ok(digest.clone());
        }
        match self.store.read_link(&Spec::LayerLink(repo, digest))? {
            Some(t) if &t != digest && self.blob_size(&t)?.is_some() => Ok(t),
            _ => Ok(digest.clone()),
        }
    }

    /// Whether `repo` can serve `digest` by digest (has its revision link).
    pub fn has_revision(&self, repo: &str, digest: &Digest) -> Result<bool> {
        if self.links_listed {
            return Ok(self
                .repos
                .get(repo)
                .is_some_and(|r| r.revisions.contains(digest)));
        }
        match self.store.read_link(&Spec::RevisionLink(repo, digest)) {
            Ok(Some(d)) => Ok(&d == digest),
            Ok(None) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every `repo:tag`, sorted, with what its link says.
    pub fn tags(&self) -> impl Iterator<Item = (&str, &str, &TagTarget)> {
        self.repos.values().flat_map(|r| {
            r.tags
                .iter()
                .map(move |(t, target)| (r.name.as_str(), t.as_str(), target))
        })
    }
}

fn read_node(store: &Store, digest: &Digest) -> Result<Node> {
    let bytes = store.read_blob(digest, "manifest")?;
    let path = store.display(&Spec::BlobData(digest));
    let actual = Digest::sha256_of(&bytes);
    if digest.algorithm() == actual.algorithm() && actual != *digest {
        return Err(Error::DigestMismatch {
            path,
            expected: digest.clone(),
            actual,
        });
    }
    let manifest = Manifest::parse(&bytes).map_err(|reason| Error::BadManifest {
        digest: digest.clone(),
        path,
        reason,
    })?;
    Ok(Node {
        manifest,
        size: bytes.len() as u64,
    })
}

/// Whether `name` is a repository (its folder holds `_manifests`).
fn is_repository(store: &Store, name: &str) -> Result<bool> {
    Ok(store
        .list(&Spec::Repository(name))?
        .iter()
        .any(|e| e.is_dir && e.name == paths::MANIFESTS_DIR))
}

/// Every folder under `repositories/` that holds `_manifests`, sorted.
/// Repositories may nest inside one another (`a` and `a/b`).
pub fn find_repositories(store: &Store) -> Result<Vec<String>> {
    fn walk(store: &Store, name: &str, out: &mut Vec<String>) -> Result<()> {
        let spec = if name.is_empty() {
            Spec::RepositoriesRoot
        } else {
            Spec::Repository(name)
        };
        let entries = store.list(&spec)?;
        if entries
            .iter()
            .any(|e| e.is_dir && e.name == paths::MANIFESTS_DIR)
        {
            out.push(name.to_string());
        }
        let subdirs: Vec<String> = entries
            .into_iter()
            .filter(|e| e.is_dir && !e.name.starts_with('_'))
            .map(|e| {
                if name.is_empty() {
                    e.name
                } else {
                    format!("{name}/{}", e.name)
                }
            })
            .collect();
        let found: Vec<Vec<String>> = subdirs
            .par_iter()
            .map(|sub| {
                let mut v = Vec::new();
                walk(store, sub, &mut v).map(|_| v)
            })
            .collect::<Result<_>>()?;
        out.extend(found.into_iter().flatten());
        Ok(())
    }
    let mut out = Vec::new();
    walk(store, "", &mut out)?;
    out.sort();
    Ok(out)
}

fn load_repository(store: &Store, name: &str, links: bool) -> Result<Repository> {
    let tag_names = store.list(&Spec::TagsRoot(name))?;
    let tags = tag_names
        .into_iter()
        .filter(|e| e.is_dir)
        .map(|e| {
            let target = match store.read_link(&Spec::TagCurrentLink(name, &e.name)) {
                Ok(Some(d)) => Ok(d),
                Ok(None) => Err(Arc::new(Error::Invalid {
                    message: "tag has no current link".into(),
                    path: Some(store.display(&Spec::TagCurrentLink(name, &e.name))),
                })),
                Err(err) => Err(Arc::new(err)),
            };
            (e.name, target)
        })
        .collect();
    let (revisions, layers) = if links {
        (
            store.list_digests(&Spec::RevisionsRoot(name))?,
            store.list_digests(&Spec::LayersRoot(name))?,
        )
    } else {
        Default::default()
    };
    Ok(Repository {
        name: name.to_string(),
        tags,
        revisions,
        layers,
    })
}
