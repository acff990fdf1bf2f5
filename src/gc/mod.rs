//! Offline garbage collection: [`mark`] what the manifests need, plan what
//! nobody needs, and [`sweep`] it in an order that leaves the tree servable
//! at every step.

pub mod mark;
pub mod sweep;
pub mod time;
pub mod uploads;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime};

use rayon::prelude::*;
use serde::Serialize;

use crate::blobs;
use crate::catalog::Catalog;
use crate::digest::Digest;
use crate::error::Result;
use crate::paths::Spec;
use crate::store::Store;
use uploads::Upload;

/// What was written to the tree since gc started (a writer that takes no
/// lock, such as a running registry): never removed.
pub struct Fresh<'a> {
    store: &'a Store,
    since: SystemTime,
    /// In a bucket: every key written since, from one flat listing (a
    /// `HEAD` per file would cost a request each).
    listed: Option<HashSet<String>>,
}

impl<'a> Fresh<'a> {
    /// Files changed after `since` (when gc started, by the clock that
    /// stamps the tree's files) are fresh.
    /// A dry run (`look` false) removes nothing: in a bucket it does not
    /// list for what is new.
    pub fn new(store: &'a Store, since: SystemTime, look: bool) -> Result<Fresh<'a>> {
        let mut f = Fresh {
            store,
            since,
            listed: None,
        };
        if look {
            f.refresh()?;
        } else if store.s3().is_some() {
            f.listed = Some(HashSet::new());
        }
        Ok(f)
    }

    /// Looks again (in a bucket: lists again), right before removing.
    pub fn refresh(&mut self) -> Result<()> {
        let Some(bucket) = self.store.s3() else {
            return Ok(());
        };
        let mut fresh = HashSet::new();
        for root in [crate::paths::REPOSITORIES, crate::paths::BLOBS] {
            bucket
                .walk(std::path::Path::new(root), &mut |key, o| {
                    // A time not given counts as new: kept.
                    if o.modified.is_none_or(|t| t > self.since) {
                        fresh.insert(format!("{root}/{key}"));
                    }
                })
                .map_err(|e| {
                    crate::Error::io("list folder", self.store.display(&Spec::BlobsRoot), e)
                })?;
        }
        self.listed = Some(fresh);
        Ok(())
    }

    /// Whether `spec` was written since gc started (when it cannot be
    /// told, it counts as fresh: kept).
    pub fn is(&self, spec: &Spec) -> bool {
        match &self.listed {
            Some(set) => set.contains(&spec.rel()),
            None => self.store.written_since(spec, self.since).unwrap_or(true),
        }
    }
}

/// Uploads written to this recently mean a registry may be at work.
pub const RECENT_UPLOAD: Duration = Duration::from_secs(10 * 60);

/// How to collect.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub dry_run: bool,
    pub delete_untagged: bool,
    /// Remove uploads not written to for this long.
    pub uploads_older_than: Option<Duration>,
    /// Run even though uploads were written to recently.
    pub force: bool,
    pub quiet: bool,
}

/// A manifest to remove from a repository: its revision link and the
/// entries of every tag's index that name it.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestDel {
    pub repository: String,
    pub digest: Digest,
    /// Tags whose `index/` names it.
    pub tags: Vec<String>,
}

/// A `_layers` link to a blob that is being removed.
#[derive(Debug, Clone, Serialize)]
pub struct LayerLinkDel {
    pub repository: String,
    pub digest: Digest,
}

#[derive(Debug, Clone, Serialize)]
pub struct BlobDel {
    pub digest: Digest,
    pub size: u64,
}

/// Everything gc removes, in the order it removes it.
#[derive(Debug, Default, Serialize)]
pub struct Plan {
    pub manifests: Vec<ManifestDel>,
    pub layer_links: Vec<LayerLinkDel>,
    pub blobs: Vec<BlobDel>,
    pub uploads: Vec<Upload>,
    /// regkit's own temporaries left by runs that ended (killed, or the
    /// machine went down): stale ones only.
    pub leftovers: Vec<crate::store::Leftover>,
    /// Unmarked blobs left because they cannot be read (a FIFO or a folder
    /// in place of `data`), each with its path.
    #[serde(skip)]
    pub unreadable: Vec<crate::Error>,
}

impl Plan {
    pub fn blob_bytes(&self) -> u64 {
        self.blobs.iter().map(|b| b.size).sum()
    }

    pub fn leftover_bytes(&self) -> u64 {
        self.leftovers.iter().map(|l| l.bytes).sum()
    }

    pub fn upload_bytes(&self) -> u64 {
        self.uploads.iter().map(|u| u.bytes).sum()
    }

    /// How many files and folders the sweep removes (for progress).
    pub fn steps(&self) -> u64 {
        (self.manifests.len()
            + self.layer_links.len()
            + self.blobs.len()
            + self.uploads.len()
            + self.leftovers.len()) as u64
    }
}

/// Plans the sweep from a mark: untagged manifests, `_layers` links and
/// blobs nobody marked, stale uploads. Nothing of a repository kept whole
/// goes, and no `_layers` link written since gc started, nor its blob.
pub fn plan(
    catalog: &Catalog,
    marked: &mark::Marked,
    uploads: &[Upload],
    opts: &Options,
    now: SystemTime,
    fresh: &Fresh,
) -> Result<Plan> {
    let store = &catalog.store;
    // Tag index entries naming each manifest to remove.
    let mut by_repo: BTreeMap<&str, Vec<&Digest>> = BTreeMap::new();
    for (repo, d) in &marked.untagged {
        by_repo.entry(repo).or_default().push(d);
    }
    let per_repo: Vec<Vec<ManifestDel>> = by_repo
        .par_iter()
        .map(|(repo, digests)| {
            let mut index: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
            for tag in catalog.repos[*repo].tags.keys() {
                for d in store.list_digests(&Spec::TagIndexRoot(repo, tag))? {
                    index.entry(d).or_default().push(tag.clone());
                }
            }
            let mut v: Vec<ManifestDel> = digests
                .iter()
                .map(|d| ManifestDel {
                    repository: repo.to_string(),
                    digest: (*d).clone(),
                    tags: index.remove(*d).unwrap_or_default(),
                })
                .collect();
            v.sort_by(|a, b| a.digest.cmp(&b.digest));
            Ok(v)
        })
        .collect::<Result<_>>()?;
    let manifests = per_repo.into_iter().flatten().collect();

    let candidates: Vec<LayerLinkDel> = catalog
        .repos
        .values()
        .filter(|r| !marked.is_whole(&r.name))
        .flat_map(|r| {
            r.layers
                .iter()
                .filter(|d| !marked.blobs.contains(*d))
                .map(|d| LayerLinkDel {
                    repository: r.name.clone(),
                    digest: d.clone(),
                })
        })
        .collect();
    let (fresh_links, layer_links): (Vec<LayerLinkDel>, Vec<LayerLinkDel>) = candidates
        .into_par_iter()
        .partition(|l| fresh.is(&Spec::LayerLink(&l.repository, &l.digest)));
    let linked_fresh: HashSet<Digest> = fresh_links.into_iter().map(|l| l.digest).collect();

    let garbage = |d: &Digest| !marked.blobs.contains(d) && !linked_fresh.contains(d);
    let sized: Vec<Result<Option<BlobDel>>> = match catalog.listed_blobs() {
        // Listed with their sizes already (a bucket).
        Some(listed) => listed
            .iter()
            .filter(|(d, _)| garbage(d) && !fresh.is(&Spec::BlobData(d)))
            .map(|(d, size)| {
                Ok(Some(BlobDel {
                    digest: d.clone(),
                    size: *size,
                }))
            })
            .collect(),
        None => {
            let unmarked: Vec<Digest> = blobs::list(store)?
                .into_iter()
                .filter(|d| garbage(d))
                .collect();
            unmarked
                .par_iter()
                .map(|d| {
                    if fresh.is(&Spec::BlobData(d)) {
                        return Ok(None);
                    }
                    Ok(store.blob_size(d)?.map(|size| BlobDel {
                        digest: d.clone(),
                        size,
                    }))
                })
                .collect()
        }
    };
    // A blob folder without `data` is no blob (distribution skips it too);
    // one whose `data` cannot be read is left, and said.
    let mut blobs = Vec::new();
    let mut unreadable = Vec::new();
    for s in sized {
        match s {
            Ok(b) => blobs.extend(b),
            Err(e) => unreadable.push(e),
        }
    }

    let uploads = match opts.uploads_older_than {
        Some(age) => uploads
            .iter()
            .filter(|u| older(now, u.started, age) && older(now, u.last_write, age))
            .cloned()
            .collect(),
        None => Vec::new(),
    };
    let leftovers = store
        .leftovers(now)?
        .into_iter()
        .filter(|l| l.stale)
        .collect();
    Ok(Plan {
        manifests,
        layer_links,
        blobs,
        uploads,
        leftovers,
        unreadable,
    })
}

fn older(now: SystemTime, t: SystemTime, age: Duration) -> bool {
    now.duration_since(t).is_ok_and(|d| d >= age)
}

/// Uploads written to within [`RECENT_UPLOAD`] of `now`.
pub fn recent(uploads: &[Upload], now: SystemTime) -> Vec<&Upload> {
    uploads
        .iter()
        .filter(|u| !older(now, u.last_write, RECENT_UPLOAD))
        .collect()
}
