//! Choosing images: references and lists resolved against the catalog,
//! platform filters applied, and each image closed over its child manifests
//! and blobs.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use rayon::prelude::*;

use crate::catalog::{Catalog, Node, Repository};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::graph;
use crate::manifest::Descriptor;
use crate::media::ManifestKind;
use crate::platform::Platform;
use crate::reference::ImageRef;

/// What the user asked for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Images named; empty means every tag of the tree.
    pub refs: Vec<ImageRef>,
    /// Keep only these platforms of an index (empty keeps all).
    pub platforms: Vec<Platform>,
    /// Unknown images are skipped with a warning instead of failing.
    pub skip_missing: bool,
    /// Broken images are reported and the rest done.
    pub keep_going: bool,
    /// Take blob sizes from descriptors instead of looking every blob up:
    /// for outputs whose writing finds a missing blob anyway (a hardlink or
    /// a read of it fails, before anything is renamed into place). Without
    /// it, every blob is looked up while choosing, so that `keep_going` can
    /// leave a broken image out and `--dry-run` can name it.
    pub blobs_checked_on_write: bool,
    /// Which tags a repository named without one (or the whole tree)
    /// means: `--tag-regex`, `--semver`.
    pub tags: crate::tags::TagFilter,
    /// Each image's referrers travel with it: the manifests of its
    /// repository whose `subject` is one of its manifests, and its cosign
    /// tags (`sha256-<hex>.sig`, `.att`, `.sbom`), then theirs.
    pub referrers: bool,
}

/// One selected image, closed over everything it needs.
#[derive(Debug, Clone)]
pub struct Image {
    pub repo: String,
    /// `None` when selected by digest.
    pub tag: Option<String>,
    /// The top manifest.
    pub digest: Digest,
    /// The top manifest first, then every child kept, depth first; unique.
    pub manifests: Vec<ManifestItem>,
    /// Every config and layer of every kept manifest; unique.
    pub blobs: Vec<BlobItem>,
    /// Foreign layers skipped because the registry does not store them.
    pub foreign: Vec<Digest>,
}

#[derive(Debug, Clone)]
pub struct ManifestItem {
    pub digest: Digest,
    /// Boxed: only an index's children have one.
    pub platform: Option<Box<Platform>>,
    pub node: Arc<Node>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobItem {
    /// The digest its descriptor names it by.
    pub digest: Digest,
    /// The blob whose bytes it is: `digest` itself, or for a blob named by
    /// another algorithm than the registry stores blobs under (sha512),
    /// the sha256 blob its repository's `_layers` link names, as the
    /// registry finds it.
    pub stored: Digest,
    pub size: u64,
    pub media_type: crate::media::MediaType,
}

impl Image {
    /// `repo:tag`, or `repo@digest` when selected by digest.
    pub fn name(&self) -> String {
        match &self.tag {
            Some(t) => format!("{}:{t}", self.repo),
            None => format!("{}@{}", self.repo, self.digest),
        }
    }

    pub fn kind(&self) -> ManifestKind {
        self.manifests[0].node.manifest.kind
    }

    /// The total size of the image's unique blobs, manifests included.
    pub fn size(&self) -> u64 {
        self.manifests.iter().map(|m| m.node.size).sum::<u64>()
            + self.blobs.iter().map(|b| b.size).sum::<u64>()
    }

    /// Platforms of the kept children of an index.
    pub fn platforms(&self) -> Vec<Platform> {
        self.manifests
            .iter()
            .filter(|m| !m.node.manifest.kind.is_index())
            .filter_map(|m| m.platform.as_deref().cloned())
            .collect()
    }
}

/// The outcome of choosing.
#[derive(Debug, Default)]
pub struct Selection {
    pub images: Vec<Image>,
    /// Images that could not be selected (only with `keep_going`).
    pub failures: Vec<Error>,
    /// Names skipped with `skip_missing`.
    pub skipped: Vec<Error>,
}

impl Selection {
    /// Every unique blob of the selection, manifests excluded, as stored.
    pub fn unique_blobs(&self) -> BTreeSet<&Digest> {
        self.images
            .iter()
            .flat_map(|i| i.blobs.iter().map(|b| &b.stored))
            .collect()
    }
}

/// Resolves a request against the catalog.
pub fn select(catalog: &Catalog, req: &Request) -> Result<Selection> {
    let mut sel = Selection::default();
    let mut targets: Vec<(String, Option<String>, Digest)> = Vec::new();
    let mut seen = HashSet::new();
    let mut push = |t: (String, Option<String>, Digest)| {
        if seen.insert((t.0.clone(), t.1.clone(), t.2.clone())) {
            targets.push(t);
        }
    };
    let fail = |e: Error, sel: &mut Selection| -> Result<()> {
        if req.skip_missing && matches!(e.root(), Error::UnknownImage { .. }) {
            sel.skipped.push(e);
            Ok(())
        } else if req.keep_going {
            sel.failures.push(e);
            Ok(())
        } else {
            Err(e)
        }
    };
    if req.refs.is_empty() {
        for (repo, tag, target) in catalog.tags() {
            if !req.tags.matches(tag) {
                continue;
            }
            match target {
                Ok(d) => push((repo.into(), Some(tag.into()), d.clone())),
                Err(e) => fail(
                    Error::Shared(e.clone()).in_image(format!("{repo}:{tag}")),
                    &mut sel,
                )?,
            }
        }
    } else {
        for r in &req.refs {
            // A repository named without a tag: the tags the filters keep.
            let every = r.tag.is_none() && r.digest.is_none();
            match expand(catalog, r) {
                Ok(v) => v
                    .into_iter()
                    .filter(|t| !every || t.1.as_deref().is_none_or(|tag| req.tags.matches(tag)))
                    .for_each(&mut push),
                Err(e) => fail(e, &mut sel)?,
            }
        }
    }
    if req.referrers {
        // Referrers of referrers too, as deep as indexes may nest.
        let mut known: HashSet<_> = targets.iter().cloned().collect();
        let mut frontier = targets.clone();
        for _ in 0..graph::MAX_DEPTH {
            let found: Vec<_> = frontier
                .iter()
                .flat_map(|(repo, _, d)| referrer_targets(catalog, repo, d))
                .collect();
            frontier = found
                .into_iter()
                .filter(|t| known.insert(t.clone()))
                .collect();
            if frontier.is_empty() {
                break;
            }
            targets.extend(frontier.iter().cloned());
        }
    }
    let resolved: Vec<Result<Image>> = targets
        .par_iter()
        .map(|(repo, tag, d)| {
            let name = match tag {
                Some(t) => format!("{repo}:{t}"),
                None => format!("{repo}@{d}"),
            };
            resolve_with(
                catalog,
                repo,
                tag.clone(),
                d,
                &req.platforms,
                req.blobs_checked_on_write,
            )
            .map_err(|e| e.in_image(name))
        })
        .collect();
    for r in resolved {
        match r {
            Ok(img) => sel.images.push(img),
            Err(e) => fail(e, &mut sel)?,
        }
    }
    sel.images.sort_by_key(|i| i.name());
    Ok(sel)
}

/// The referrers in `repo` of the image whose top manifest is `top`: of it
/// and of every manifest below it, the cosign tags (`sha256-<hex>` with
/// `.sig`, `.att`, `.sbom`, or none: the OCI referrers tag) and the
/// manifests whose `subject` it is.
pub fn referrer_targets(
    catalog: &Catalog,
    repo: &str,
    top: &Digest,
) -> Vec<(String, Option<String>, Digest)> {
    struct Below<'a> {
        catalog: &'a Catalog,
        digests: Vec<Digest>,
    }
    impl graph::Visitor for Below<'_> {
        fn manifest(&mut self, step: &graph::Step) -> Result<Option<Arc<Node>>> {
            self.digests.push(step.digest.clone());
            Ok(self.catalog.node(step.digest, &step.what).ok())
        }
        fn blob(&mut self, _: &graph::Step, _: &graph::BlobRef) -> Result<()> {
            Ok(())
        }
    }
    let mut below = Below {
        catalog,
        digests: Vec::new(),
    };
    // A graph too deep has no referrers found below the limit.
    let _ = graph::walk(top, &mut below);
    let Some(r) = catalog.repos.get(repo) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for d in &below.digests {
        let base = format!("{}-{}", d.algorithm().name(), d.hex());
        for (tag, target) in &r.tags {
            let cosign = tag
                .strip_prefix(&base)
                .is_some_and(|rest| matches!(rest, "" | ".sig" | ".att" | ".sbom"));
            if let (true, Ok(t)) = (cosign, target) {
                out.push((repo.to_string(), Some(tag.clone()), t.clone()));
            }
        }
        for m in catalog.referrers(repo, d) {
            out.push((repo.to_string(), None, m));
        }
    }
    out
}

/// The repository a reference names: the first of its
/// [`ImageRef::candidates`] the tree has.
pub fn find_repo<'a>(catalog: &'a Catalog, r: &ImageRef) -> Option<&'a Repository> {
    r.candidates().iter().find_map(|n| catalog.repos.get(n))
}

/// Turns one reference into `(repo, tag, digest)` targets.
pub fn expand(catalog: &Catalog, r: &ImageRef) -> Result<Vec<(String, Option<String>, Digest)>> {
    let repo = find_repo(catalog, r).ok_or_else(|| unknown(catalog, r))?;
    let name = repo.name.clone();
    match (&r.tag, &r.digest) {
        (Some(tag), digest) => {
            let target = repo.tags.get(tag).ok_or_else(|| unknown(catalog, r))?;
            let d = target
                .as_ref()
                .map_err(|e| Error::Shared(e.clone()).in_image(format!("{name}:{tag}")))?;
            if let Some(want) = digest {
                if want != d {
                    return Err(
                        Error::invalid(format!("{name}:{tag} is {d}, not {want}")).in_image(r)
                    );
                }
            }
            Ok(vec![(name, Some(tag.clone()), d.clone())])
        }
        (None, Some(d)) => {
            if !catalog.has_revision(&name, d)? {
                return Err(unknown(catalog, r));
            }
            Ok(vec![(name, None, d.clone())])
        }
        (None, None) => {
            if repo.tags.is_empty() {
                return Err(unknown(catalog, r));
            }
            repo.tags
                .iter()
                .map(|(tag, target)| match target {
                    Ok(d) => Ok((name.clone(), Some(tag.clone()), d.clone())),
                    Err(e) => Err(Error::Shared(e.clone()).in_image(format!("{name}:{tag}"))),
                })
                .collect()
        }
    }
}

fn unknown(catalog: &Catalog, r: &ImageRef) -> Error {
    let wanted = r.to_string();
    let mut scored: Vec<(usize, String)> = catalog
        .tags()
        .map(|(repo, tag, _)| format!("{repo}:{tag}"))
        .map(|n| (levenshtein(&wanted, &n), n))
        .filter(|(d, n)| *d <= (n.len() / 3).max(3))
        .collect();
    scored.sort();
    Error::UnknownImage {
        origin: r.origin.clone(),
        name: wanted,
        nearest: scored.into_iter().take(3).map(|(_, n)| n).collect(),
    }
}

/// The edit distance between two names, for "did you mean".
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Closes one image over its children and blobs, checking every blob exists.
pub fn resolve(
    catalog: &Catalog,
    repo: &str,
    tag: Option<String>,
    digest: &Digest,
    platforms: &[Platform],
) -> Result<Image> {
    resolve_with(catalog, repo, tag, digest, platforms, false)
}

/// [`resolve`], trusting descriptor sizes when `trust_sizes` (see
/// [`Request::blobs_checked_on_write`]).
fn resolve_with(
    catalog: &Catalog,
    repo: &str,
    tag: Option<String>,
    digest: &Digest,
    platforms: &[Platform],
    trust_sizes: bool,
) -> Result<Image> {
    let mut img = Image {
        repo: repo.into(),
        tag,
        digest: digest.clone(),
        manifests: Vec::new(),
        blobs: Vec::new(),
        foreign: Vec::new(),
    };
    let mut walk = Walk {
        catalog,
        platforms,
        trust_sizes,
        img: &mut img,
        seen_blobs: HashSet::new(),
        marks: IndexMarks::default(),
    };
    let kept = graph::walk(digest, &mut walk)?;
    if kept == 0 {
        let all: Vec<String> = walk_platforms(catalog, digest);
        return Err(Error::invalid(format!(
            "no manifest for {} (the index has: {})",
            platforms
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            all.join(", ")
        )));
    }
    Ok(img)
}

/// Whether an index's entry `child` is kept for `platforms` (all when
/// empty): nested indexes are walked into, image manifests kept when their
/// platform is one of them.
pub fn keeps(platforms: &[Platform], child: &Descriptor) -> bool {
    let is_leaf = child.media_type.is_empty()
        || !ManifestKind::from_media_type(&child.media_type).is_some_and(|k| k.is_index());
    if !is_leaf || platforms.is_empty() {
        return true;
    }
    child
        .platform
        .as_ref()
        .is_some_and(|p| platforms.iter().any(|f| f.selects(p)))
}

/// Closes one image: every kept manifest, every config and layer of the
/// image manifests, children of an index filtered by platform.
struct Walk<'a> {
    catalog: &'a Catalog,
    platforms: &'a [Platform],
    trust_sizes: bool,
    img: &'a mut Image,
    seen_blobs: HashSet<Digest>,
    marks: IndexMarks,
}

/// Where each index's manifests and blobs start in an image being closed,
/// so that a nested index that keeps nothing for the wanted platforms is
/// dropped with what it brought (select's walk and pull's share it).
#[derive(Default)]
pub struct IndexMarks(HashMap<Digest, (usize, usize)>);

impl IndexMarks {
    /// Called as an index is reached.
    pub fn mark(&mut self, img: &Image, index: &Digest) {
        self.0
            .insert(index.clone(), (img.manifests.len(), img.blobs.len()));
    }

    /// Called when an index's children are done, `kept` of them kept.
    pub fn index_done(&self, img: &mut Image, step: &graph::Step, kept: usize) {
        if kept == 0 && step.depth > 0 {
            if let Some((m, b)) = self.0.get(step.digest) {
                img.manifests.truncate(*m);
                img.blobs.truncate(*b);
            }
        }
    }
}

impl graph::Visitor for Walk<'_> {
    fn manifest(&mut self, step: &graph::Step) -> Result<Option<Arc<Node>>> {
        let node = self.catalog.node(step.digest, &step.what)?;
        if node.manifest.kind.is_index() {
            self.marks.mark(self.img, step.digest);
        }
        self.img.manifests.push(ManifestItem {
            digest: step.digest.clone(),
            platform: step.entry.and_then(|e| e.platform.clone()),
            node: node.clone(),
        });
        Ok(Some(node))
    }

    fn follow(&mut self, _parent: &graph::Step, child: &Descriptor) -> bool {
        keeps(self.platforms, child)
    }

    fn blob(&mut self, _step: &graph::Step, blob: &graph::BlobRef) -> Result<()> {
        let b = blob.descriptor;
        if self.seen_blobs.contains(&b.digest) {
            return Ok(());
        }
        let stored = self.catalog.stored_as(&self.img.repo, &b.digest)?;
        let size = match (self.trust_sizes, b.size) {
            (true, Some(s)) if !b.is_foreign() => Some(s),
            _ => self.catalog.blob_size(&stored)?,
        };
        let path = || {
            self.catalog
                .store
                .display(&crate::paths::Spec::BlobData(&stored))
        };
        let size = match size {
            Some(s) => s,
            None if b.is_foreign() => {
                self.img.foreign.push(b.digest.clone());
                return Ok(());
            }
            None => {
                return Err(Error::MissingBlob {
                    digest: b.digest.clone(),
                    what: blob.what.clone(),
                    path: path(),
                });
            }
        };
        // A blob whose size is not its descriptor's is refused here (when
        // looked up) or by the sink that writes it (when trusted).
        if let Some(want) = b.size.filter(|w| *w != size) {
            return Err(Error::SizeMismatch {
                path: path(),
                digest: b.digest.clone(),
                expected: want,
                actual: size,
            });
        }
        self.seen_blobs.insert(b.digest.clone());
        self.img.blobs.push(BlobItem {
            digest: b.digest.clone(),
            stored,
            size,
            media_type: b.media_type.clone(),
        });
        Ok(())
    }

    fn index_done(&mut self, step: &graph::Step, kept: usize) -> Result<()> {
        self.marks.index_done(self.img, step, kept);
        Ok(())
    }

    fn path(&self, digest: &Digest) -> Option<std::path::PathBuf> {
        Some(
            self.catalog
                .store
                .display(&crate::paths::Spec::BlobData(digest)),
        )
    }
}

impl Image {
    /// What `digest` is to this image, for messages: `config`, `layer 2 of
    /// 3`, `manifest`.
    pub fn role_of(&self, digest: &Digest) -> Option<String> {
        if self.manifests.iter().any(|m| &m.digest == digest) {
            return Some("manifest".into());
        }
        // A blob named by another digest than the one it is stored under.
        let digest = self
            .blobs
            .iter()
            .find(|b| &b.stored == digest)
            .map_or(digest, |b| &b.digest);
        self.manifests
            .iter()
            .find_map(|m| graph::role(&m.node.manifest, digest))
    }
}

fn walk_platforms(catalog: &Catalog, digest: &Digest) -> Vec<String> {
    let Ok(node) = catalog.node(digest, "manifest") else {
        return vec![];
    };
    node.manifest
        .children
        .iter()
        .map(|c| c.platform.as_ref().map_or("?".into(), |p| p.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::levenshtein;

    #[test]
    fn edit_distance() {
        assert_eq!(levenshtein("team/app:v1", "team/app:v2"), 1);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }
}
