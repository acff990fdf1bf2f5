//! `du`: where a registry's space goes.
//!
//! One walk of the tree (the catalog, with revisions, as gc walks it) and
//! one listing of `blobs/` with one size per blob. Every tag is closed over
//! its children and blobs by [`selection`], as `pack` closes it, so that the
//! bytes of a selection are the blob bytes `pack` reports for it; what gc
//! would free comes from gc's own mark and plan, so that it is what
//! `gc --dry-run` lists.
//!
//! Definitions (also in `regkit du --help` and the README):
//! - a tag's **bytes** are those of its distinct blobs: manifests (the top
//!   one and every child of an index), configs and layers;
//! - a blob is **unique** to a tag, repository or namespace when no other
//!   one of the same level (no other tag of the tree; no tag of another
//!   repository; of another namespace) needs it: what deleting it frees;
//! - **shared with N**: how many other tags (repositories, namespaces) need
//!   at least one of its blobs;
//! - a **namespace** is a repository name's first component (`team` for
//!   `team/app`, `alpine` for `alpine`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, SystemTime};

use rayon::prelude::*;
use serde::Serialize;

use crate::blobs;
use crate::catalog::{Catalog, WalkOptions};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::gc::{self, mark, uploads, Fresh};
use crate::paths::Spec;
use crate::selection::{self, Image, Request};
use crate::store::Store;
use crate::usage::{Holders, Share};

/// How to measure.
#[derive(Debug, Clone)]
pub struct Options {
    /// How many of the largest blobs to name.
    pub top: usize,
    /// As `gc --uploads-older-than`: count these uploads as freed.
    pub uploads_older_than: Option<Duration>,
}

/// What a blob is to the manifests that name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Named by no manifest the walk read (an orphan).
    Unreferenced,
    Layer,
    Config,
    Manifest,
}

/// One namespace, repository or tag.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `team`, `team/app` or `team/app:v1` (`team/app@sha256:…` for an
    /// image chosen by digest).
    pub name: String,
    /// For repositories and tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// For tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// For tags: the top manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// For namespaces: how many repositories were measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repositories: Option<usize>,
    /// Tags measured (an image chosen by digest counts none).
    pub tags: usize,
    /// Distinct images (top manifests) measured.
    pub images: usize,
    #[serde(flatten)]
    pub share: Share,
}

/// The whole tree.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tree {
    /// Every blob under `blobs/` (a folder without `data` is none).
    pub blobs: usize,
    pub bytes: u64,
    /// Every tag of the tree, and those that could not be read.
    pub tags: usize,
    pub unreadable_tags: usize,
    /// The distinct blobs of every tag.
    pub tagged_blobs: usize,
    pub tagged_bytes: u64,
    /// Blobs no tag needs that `gc --delete-untagged` keeps: referrers
    /// (signatures, SBOMs) of kept manifests and what they need, and what
    /// a damaged repository kept whole holds.
    pub kept_untagged_blobs: usize,
    pub kept_untagged_bytes: u64,
}

/// The images measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Selected {
    pub images: usize,
    /// The distinct blobs of the selection: what `pack` of it holds.
    pub blobs: usize,
    pub bytes: u64,
    /// The sum of each image's own size (as `ls` shows them).
    pub image_bytes: u64,
    /// `image_bytes / bytes`: how many times sharing saves the space.
    pub dedupe: f64,
}

/// What a gc would remove now.
#[derive(Debug, Default, Serialize)]
pub struct Freed {
    pub blobs: usize,
    pub bytes: u64,
    /// Untagged manifests removed (revision links).
    pub manifests: usize,
    pub layer_links: usize,
    pub uploads: usize,
    pub upload_bytes: u64,
    /// regkit's own stale temporaries.
    pub leftovers: usize,
    pub leftover_bytes: u64,
    /// Repositories gc keeps whole because of damage (it collects the rest).
    pub kept_whole: Vec<String>,
    /// What could not be read in them, each with its path.
    #[serde(skip)]
    pub reasons: Vec<Error>,
}

/// gc's figures, from its own planner.
#[derive(Debug, Default, Serialize)]
pub struct Gc {
    /// `gc --dry-run`: orphans.
    pub now: Freed,
    /// `gc --dry-run --delete-untagged`: orphans and untagged manifests
    /// with what only they need.
    pub delete_untagged: Freed,
    /// Every unfinished upload, whatever its age.
    pub uploads: usize,
    pub upload_bytes: u64,
    /// Uploads written to in the last 10 minutes: a registry may be
    /// writing, and gc refuses to run (without `--force`).
    pub recent_uploads: usize,
}

/// One of the largest blobs.
#[derive(Debug, Clone, Serialize)]
pub struct LargeBlob {
    pub digest: Digest,
    pub size: u64,
    pub kind: Kind,
    /// How many tags need it.
    pub tags: usize,
    /// The first of them (at most [`HELD_BY_SHOWN`]), sorted.
    pub held_by: Vec<String>,
    /// `gc` or `gc --delete-untagged` when that removes it.
    pub collected_by: Option<&'static str>,
}

/// How many tags a large blob names.
pub const HELD_BY_SHOWN: usize = 20;

/// A repository of at least two images that share no blob.
#[derive(Debug, Clone, Serialize)]
pub struct Unrelated {
    pub repository: String,
    pub tags: usize,
    pub images: usize,
    pub bytes: u64,
}

/// Everything `du` found.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The `v2` folder measured.
    pub root: String,
    pub tree: Tree,
    pub selected: Selected,
    pub gc: Gc,
    /// Sorted by bytes, largest first.
    pub namespaces: Vec<Row>,
    pub repositories: Vec<Row>,
    pub tags: Vec<Row>,
    pub largest_blobs: Vec<LargeBlob>,
    /// Repositories whose images share no blob with one another.
    pub unrelated_repositories: Vec<Unrelated>,
    /// Images that could not be measured.
    #[serde(skip)]
    pub failures: Vec<Error>,
    /// Names skipped with `--skip-missing`.
    #[serde(skip)]
    pub skipped: Vec<Error>,
}

/// Every blob, numbered: first the sha256 blobs listed under `blobs/`, in
/// the order of their digests, kept as their 32 bytes (a third of a
/// digest's text); then any other (another algorithm, or one an image
/// needs that the listing missed because it appeared since).
struct Blobs {
    sha256: Vec<[u8; 32]>,
    others: Vec<Digest>,
    other_numbers: HashMap<Digest, u32>,
    sizes: Vec<u64>,
    present: Vec<bool>,
}

fn sha256_bytes(d: &Digest) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    (d.algorithm() == crate::digest::Algorithm::Sha256
        && hex::decode_to_slice(d.hex(), &mut out).is_ok())
    .then_some(out)
}

impl Blobs {
    fn new(listed: Vec<(Digest, Option<u64>)>) -> Blobs {
        let (mut sha256, mut others): (Vec<_>, Vec<_>) = (Vec::new(), Vec::new());
        for (d, size) in listed {
            match sha256_bytes(&d) {
                Some(k) => sha256.push((k, size)),
                None => others.push((d, size)),
            }
        }
        sha256.sort_unstable();
        let mut b = Blobs {
            present: sha256.iter().map(|s| s.1.is_some()).collect(),
            sizes: sha256.iter().map(|s| s.1.unwrap_or(0)).collect(),
            sha256: sha256.into_iter().map(|s| s.0).collect(),
            others: Vec::new(),
            other_numbers: HashMap::new(),
        };
        for (d, size) in others {
            b.push_other(d, size);
        }
        b
    }

    fn len(&self) -> usize {
        self.sizes.len()
    }

    fn find(&self, d: &Digest) -> Option<u32> {
        if let Some(k) = sha256_bytes(d) {
            if let Ok(i) = self.sha256.binary_search(&k) {
                return Some(i as u32);
            }
        }
        self.other_numbers.get(d).copied()
    }

    fn digest(&self, b: u32) -> Digest {
        match self.sha256.get(b as usize) {
            Some(k) => Digest::from_parts("sha256", &hex::encode(k)).expect("a digest"),
            None => self.others[b as usize - self.sha256.len()].clone(),
        }
    }

    fn push_other(&mut self, d: Digest, size: Option<u64>) -> u32 {
        let i = self.len() as u32;
        self.present.push(size.is_some());
        self.sizes.push(size.unwrap_or(0));
        self.other_numbers.insert(d.clone(), i);
        self.others.push(d);
        i
    }

    fn add(&mut self, d: &Digest, size: u64) -> u32 {
        match self.find(d) {
            Some(i) => i,
            None => self.push_other(d.clone(), Some(size)),
        }
    }
}

/// An image reduced to the numbers of its distinct blobs.
struct Measured {
    name: String,
    repo: u32,
    tag: Option<String>,
    /// Its number among the tags of the tree, if it is one.
    tag_id: Option<u32>,
    digest: Digest,
    /// Its distinct blobs, as `pack` ships them.
    blobs: Vec<u32>,
    /// The blobs gc keeps for it besides those: its untagged referrers'.
    kept: Vec<u32>,
}

/// Numbered blobs of an image, and those the listing missed.
type Numbered = (Vec<u32>, Vec<(Digest, u64)>);

/// Numbers an image's blobs; those the listing missed are added after.
fn number(blobs: &Blobs, img: &Image, out: &mut Numbered) {
    let items = img
        .manifests
        .iter()
        .map(|m| (&m.digest, m.node.size))
        .chain(img.blobs.iter().map(|b| (&b.stored, b.size)));
    for (d, size) in items {
        match blobs.find(d) {
            Some(i) => out.0.push(i),
            None => out.1.push((d.clone(), size)),
        }
    }
}

fn finish(blobs: &mut Blobs, (mut known, unlisted): Numbered) -> Vec<u32> {
    for (d, size) in unlisted {
        known.push(blobs.add(&d, size));
    }
    known.sort_unstable();
    known.dedup();
    known
}

/// Subject → the manifests of one repository that refer to it (OCI
/// referrers), among those with a revision link, as gc's mark finds them.
type Referrers = HashMap<Digest, Vec<Digest>>;

fn referrers(catalog: &Catalog, repo: &crate::catalog::Repository) -> Referrers {
    let mut out: Referrers = HashMap::new();
    for d in &repo.revisions {
        if let Some(Ok(n)) = catalog.manifests.get(d) {
            if let Some(s) = &n.manifest.subject {
                out.entry(s.digest.clone()).or_default().push(d.clone());
            }
        }
    }
    out
}

/// An image numbered as `pack` ships it, and the blobs gc keeps because
/// of it besides: its referrers, theirs, and what they need, each closed
/// as an image is (a referrer that cannot be read keeps nothing here).
fn measure(
    catalog: &Catalog,
    blobs: &Blobs,
    refs: &Referrers,
    img: &Image,
) -> (Numbered, Numbered) {
    let mut own: Numbered = Default::default();
    number(blobs, img, &mut own);
    let mut kept: Numbered = Default::default();
    if refs.is_empty() {
        return (own, kept);
    }
    let mut seen: std::collections::HashSet<Digest> =
        img.manifests.iter().map(|m| m.digest.clone()).collect();
    let mut queue: Vec<Digest> = seen.iter().cloned().collect();
    while let Some(d) = queue.pop() {
        for r in refs.get(&d).into_iter().flatten() {
            if !seen.insert(r.clone()) {
                continue;
            }
            let Ok(referrer) = selection::resolve(catalog, &img.repo, None, r, &[]) else {
                continue;
            };
            number(blobs, &referrer, &mut kept);
            for m in &referrer.manifests {
                seen.insert(m.digest.clone());
                queue.push(m.digest.clone());
            }
        }
    }
    (own, kept)
}

/// `kept` without the blobs of `own`.
fn besides(kept: Vec<u32>, own: &[u32]) -> Vec<u32> {
    kept.into_iter()
        .filter(|b| own.binary_search(b).is_err())
        .collect()
}

/// The first component of a repository name.
pub fn namespace_of(repo: &str) -> &str {
    repo.split('/').next().unwrap_or(repo)
}

/// Repositories (in catalog order) and namespaces (sorted), numbered.
struct Names<'a> {
    repos: Vec<&'a str>,
    namespaces: Vec<&'a str>,
    /// Repository number → namespace number.
    ns_of_repo: Vec<u32>,
}

impl<'a> Names<'a> {
    fn new(catalog: &'a Catalog) -> Names<'a> {
        let repos: Vec<&str> = catalog.repos.keys().map(String::as_str).collect();
        let mut namespaces: Vec<&str> = repos.iter().map(|r| namespace_of(r)).collect();
        namespaces.sort_unstable();
        namespaces.dedup();
        let ns_of_repo = repos
            .iter()
            .map(|r| namespaces.binary_search(&namespace_of(r)).expect("listed") as u32)
            .collect();
        Names {
            repos,
            namespaces,
            ns_of_repo,
        }
    }

    fn repo(&self, name: &str) -> u32 {
        self.repos.binary_search(&name).expect("a repository") as u32
    }

    fn namespace_of(&self, repo: u32) -> u32 {
        self.ns_of_repo[repo as usize]
    }
}

/// The rows of every level, largest first.
struct Levels {
    namespaces: Vec<Row>,
    repositories: Vec<Row>,
    tags: Vec<Row>,
    unrelated: Vec<Unrelated>,
    /// Who keeps each blob, by tag.
    by_tag: Holders,
}

/// Measures the tree at `root`, and the images `req` names (every tag
/// when it names none).
pub fn run(root: &Path, req: &Request, opts: &Options) -> Result<Report> {
    // As for gc: anything written from now on is fresh.
    let started = SystemTime::now();
    let store = Store::open(root)?;
    // The walk and the sizes of blobs/ need nothing of each other.
    let (catalog, sized) = rayon::join(
        || {
            Catalog::load(
                &store,
                WalkOptions {
                    links: true,
                    revisions: true,
                    repos: None,
                    // Every tag is measured.
                    skip_tag_targets: false,
                },
            )
        },
        || blobs::sizes(&store),
    );
    let mut catalog = catalog?;
    let sized = sized?;
    crate::interrupt::check()?;
    // gc's two plans below need the same listing: give it to them.
    if catalog.listed_blobs().is_none() {
        catalog.take_blob_listing(
            sized
                .iter()
                .filter_map(|(d, n)| Some((d.clone(), (*n)?)))
                .collect(),
        );
    }
    // Closing images asks the catalog the size of every config and layer:
    // give it those found, so that it looks none up again.
    catalog.remember_blob_sizes(
        sized
            .iter()
            .filter(|(d, _)| !catalog.manifests.contains_key(d))
            .cloned(),
    );
    let mut blobs = Blobs::new(sized);

    let names = Names::new(&catalog);

    let refs: Vec<Referrers> = catalog
        .repos
        .values()
        .collect::<Vec<_>>()
        .par_iter()
        .map(|r| referrers(&catalog, r))
        .collect();

    // Every tag of the tree, closed as pack closes it, and what gc keeps
    // for it besides (its referrers).
    let tag_list: Vec<(&str, &str, &crate::catalog::TagTarget)> = catalog.tags().collect();
    // gc's figures need only the walk: work them out meanwhile.
    let (closed, gc): (Vec<Result<(Numbered, Numbered)>>, _) = rayon::join(
        || {
            tag_list
                .par_iter()
                .map(|(repo, tag, target)| {
                    let name = format!("{repo}:{tag}");
                    let d = target
                        .as_ref()
                        .map_err(|e| Error::Shared(e.clone()).in_image(&name))?;
                    let img = selection::resolve(&catalog, repo, Some(tag.to_string()), d, &[])
                        .map_err(|e| e.in_image(&name))?;
                    Ok(measure(
                        &catalog,
                        &blobs,
                        &refs[names.repo(repo) as usize],
                        &img,
                    ))
                })
                .collect()
        },
        || gc_figures(&catalog, &blobs, opts, started),
    );
    crate::interrupt::check()?;
    let mut tags: Vec<Measured> = Vec::with_capacity(tag_list.len());
    let mut tag_failures = Vec::new();
    for ((repo, tag, target), c) in tag_list.iter().zip(closed) {
        match c {
            Ok((own, kept)) => {
                let own = finish(&mut blobs, own);
                let kept = besides(finish(&mut blobs, kept), &own);
                tags.push(Measured {
                    name: format!("{repo}:{tag}"),
                    repo: names.repo(repo),
                    tag: Some(tag.to_string()),
                    tag_id: Some(tags.len() as u32),
                    digest: target.as_ref().expect("resolved").clone(),
                    blobs: own,
                    kept,
                })
            }
            Err(e) => tag_failures.push(e),
        }
    }
    let unreadable_tags = tag_failures.len();

    // The images asked for.
    let everything = req.refs.is_empty() && req.platforms.is_empty();
    let (named, failures, skipped) = if everything {
        (Vec::new(), tag_failures, Vec::new())
    } else {
        let req = Request {
            keep_going: true,
            blobs_checked_on_write: false,
            ..req.clone()
        };
        let sel = selection::select(&catalog, &req)?;
        let numbered: Vec<_> = sel
            .images
            .par_iter()
            .map(|i| measure(&catalog, &blobs, &refs[names.repo(&i.repo) as usize], i))
            .collect();
        let mut chosen = Vec::with_capacity(numbered.len());
        for (img, (own, kept)) in sel.images.iter().zip(numbered) {
            let repo = names.repo(&img.repo);
            let own = finish(&mut blobs, own);
            let kept = besides(finish(&mut blobs, kept), &own);
            let tag_id = img.tag.as_ref().and_then(|t| {
                tags.binary_search_by(|m| (m.repo, m.tag.as_deref()).cmp(&(repo, Some(t.as_str()))))
                    .ok()
                    .map(|i| i as u32)
            });
            chosen.push(Measured {
                name: img.name(),
                repo,
                tag: img.tag.clone(),
                tag_id,
                digest: img.digest.clone(),
                blobs: own,
                kept,
            });
        }
        (chosen, sel.failures, sel.skipped)
    };
    let chosen: Vec<&Measured> = if everything {
        tags.iter().collect()
    } else {
        named.iter().collect()
    };
    crate::interrupt::check()?;

    let n = blobs.len();
    let sizes = &blobs.sizes;
    let levels = levels(&tags, &chosen, &names, &blobs);

    // Totals.
    let union = |list: &mut dyn Iterator<Item = &Measured>| -> Vec<bool> {
        let mut set = vec![false; n];
        for m in list {
            for &b in &m.blobs {
                set[b as usize] = true;
            }
        }
        set
    };
    let tagged = union(&mut tags.iter());
    let selected_set = union(&mut chosen.iter().copied());
    let sum = |set: &[bool]| -> (usize, u64) {
        set.iter()
            .zip(sizes)
            .filter(|(s, _)| **s)
            .fold((0, 0), |(c, b), (_, sz)| (c + 1, b + sz))
    };
    let (tagged_blobs, tagged_bytes) = sum(&tagged);
    let (sel_blobs, sel_bytes) = sum(&selected_set);
    let image_bytes: u64 = levels.tags.iter().map(|r| r.share.bytes).sum();
    let stored = blobs
        .present
        .iter()
        .zip(sizes)
        .filter(|(p, _)| **p)
        .fold((0usize, 0u64), |(c, b), (_, s)| (c + 1, b + s));

    // What gc would free, from gc's own mark and plan.
    let (gc, collected) = gc?;
    // (Blobs numbered after gc's plans were made are none it removes.)
    let freed = |i: usize, b: usize| collected[i].get(b).copied().unwrap_or(false);
    let kept_untagged = (0..n)
        .filter(|&b| blobs.present[b] && !tagged[b] && !freed(1, b))
        .fold((0usize, 0u64), |(c, s), b| (c + 1, s + sizes[b]));

    // The largest blobs: of the selection when images are named, else of
    // the whole tree.
    let mut candidates: Vec<u32> = (0..n as u32)
        .filter(|&b| {
            if everything {
                blobs.present[b as usize]
            } else {
                selected_set[b as usize]
            }
        })
        .collect();
    // Largest first; among equals, in the order of their digests.
    let order = |a: &u32, b: &u32| sizes[*b as usize].cmp(&sizes[*a as usize]).then(a.cmp(b));
    if candidates.len() > opts.top {
        candidates.select_nth_unstable_by(opts.top, order);
        candidates.truncate(opts.top);
    }
    candidates.sort_unstable_by(order);
    let top: Vec<Digest> = candidates.iter().map(|&b| blobs.digest(b)).collect();
    let top_kinds = kinds(&catalog, &top.iter().collect::<Vec<_>>());
    let largest_blobs = candidates
        .iter()
        .zip(top)
        .zip(top_kinds)
        .map(|((&b, digest), kind)| {
            let holders = levels.by_tag.of(b);
            LargeBlob {
                digest,
                size: sizes[b as usize],
                kind,
                tags: holders.len(),
                held_by: holders
                    .iter()
                    .take(HELD_BY_SHOWN)
                    .map(|&t| tags[t as usize].name.clone())
                    .collect(),
                collected_by: if freed(0, b as usize) {
                    Some("gc")
                } else if freed(1, b as usize) {
                    Some("gc --delete-untagged")
                } else {
                    None
                },
            }
        })
        .collect();

    let report = Report {
        root: store.v2().display().to_string(),
        tree: Tree {
            blobs: stored.0,
            bytes: stored.1,
            tags: tag_list.len(),
            unreadable_tags,
            tagged_blobs,
            tagged_bytes,
            kept_untagged_blobs: kept_untagged.0,
            kept_untagged_bytes: kept_untagged.1,
        },
        selected: Selected {
            images: chosen.len(),
            blobs: sel_blobs,
            bytes: sel_bytes,
            image_bytes,
            dedupe: if sel_bytes == 0 {
                1.0
            } else {
                image_bytes as f64 / sel_bytes as f64
            },
        },
        gc,
        namespaces: levels.namespaces,
        repositories: levels.repositories,
        tags: levels.tags,
        largest_blobs,
        unrelated_repositories: levels.unrelated,
        failures,
        skipped,
    };
    // Freeing the graph of a big tree takes a while; nobody waits for it.
    drop(chosen);
    std::thread::spawn(move || drop((catalog, blobs, tags, named)));
    Ok(report)
}

/// The rows of the chosen images at each level. Who keeps which blob is
/// counted over every tag of the tree, as gc's mark keeps it (an image,
/// its children, blobs and referrers).
fn levels(tags: &[Measured], chosen: &[&Measured], names: &Names, blobs: &Blobs) -> Levels {
    let n = blobs.len();
    let pairs = |level: &dyn Fn(&Measured) -> u32| -> Vec<(u32, u32)> {
        tags.iter()
            .flat_map(|t| {
                let h = level(t);
                t.blobs.iter().chain(&t.kept).map(move |&b| (b, h))
            })
            .collect()
    };
    let by_tag = Holders::build(n, tags.len(), pairs(&|t| t.tag_id.expect("a tag")));
    let by_repo = Holders::build(n, names.repos.len(), pairs(&|t| t.repo));
    let by_ns = Holders::build(
        n,
        names.namespaces.len(),
        pairs(&|t| names.namespace_of(t.repo)),
    );
    let sizes = &blobs.sizes;

    let tag_rows: Vec<Row> = chosen
        .par_iter()
        .map_init(
            || by_tag.scratch(),
            |s, m| Row {
                name: m.name.clone(),
                namespace: Some(names.namespaces[names.namespace_of(m.repo) as usize].to_string()),
                repository: Some(names.repos[m.repo as usize].to_string()),
                digest: Some(m.digest.clone()),
                repositories: None,
                tags: usize::from(m.tag.is_some()),
                images: 1,
                share: by_tag.share_keeping(m.tag_id, &m.blobs, &m.kept, sizes, s),
            },
        )
        .collect();

    // Repositories and namespaces: the union of their chosen images.
    let mut of_repo: BTreeMap<u32, Vec<&Measured>> = BTreeMap::new();
    for &m in chosen {
        of_repo.entry(m.repo).or_default().push(m);
    }
    let groups: Vec<(u32, Vec<&Measured>)> = of_repo.into_iter().collect();
    let repo_rows: Vec<Row> = groups
        .par_iter()
        .map_init(
            || by_repo.scratch(),
            |s, (r, ms)| {
                let mut row = group_row(ms, &by_repo, *r, sizes, s);
                row.name = names.repos[*r as usize].to_string();
                row.namespace = Some(names.namespaces[names.namespace_of(*r) as usize].to_string());
                row
            },
        )
        .collect();
    let unrelated: Vec<Unrelated> = groups
        .par_iter()
        .filter_map(|(r, ms)| unrelated(names.repos[*r as usize], ms, sizes))
        .collect();
    let mut of_ns: BTreeMap<u32, Vec<&Measured>> = BTreeMap::new();
    for &m in chosen {
        of_ns.entry(names.namespace_of(m.repo)).or_default().push(m);
    }
    let ns_groups: Vec<(u32, Vec<&Measured>)> = of_ns.into_iter().collect();
    let ns_rows: Vec<Row> = ns_groups
        .par_iter()
        .map_init(
            || by_ns.scratch(),
            |s, (ns, ms)| {
                let mut row = group_row(ms, &by_ns, *ns, sizes, s);
                row.name = names.namespaces[*ns as usize].to_string();
                let mut repos: Vec<u32> = ms.iter().map(|m| m.repo).collect();
                repos.sort_unstable();
                repos.dedup();
                row.repositories = Some(repos.len());
                row
            },
        )
        .collect();
    let by_size = |a: &Row, b: &Row| {
        b.share
            .bytes
            .cmp(&a.share.bytes)
            .then_with(|| a.name.cmp(&b.name))
    };
    let (mut namespaces, mut repositories, mut tags, mut unrelated) =
        (ns_rows, repo_rows, tag_rows, unrelated);
    namespaces.sort_by(by_size);
    repositories.sort_by(by_size);
    tags.sort_by(by_size);
    unrelated.sort_by(|a, b| {
        b.bytes
            .cmp(&a.bytes)
            .then_with(|| a.repository.cmp(&b.repository))
    });
    Levels {
        namespaces,
        repositories,
        tags,
        unrelated,
        by_tag,
    }
}

/// What each of `wanted` is to the manifests the walk read.
fn kinds(catalog: &Catalog, wanted: &[&Digest]) -> Vec<Kind> {
    let mut out: HashMap<&Digest, Kind> = wanted.iter().map(|d| (*d, Kind::Unreferenced)).collect();
    let mut mark = |d: &Digest, k: Kind| {
        if let Some(slot) = out.get_mut(d) {
            *slot = (*slot).max(k);
        }
    };
    for (d, node) in &catalog.manifests {
        let Ok(node) = node else { continue };
        mark(d, Kind::Manifest);
        if let Some(c) = &node.manifest.config {
            mark(&c.digest, Kind::Config);
        }
        for l in &node.manifest.layers {
            mark(&l.digest, Kind::Layer);
        }
    }
    wanted.iter().map(|d| out[d]).collect()
}

/// The row of a repository or namespace `me`: the union of its images.
fn group_row(
    ms: &[&Measured],
    holders: &Holders,
    me: u32,
    sizes: &[u64],
    s: &mut crate::usage::Scratch,
) -> Row {
    let mut all: Vec<u32> = ms.iter().flat_map(|m| m.blobs.iter().copied()).collect();
    all.sort_unstable();
    all.dedup();
    let mut kept: Vec<u32> = ms.iter().flat_map(|m| m.kept.iter().copied()).collect();
    kept.sort_unstable();
    kept.dedup();
    let kept = besides(kept, &all);
    let mut digests: Vec<&Digest> = ms.iter().map(|m| &m.digest).collect();
    digests.sort();
    digests.dedup();
    Row {
        name: String::new(),
        namespace: None,
        repository: None,
        digest: None,
        repositories: None,
        tags: ms.iter().filter(|m| m.tag.is_some()).count(),
        images: digests.len(),
        share: holders.share_keeping(Some(me), &all, &kept, sizes, s),
    }
}

/// `Some` when the repository's distinct images (two at least) share no
/// blob with one another.
fn unrelated(name: &str, ms: &[&Measured], sizes: &[u64]) -> Option<Unrelated> {
    let mut distinct: Vec<&Measured> = ms.to_vec();
    distinct.sort_by(|a, b| a.digest.cmp(&b.digest));
    distinct.dedup_by(|a, b| a.digest == b.digest);
    if distinct.len() < 2 {
        return None;
    }
    let mut all: Vec<u32> = distinct
        .iter()
        .flat_map(|m| m.blobs.iter().copied())
        .collect();
    all.sort_unstable();
    if all.windows(2).any(|w| w[0] == w[1]) {
        return None;
    }
    Some(Unrelated {
        repository: name.to_string(),
        tags: ms.iter().filter(|m| m.tag.is_some()).count(),
        images: distinct.len(),
        bytes: all.iter().map(|&b| sizes[b as usize]).sum(),
    })
}

/// gc's plan without and with `--delete-untagged`, as `gc --dry-run` makes
/// it (what was written since `started` is fresh, and kept), and for each
/// the blobs it removes.
fn gc_figures(
    catalog: &Catalog,
    blobs: &Blobs,
    opts: &Options,
    started: SystemTime,
) -> Result<(Gc, [Vec<bool>; 2])> {
    let store = &catalog.store;
    let now = SystemTime::now();
    let found = uploads::find(store)?;
    let mut out = Gc {
        uploads: found.len(),
        upload_bytes: found.iter().map(|u| u.bytes).sum(),
        recent_uploads: gc::recent(&found, now).len(),
        ..Gc::default()
    };
    let mut collected: [Vec<bool>; 2] = [Vec::new(), Vec::new()];
    let fresh = Fresh::new(store, started, false)?;
    for (i, delete_untagged) in [false, true].into_iter().enumerate() {
        crate::interrupt::check()?;
        let marked = mark::mark(catalog, delete_untagged, &|repo, d| {
            fresh.is(&Spec::RevisionLink(repo, d))
        })?;
        let gc_opts = gc::Options {
            dry_run: true,
            delete_untagged,
            uploads_older_than: opts.uploads_older_than,
            force: false,
            quiet: true,
        };
        let plan = gc::plan(catalog, &marked, &found, &gc_opts, now, &fresh)?;
        let mut set = vec![false; blobs.len()];
        for b in &plan.blobs {
            if let Some(i) = blobs.find(&b.digest) {
                set[i as usize] = true;
            }
        }
        collected[i] = set;
        let freed = Freed {
            blobs: plan.blobs.len(),
            bytes: plan.blob_bytes(),
            manifests: plan.manifests.len(),
            layer_links: plan.layer_links.len(),
            uploads: plan.uploads.len(),
            upload_bytes: plan.upload_bytes(),
            leftovers: plan.leftovers.len(),
            leftover_bytes: plan.leftover_bytes(),
            kept_whole: marked
                .kept_whole
                .iter()
                .map(|k| k.repository.clone())
                .collect(),
            reasons: marked
                .kept_whole
                .into_iter()
                .flat_map(|k| k.reasons)
                .collect(),
        };
        if delete_untagged {
            out.delete_untagged = freed;
        } else {
            out.now = freed;
        }
    }
    Ok((out, collected))
}
