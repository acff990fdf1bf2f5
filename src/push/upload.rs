//! Getting one blob into one repository of the destination, the cheapest
//! way that works: known from this run, mounted from another repository
//! this run put it in, already there (HEAD), or uploaded from disk as a
//! stream: one PUT when small, PATCH chunks when large.

use std::io::{self, Read};
use std::path::PathBuf;

use crate::claims::Claims;
use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};
use crate::paths::Spec;
use crate::progress::Progress;
use crate::remote::auth::{encode, Scope};
use crate::remote::client::{Body, Client, Reply};
use crate::remote::error::RemoteError;
use crate::selection::BlobItem;
use crate::store::Store;

/// How a blob reached a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// This run already put it there (for another image).
    Known,
    /// HEAD found it there.
    Present,
    /// Mounted from another repository of the destination.
    Mounted,
    /// Sent in one PUT.
    Uploaded,
    /// Sent in PATCH chunks.
    Chunked,
}

/// What the run has learnt about blobs at the destination: for each digest,
/// the repositories that hold it. Each digest has its own lock, held while
/// the blob is being sent, so that two images needing the same new blob
/// send it once and the second mounts it.
#[derive(Default)]
pub struct Blobs {
    holders: Claims<Digest, Vec<String>>,
}

/// What a blob transfer needs.
pub struct Uploader<'a> {
    pub client: &'a Client,
    pub store: &'a Store,
    /// Blobs larger than this go in PATCH chunks of this size.
    pub chunk_size: u64,
    pub progress: &'a Progress,
}

impl Blobs {
    /// Makes sure `repo` holds `blob`.
    pub fn ensure(&self, up: &Uploader, repo: &str, blob: &BlobItem) -> Result<Fate> {
        let entry = self.holders.of(&blob.digest);
        let mut holders = entry.lock().expect("not poisoned");
        if holders.iter().any(|r| r == repo) {
            up.progress.inc(blob.size);
            return Ok(Fate::Known);
        }
        let from = holders.first().cloned();
        let fate = up
            .client
            .retrying(|| up.transfer(repo, blob, from.as_deref()))?;
        holders.push(repo.to_string());
        if matches!(fate, Fate::Present | Fate::Mounted) {
            up.progress.inc(blob.size);
        }
        Ok(fate)
    }
}

impl Uploader<'_> {
    /// One try at getting the blob there.
    fn transfer(&self, repo: &str, blob: &BlobItem, from: Option<&str>) -> Result<Fate> {
        // A blob this run put elsewhere is mounted straight away (a mount of
        // a blob already there answers 201 too); others are looked for.
        if from.is_none() && self.exists(repo, &blob.digest)? {
            return Ok(Fate::Present);
        }
        let location = match from {
            Some(from) => match self.mount(repo, &blob.digest, from) {
                Ok(None) => return Ok(Fate::Mounted),
                Ok(Some(location)) => location,
                // No right to read the other repository (another Harbor
                // project): send the blob instead.
                Err(e) if refused(&e) => self.start(repo)?,
                Err(e) => return Err(e),
            },
            None => self.start(repo)?,
        };
        if blob.size > self.chunk_size {
            self.chunked(repo, location, blob)?;
            Ok(Fate::Chunked)
        } else {
            self.monolithic(repo, location, blob)?;
            Ok(Fate::Uploaded)
        }
    }

    /// HEAD /v2/<repo>/blobs/<digest>.
    pub fn exists(&self, repo: &str, digest: &Digest) -> Result<bool> {
        let url = self.client.url(&format!("/v2/{repo}/blobs/{digest}"));
        let scope = Scope::push(repo);
        let r = self.client.send("HEAD", &url, &scope, &[], Body::Empty)?;
        match r.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.client.unexpected("HEAD", &url, &scope, &r)),
        }
    }

    /// POST ...?mount=&from=: `None` when mounted (201), or the upload
    /// location the registry opened instead (202).
    fn mount(&self, repo: &str, digest: &Digest, from: &str) -> Result<Option<String>> {
        let url = self.client.url(&format!(
            "/v2/{repo}/blobs/uploads/?mount={}&from={}",
            encode(digest.as_str()),
            encode(from)
        ));
        let scope = Scope::mount(repo, from);
        let r = self.client.send("POST", &url, &scope, &[], Body::Empty)?;
        match r.status {
            201 => Ok(None),
            202 => Ok(Some(self.location(&url, &r)?)),
            _ => Err(self.client.unexpected("POST", &url, &scope, &r)),
        }
    }

    /// POST /v2/<repo>/blobs/uploads/: the upload's location.
    fn start(&self, repo: &str) -> Result<String> {
        let url = self.client.url(&format!("/v2/{repo}/blobs/uploads/"));
        let scope = Scope::push(repo);
        let r = self.client.send("POST", &url, &scope, &[], Body::Empty)?;
        match r.status {
            202 => self.location(&url, &r),
            _ => Err(self.client.unexpected("POST", &url, &scope, &r)),
        }
    }

    fn location(&self, url: &str, r: &Reply) -> Result<String> {
        let loc = r.header("location").ok_or_else(|| {
            RemoteError::Protocol {
                url: url.into(),
                message: format!("answered {} with no Location header", r.status),
            }
            .into_error()
        })?;
        Ok(self.client.resolve(loc))
    }

    /// PUT <location>?digest= with the whole blob as the body.
    fn monolithic(&self, repo: &str, location: String, blob: &BlobItem) -> Result<()> {
        let mut src = self.open(blob)?;
        let url = with_digest(&location, &blob.digest);
        let scope = Scope::push(repo);
        let r = self.client.send(
            "PUT",
            &url,
            &scope,
            &[("content-type", "application/octet-stream")],
            Body::Stream(&mut src, blob.size),
        );
        let r = src.checked(r)?;
        if r.status == 201 || src.read == blob.size {
            // A damaged blob is named by its path, not by the registry's
            // DIGEST_INVALID.
            src.finish(blob)?;
        }
        match r.status {
            201 => stored_as(&url, &r, &blob.digest, "blob"),
            _ => Err(self.client.unexpected("PUT", &url, &scope, &r)),
        }
    }

    /// PATCH chunks of `chunk_size` bytes, each to the location the last
    /// answer gave, checking the `Range` the registry holds, then PUT
    /// ?digest= with no body.
    fn chunked(&self, repo: &str, mut location: String, blob: &BlobItem) -> Result<()> {
        let mut src = self.open(blob)?;
        let scope = Scope::push(repo);
        let mut offset = 0u64;
        while offset < blob.size {
            let n = self.chunk_size.min(blob.size - offset);
            let range = format!("{offset}-{}", offset + n - 1);
            let r = {
                let mut part = (&mut src).take(n);
                self.client.send(
                    "PATCH",
                    &location,
                    &scope,
                    &[
                        ("content-type", "application/octet-stream"),
                        ("content-range", &range),
                    ],
                    Body::Stream(&mut part, n),
                )
            };
            let r = src.checked(r)?;
            if r.status != 202 {
                return Err(self.client.unexpected("PATCH", &location, &scope, &r));
            }
            let held = r.header("range").unwrap_or("");
            if !held.ends_with(&format!("-{}", offset + n - 1)) {
                return Err(RemoteError::Protocol {
                    url: location,
                    message: format!(
                        "after bytes {range} the registry holds `{held}`; starting the blob again"
                    ),
                }
                .into_error());
            }
            location = self.location(&location, &r)?;
            offset += n;
        }
        src.finish(blob)?;
        let url = with_digest(&location, &blob.digest);
        let r = self
            .client
            .send("PUT", &url, &scope, &[], Body::Bytes(&[]))?;
        match r.status {
            201 => stored_as(&url, &r, &blob.digest, "blob"),
            _ => Err(self.client.unexpected("PUT", &url, &scope, &r)),
        }
    }

    fn open(&self, blob: &BlobItem) -> Result<Source<'_>> {
        Ok(Source {
            inner: self.store.open_blob(&blob.stored, "blob")?,
            hasher: Some(Hasher::new(blob.digest.algorithm())),
            read: 0,
            failed: None,
            path: self.store.display(&Spec::BlobData(&blob.digest)),
            progress: self.progress,
        })
    }
}

/// A blob streamed from storage: hashed and counted as it is read; a read
/// error is kept so that it is reported as local, not as a network failure.
/// Ctrl-C stops it at the next buffer.
struct Source<'a> {
    inner: Box<dyn Read + Send>,
    hasher: Option<Hasher>,
    read: u64,
    failed: Option<io::Error>,
    path: PathBuf,
    progress: &'a Progress,
}

impl Read for Source<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = crate::interrupt::check_io().and_then(|()| self.inner.read(buf));
        match r {
            Ok(n) => {
                if let Some(h) = &mut self.hasher {
                    h.update(&buf[..n]);
                }
                self.read += n as u64;
                self.progress.inc(n as u64);
                Ok(n)
            }
            Err(e) => {
                let kept = io::Error::new(e.kind(), e.to_string());
                self.failed = Some(e);
                Err(kept)
            }
        }
    }
}

impl Source<'_> {
    /// A local read error wins over what the network said.
    fn checked(&mut self, r: Result<Reply>) -> Result<Reply> {
        match self.failed.take() {
            Some(e) => Err(Error::io("read blob", &self.path, e)),
            None => r,
        }
    }

    /// After the last byte: the blob must be as long and hash as named.
    fn finish(&mut self, blob: &BlobItem) -> Result<()> {
        let mut rest = [0u8; 1];
        if self.read != blob.size
            || self
                .inner
                .read(&mut rest)
                .map_err(|e| Error::io("read blob", &self.path, e))?
                != 0
        {
            return Err(Error::SizeMismatch {
                path: self.path.clone(),
                digest: blob.digest.clone(),
                expected: blob.size,
                actual: self.read.max(blob.size + 1),
            });
        }
        let actual = self.hasher.take().expect("finished once").finish();
        if actual != blob.digest {
            return Err(Error::DigestMismatch {
                path: self.path.clone(),
                expected: blob.digest.clone(),
                actual,
            });
        }
        Ok(())
    }
}

/// After a `201 Created`: the digest the registry says it stored
/// (`Docker-Content-Digest`, when it says one) must be the one sent; a
/// registry or proxy that changed the bytes is an error, for blobs as for
/// manifests.
pub fn stored_as(url: &str, r: &Reply, expected: &Digest, what: &str) -> Result<()> {
    match r.header("docker-content-digest") {
        Some(stored) if stored != expected.as_str() => Err(RemoteError::Protocol {
            url: url.into(),
            message: format!(
                "the registry stored the {what} as {stored}, not {expected}: it changed the bytes"
            ),
        }
        .into_error()),
        _ => Ok(()),
    }
}

fn refused(e: &Error) -> bool {
    match e.root() {
        Error::Remote(RemoteError::Denied { .. }) => true,
        Error::Remote(RemoteError::Status { status, .. }) => (400..500).contains(status),
        _ => false,
    }
}

/// `location` with `digest=<digest>` added to its query.
fn with_digest(location: &str, digest: &Digest) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={}", encode(digest.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_the_digest_to_upload_locations() {
        let d = Digest::sha256_of(b"x");
        assert_eq!(
            with_digest("http://h/v2/a/blobs/uploads/u?_state=s", &d),
            format!(
                "http://h/v2/a/blobs/uploads/u?_state=s&digest=sha256%3A{}",
                d.hex()
            )
        );
        assert!(with_digest("/v2/a/blobs/uploads/u", &d).contains("/u?digest=sha256%3A"));
    }
}
