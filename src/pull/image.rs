//! Pulling one image into ROOT: nothing when ROOT's tag already names the
//! digest upstream's does; otherwise its manifests are fetched and checked,
//! the image closed as `select` closes one, and the registry layout's plan
//! for it merged into ROOT through the store: blobs first (downloaded,
//! checked, renamed into place), then `_layers` and revision links, then
//! the tag, moved as the registry moves a tag pushed again.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::Serialize;

use crate::digest::Digest;
use crate::error::Result;
use crate::layout;
use crate::manifest::Manifest;
use crate::paths::Spec;
use crate::platform::Platform;
use crate::progress::Progress;
use crate::pull::blobs::{Downloads, RemoteBlobs};
use crate::pull::fetch::{Closer, Manifests};
use crate::pull::resolve::{Clients, Job};
use crate::selection::Selection;
use crate::sink::store::{merge_from, MergeOptions};
use crate::store::Store;

/// Everything the images of one run share.
pub struct Context<'a> {
    pub clients: &'a Clients,
    pub dst: &'a Store,
    pub manifests: &'a Manifests,
    pub downloads: &'a Downloads,
    pub platforms: &'a [Platform],
    pub progress: &'a Progress,
    /// Referrers are looked for: an image already in ROOT is read for its
    /// manifests' digests.
    pub referrers: bool,
}

/// What pulling one image did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImageReport {
    /// ROOT's tag named this digest already: nothing was fetched.
    pub up_to_date: bool,
    pub blobs_downloaded: usize,
    /// Already in ROOT (or put there for another image of this run).
    pub blobs_present: usize,
    pub manifests: usize,
    /// Bytes of blobs downloaded.
    pub bytes_downloaded: u64,
    /// Files written (blobs, manifests, links).
    pub files_written: u64,
    /// Every manifest of the image (the top one first), to look for
    /// referrers of.
    #[serde(skip)]
    pub digests: Vec<Digest>,
}

/// Pulls one image.
pub fn pull(ctx: &Context, job: &Job) -> Result<ImageReport> {
    if let Some(digests) = in_root(ctx.dst, job, ctx.referrers)? {
        return Ok(ImageReport {
            up_to_date: true,
            digests,
            ..ImageReport::default()
        });
    }
    let client = ctx.clients.get(&job.host)?;
    client.check_rate_limit()?;
    let top = ctx
        .manifests
        .get(&client, &job.repo, &job.digest, "manifest")?;
    let closer = Closer {
        client: &client,
        repo: &job.repo,
        manifests: ctx.manifests,
        platforms: ctx.platforms,
        dst: ctx.dst,
    };
    let img = closer.close(&top, &job.name, job.stored_tag.clone())?;
    ctx.progress.inc_length(img.size());
    let mut manifests = HashMap::new();
    for m in &img.manifests {
        let f = ctx
            .manifests
            .get(&client, &job.repo, &m.digest, "manifest")?;
        manifests.insert(m.digest.clone(), f);
    }
    let digests: Vec<Digest> = img.manifests.iter().map(|m| m.digest.clone()).collect();
    let size = img.size();
    let sel = Selection {
        images: vec![img],
        ..Selection::default()
    };
    let plan = layout::registry::plan(&sel)?;
    let blobs = RemoteBlobs {
        client: &client,
        repo: &job.repo,
        manifests,
        downloads: ctx.downloads,
        progress: ctx.progress,
        downloaded: Default::default(),
        bytes: Default::default(),
        present: Default::default(),
    };
    let report = merge_from(
        &plan,
        &blobs,
        ctx.dst,
        &Progress::hidden(),
        MergeOptions {
            move_tags: true,
            no_listing: true,
        },
    )?;
    let bytes = blobs.bytes.load(Ordering::Relaxed);
    ctx.progress.inc(size.saturating_sub(bytes));
    Ok(ImageReport {
        up_to_date: false,
        blobs_downloaded: blobs.downloaded.load(Ordering::Relaxed),
        blobs_present: blobs.present.load(Ordering::Relaxed),
        manifests: digests.len(),
        bytes_downloaded: bytes,
        files_written: {
            let c = report.counts;
            c.hardlinks + c.reflinks + c.copies + c.written
        },
        digests,
    })
}

/// The image's manifests when ROOT has it whole already: its tag names the
/// digest (a tag is written last), or for an image named by digest, the
/// revision links of it and of every child (written after the blobs and
/// `_layers` links). `digests`: also read its manifests for their digests.
fn in_root(dst: &Store, job: &Job, digests_wanted: bool) -> Result<Option<Vec<Digest>>> {
    if let Some(tag) = &job.stored_tag {
        if dst.read_link(&Spec::TagCurrentLink(&job.name, tag))? != Some(job.digest.clone()) {
            return Ok(None);
        }
        if !digests_wanted {
            return Ok(Some(vec![job.digest.clone()]));
        }
    }
    let mut digests = Vec::new();
    let mut todo = vec![job.digest.clone()];
    while let Some(d) = todo.pop() {
        if digests.contains(&d) || digests.len() > 1000 {
            continue;
        }
        if dst.read_link(&Spec::RevisionLink(&job.name, &d))? != Some(d.clone()) {
            if job.stored_tag.is_some() && d != job.digest {
                // A child `--platform` left out of an earlier pull.
                continue;
            }
            return Ok(None);
        }
        let Some(bytes) = read_manifest(dst, &d) else {
            return Ok(None);
        };
        let Ok(m) = Manifest::parse(&bytes) else {
            return Ok(None);
        };
        todo.extend(m.children.iter().rev().map(|c| c.digest.clone()));
        digests.push(d);
    }
    Ok(Some(digests))
}

fn read_manifest(dst: &Store, d: &Digest) -> Option<Arc<[u8]>> {
    dst.read_blob(d, "manifest").ok().map(Into::into)
}
