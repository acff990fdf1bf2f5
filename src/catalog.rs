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
use crate::paths::{self, Parsed, Spec};
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
    /// In a bucket: revisions whose link object has not the size of a link
    /// to its folder's digest, so its content must be read (the others are
    /// taken to name their folder's digest).
    pub odd_revisions: BTreeSet<Digest>,
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
    /// In a bucket, read a tag's `current` link (a request each) only when
    /// its `index` entries name a manifest without a revision link: for gc
    /// without `--delete-untagged`, which keeps every revision anyway, the
    /// tags whose history is all revisions add nothing (they are left out
    /// of `Repository::tags`).
    pub skip_tag_targets: bool,
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
    /// In a bucket: every blob of `blobs/`, listed with its size once
    /// (so a blob not listed is missing, with no request to ask).
    listed_blobs: Option<Vec<(Digest, u64)>>,
    /// Whether revision links were taken to name their folders' digests
    /// (a listing in a bucket), except `Repository::odd_revisions`.
    pub trusts_link_names: bool,
}

impl Catalog {
    /// Walks the whole tree once, in parallel.
    pub fn load(store: &Store, opts: WalkOptions) -> Result<Catalog> {
        if let Some(bucket) = store.s3() {
            let (repos, listed) = rayon::join(
                || flat_repositories(store, bucket, &opts),
                || flat_blobs(store, bucket),
            );
            let mut catalog = Catalog::from_repositories(store, repos?, &opts);
            let listed = listed?;
            *catalog.blob_sizes.lock().expect("not poisoned") =
                listed.iter().map(|(d, n)| (d.clone(), Some(*n))).collect();
            catalog.listed_blobs = Some(listed);
            catalog.trusts_link_names = true;
            return Ok(catalog);
        }
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
        Ok(Catalog::from_repositories(store, repos, &opts))
    }

    /// The catalog of repositories found, with every manifest they reach.
    fn from_repositories(
        store: &Store,
        repos: BTreeMap<String, Repository>,
        opts: &WalkOptions,
    ) -> Catalog {
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
            listed_blobs: None,
            trusts_link_names: false,
        };
        catalog.read_manifests(wanted);
        catalog
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
        if self.listed_blobs.is_some() {
            return Ok(None);
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

    /// Takes a listing of every blob of `blobs/` with its size, made beside
    /// the walk (as the walk of a bucket makes one): gc's plan then lists
    /// `blobs/` no more, and a blob not in it is missing.
    pub fn take_blob_listing(&mut self, listed: Vec<(Digest, u64)>) {
        self.listed_blobs = Some(listed);
    }

    /// Records blob sizes found by a listing of `blobs/` (`None`: a blob
    /// folder without `data`), so that [`Catalog::blob_size`] looks none of
    /// them up again.
    pub fn remember_blob_sizes(&self, sizes: impl IntoIterator<Item = (Digest, Option<u64>)>) {
        self.blob_sizes.lock().expect("not poisoned").extend(sizes);
    }

    /// The manifests of `repo` whose `subject` is `digest` (its OCI
    /// referrers: signatures, SBOMs, attestations), sorted. Only a walk that
    /// read every revision ([`WalkOptions::revisions`]) knows them.
    pub fn referrers(&self, repo: &str, digest: &Digest) -> Vec<Digest> {
        let Some(r) = self.repos.get(repo) else {
            return Vec::new();
        };
        r.revisions
            .iter()
            .filter(|rev| {
                self.manifests.get(*rev).is_some_and(|n| {
                    n.as_ref().is_ok_and(|n| {
                        n.manifest
                            .subject
                            .as_ref()
                            .is_some_and(|s| &s.digest == digest)
                    })
                })
            })
            .cloned()
            .collect()
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

    /// Every blob of the tree with its size, when a listing gave them (a
    /// tree in a bucket); `None` on disk, where they are listed on demand.
    pub fn listed_blobs(&self) -> Option<&[(Digest, u64)]> {
        self.listed_blobs.as_deref()
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
        ..Repository::default()
    })
}

/// The repositories of a tree in a bucket, from flat listings (one request
/// per 1000 keys, instead of one per folder): every key below
/// `repositories/` (or below each repository asked for) says which
/// repository, tag, revision or `_layers` link it is; then every tag's
/// `current` link is read, many at once.
fn flat_repositories(
    store: &Store,
    bucket: &crate::store::s3::S3Backend,
    opts: &WalkOptions,
) -> Result<BTreeMap<String, Repository>> {
    let roots: Vec<String> = match &opts.repos {
        None => vec![paths::REPOSITORIES.to_string()],
        Some(names) => {
            let mut v: Vec<String> = names
                .iter()
                .filter(|n| paths::is_valid_repository_name(n))
                .map(|n| format!("{}/{n}", paths::REPOSITORIES))
                .collect();
            v.sort();
            v.dedup();
            v
        }
    };
    let links = opts.links || opts.revisions;
    let listed: Vec<Vec<(Parsed, u64)>> = roots
        .par_iter()
        .map(|root| {
            let mut found = Vec::new();
            bucket
                .walk(std::path::Path::new(root), &mut |key, o| {
                    if let Some(p) = paths::parse(&format!("{root}/{key}")) {
                        found.push((p, o.size));
                    }
                })
                .map_err(|e| Error::io("list folder", store.display(&Spec::RepositoriesRoot), e))?;
            Ok(found)
        })
        .collect::<Result<_>>()?;
    let wanted = |repo: &str| {
        opts.repos
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == repo))
    };
    let mut repos: BTreeMap<String, Repository> = BTreeMap::new();
    fn entry<'a>(repos: &'a mut BTreeMap<String, Repository>, name: &str) -> &'a mut Repository {
        repos.entry(name.to_string()).or_insert_with(|| Repository {
            name: name.to_string(),
            ..Repository::default()
        })
    }
    let mut current: Vec<(String, String)> = Vec::new();
    let mut layers: Vec<(String, Digest)> = Vec::new();
    let mut history: BTreeMap<(String, String), Vec<Digest>> = BTreeMap::new();
    let mut tags_seen: Vec<(String, String)> = Vec::new();
    for (p, size) in listed.into_iter().flatten() {
        match p {
            Parsed::TagCurrentLink { repo: r, tag } if wanted(&r) => {
                entry(&mut repos, &r);
                current.push((r, tag));
            }
            Parsed::TagIndexLink {
                repo: r,
                tag,
                digest,
            } if wanted(&r) => {
                entry(&mut repos, &r);
                history
                    .entry((r.clone(), tag.clone()))
                    .or_default()
                    .push(digest);
                tags_seen.push((r, tag));
            }
            Parsed::RevisionLink { repo: r, digest } if wanted(&r) => {
                let rp = entry(&mut repos, &r);
                if links {
                    if size != digest.as_str().len() as u64 {
                        rp.odd_revisions.insert(digest.clone());
                    }
                    rp.revisions.insert(digest);
                }
            }
            Parsed::LayerLink { repo: r, digest } if wanted(&r) && links => {
                layers.push((r, digest));
            }
            _ => {}
        }
    }
    // A folder is a repository when it holds `_manifests` (as on disk).
    for (r, d) in layers {
        if let Some(rp) = repos.get_mut(&r) {
            rp.layers.insert(d);
        }
    }
    if opts.skip_tag_targets {
        // A tag whose every index entry is a revision points at one of them.
        current.retain(|(r, t)| {
            let revisions = &repos[r].revisions;
            !history
                .get(&(r.clone(), t.clone()))
                .is_some_and(|h| h.iter().all(|d| revisions.contains(d)))
        });
        // (A tag without a current link is no tag to gc: nothing to say.)
        tags_seen.clear();
    }
    let targets: Vec<((String, String), TagTarget)> = current
        .par_iter()
        .map(|(r, t)| {
            let target = match store.read_link(&Spec::TagCurrentLink(r, t)) {
                Ok(Some(d)) => Ok(d),
                Ok(None) => Err(Arc::new(no_current(store, r, t))),
                Err(e) => Err(Arc::new(e)),
            };
            ((r.clone(), t.clone()), target)
        })
        .collect();
    for ((r, t), target) in targets {
        repos.get_mut(&r).expect("listed").tags.insert(t, target);
    }
    // A tag folder with index entries but no current link: listed by the
    // registry, served by nobody.
    for (r, t) in tags_seen {
        let rp = repos.get_mut(&r).expect("listed");
        if let std::collections::btree_map::Entry::Vacant(v) = rp.tags.entry(t) {
            let e = no_current(store, &r, v.key());
            v.insert(Err(Arc::new(e)));
        }
    }
    Ok(repos)
}

fn no_current(store: &Store, repo: &str, tag: &str) -> Error {
    Error::Invalid {
        message: "tag has no current link".into(),
        path: Some(store.display(&Spec::TagCurrentLink(repo, tag))),
    }
}

/// Every blob of a tree in a bucket with its size: one flat listing of
/// `blobs/` (a request per 1000 blobs), sorted.
fn flat_blobs(store: &Store, bucket: &crate::store::s3::S3Backend) -> Result<Vec<(Digest, u64)>> {
    let mut out = Vec::new();
    bucket
        .walk(std::path::Path::new(paths::BLOBS), &mut |key, o| {
            if let Some(Parsed::BlobData(d)) = paths::parse(&format!("{}/{key}", paths::BLOBS)) {
                out.push((d, o.size));
            }
        })
        .map_err(|e| Error::io("list folder", store.display(&Spec::BlobsRoot), e))?;
    out.sort();
    Ok(out)
}
