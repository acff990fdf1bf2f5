//! Pushing one image: if its tag already names the same digest at the
//! destination, nothing; otherwise every blob, then every child manifest by
//! digest (children first, those already there skipped), then the top
//! manifest by tag (which stores it by digest too), with the exact stored
//! bytes and the stored media type.

use rayon::prelude::*;
use serde::Serialize;

use crate::claims::Claims;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::media;
use crate::progress::Progress;
use crate::push::plan::Job;
use crate::push::upload::{stored_as, Blobs, Fate, Uploader};
use crate::remote::api;
use crate::remote::auth::Scope;
use crate::remote::client::{Body, Client};
use crate::remote::error::RemoteError;
use crate::selection::ManifestItem;
use crate::store::Store;

/// Everything the images of one run share.
pub struct Context<'a> {
    pub client: &'a Client,
    pub store: &'a Store,
    pub chunk_size: u64,
    pub progress: &'a Progress,
    pub blobs: Blobs,
    /// (repository, digest) of manifests: whether known to be there.
    pub manifests: Claims<(String, Digest), bool>,
}

/// What pushing one image did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImageReport {
    /// The tag already named this digest: nothing was sent.
    pub up_to_date: bool,
    pub blobs_uploaded: usize,
    /// Of those uploaded, how many in PATCH chunks.
    pub blobs_chunked: usize,
    pub blobs_mounted: usize,
    /// Already in the repository (HEAD), or put there by this run.
    pub blobs_present: usize,
    pub manifests_pushed: usize,
    pub manifests_present: usize,
    /// Bytes of the blobs and manifests sent.
    pub bytes_sent: u64,
}

/// Pushes one image.
pub fn push(ctx: &Context, job: &Job) -> Result<ImageReport> {
    let repo = &job.target.repo;
    let top = job.top();
    let mut report = ImageReport::default();
    let reference = job
        .target
        .tag
        .clone()
        .unwrap_or_else(|| top.digest.to_string());
    if ctx
        .client
        .retrying(|| head_manifest(ctx, repo, &reference))?
        == Some(top.digest.clone())
    {
        ctx.progress.inc(job.bytes());
        report.up_to_date = true;
        return Ok(report);
    }
    let up = Uploader {
        client: ctx.client,
        store: ctx.store,
        chunk_size: ctx.chunk_size,
        progress: ctx.progress,
    };
    let fates: Vec<(Fate, u64)> = job
        .image
        .blobs
        .par_iter()
        .map(|b| ctx.blobs.ensure(&up, repo, b).map(|f| (f, b.size)))
        .collect::<Result<_>>()?;
    for (fate, size) in fates {
        match fate {
            Fate::Known | Fate::Present => report.blobs_present += 1,
            Fate::Mounted => report.blobs_mounted += 1,
            Fate::Uploaded | Fate::Chunked => {
                report.blobs_uploaded += 1;
                report.blobs_chunked += usize::from(fate == Fate::Chunked);
                report.bytes_sent += size;
            }
        }
    }
    for m in job.manifests() {
        if job.target.tag.is_some() && m.digest == top.digest {
            // Sent once, by tag, below: that stores it by digest too.
            continue;
        }
        let claim = ctx.manifests.of(&(repo.clone(), m.digest.clone()));
        let mut there = claim.lock().expect("not poisoned");
        // A by-digest image's top manifest was just found missing.
        let known_missing = job.target.tag.is_none() && m.digest == top.digest;
        if !*there
            && (known_missing
                || ctx
                    .client
                    .retrying(|| head_manifest(ctx, repo, m.digest.as_str()))?
                    != Some(m.digest.clone()))
        {
            put_manifest(ctx, repo, m, m.digest.as_str()).map_err(|e| foreign(e, job))?;
            report.manifests_pushed += 1;
            report.bytes_sent += m.node.size;
        } else {
            report.manifests_present += 1;
        }
        *there = true;
        ctx.progress.inc(m.node.size);
    }
    if let Some(tag) = &job.target.tag {
        put_manifest(ctx, repo, top, tag).map_err(|e| foreign(e, job))?;
        report.manifests_pushed += 1;
        report.bytes_sent += top.node.size;
        ctx.progress.inc(top.node.size);
    }
    Ok(report)
}

/// Says why a manifest with foreign layers may be refused.
fn foreign(e: Error, job: &Job) -> Error {
    match job.image.foreign.len() {
        0 => e,
        n => Error::invalid(format!(
            "{e} (the image has {n} foreign layer(s), which storage does not hold: the registry must accept their URLs, e.g. distribution's validation.manifests.urls.allow)"
        )),
    }
}

/// HEAD /v2/<repo>/manifests/<reference>: the digest there, if any.
fn head_manifest(ctx: &Context, repo: &str, reference: &str) -> Result<Option<Digest>> {
    let head = api::head_manifest(ctx.client, repo, reference, &Scope::push(repo))?;
    Ok(head.and_then(|h| h.digest))
}

/// PUT /v2/<repo>/manifests/<reference> with the stored bytes.
fn put_manifest(ctx: &Context, repo: &str, m: &ManifestItem, reference: &str) -> Result<()> {
    let bytes = ctx.store.read_blob(&m.digest, "manifest")?;
    let actual = Digest::sha256_of(&bytes);
    if m.digest.algorithm() == actual.algorithm() && actual != m.digest {
        return Err(Error::DigestMismatch {
            path: ctx.store.display(&crate::paths::Spec::BlobData(&m.digest)),
            expected: m.digest.clone(),
            actual,
        });
    }
    let media_type = m.node.manifest.media_type();
    let url = ctx.client.url(&format!("/v2/{repo}/manifests/{reference}"));
    let scope = Scope::push(repo);
    let r = ctx.client.retrying(|| {
        let r = ctx.client.send(
            "PUT",
            &url,
            &scope,
            &[("content-type", media_type)],
            Body::Bytes(&bytes),
        )?;
        match r.status {
            201 => Ok(r),
            // A 5xx or 429 is tried again.
            _ => Err(ctx.client.unexpected("PUT", &url, &scope, &r)),
        }
    });
    let r = r.map_err(|e| match (m.node.manifest.kind, e.root()) {
        (
            media::ManifestKind::DockerSchema1 { .. },
            Error::Remote(RemoteError::Status { status, .. }),
        ) if (400..500).contains(status) => Error::invalid(format!(
            "{e} (storage keeps schema1 manifests without their signature; registries accept only signed schema1, and Harbor 2.x none)"
        )),
        _ => e,
    })?;
    stored_as(&url, &r, &m.digest, "manifest")
}
