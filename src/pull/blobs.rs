//! The blobs of an image pulled into ROOT: manifests from the bytes
//! fetched, configs and layers streamed from the registry into the store,
//! which writes them under a temporary name, checks their digest and only
//! then puts them in place. A blob ROOT has is never downloaded again; a
//! blob several images in flight need is downloaded once (one lock per
//! digest, held while it downloads; the others wait, then find it there).

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::claims::Claims;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::paths::Spec;
use crate::plan::FileEntry;
use crate::progress::Progress;
use crate::pull::fetch::Fetched;
use crate::remote::api;
use crate::remote::auth::Scope;
use crate::remote::client::Client;
use crate::remote::error::RemoteError;
use crate::sink::store::{blob_present, Blobs};
use crate::store::{Body, Method, Store};

/// What the run knows of each blob: whether it is in ROOT.
#[derive(Default)]
pub struct Downloads {
    there: Claims<Digest, bool>,
}

/// The blobs of one image, from one repository of one registry.
pub struct RemoteBlobs<'a> {
    pub client: &'a Client,
    /// The repository on the registry.
    pub repo: &'a str,
    /// The image's manifests, by digest.
    pub manifests: HashMap<Digest, Arc<Fetched>>,
    pub downloads: &'a Downloads,
    pub progress: &'a Progress,
    /// Blobs this image downloaded, and their bytes.
    pub downloaded: AtomicUsize,
    pub bytes: AtomicU64,
    /// Configs and layers ROOT had (or this run put there for another image).
    pub present: AtomicUsize,
}

impl Blobs for RemoteBlobs<'_> {
    fn present(&self, dst: &Store, d: &Digest, entry: &FileEntry) -> Result<bool> {
        if self.manifests.contains_key(d) {
            // Small: read and compared.
            return blob_present(None, dst, d, entry);
        }
        // A config or layer is trusted by its size: every blob of a tree is
        // put in place only once whole and checked (`regkit verify` hashes
        // them all).
        match dst.blob_size(d)? {
            None => Ok(false),
            Some(n) if n == entry.size => {
                self.present.fetch_add(1, Ordering::Relaxed);
                Ok(true)
            }
            Some(n) => Err(Error::Conflict {
                path: dst.display(&Spec::BlobData(d)),
                existing: format!("{n} bytes"),
                wanted: format!(
                    "blob {d} of {} bytes (`regkit verify` says whether the tree's is damaged)",
                    entry.size
                ),
            }),
        }
    }

    fn put(&self, dst: &Store, d: &Digest) -> Result<Option<Method>> {
        if let Some(m) = self.manifests.get(d) {
            let mut r = &m.bytes[..];
            let body = Body::Stream {
                reader: &mut r,
                digest: Some(d),
            };
            let url = self.client.url(&format!("/v2/{}/manifests/{d}", self.repo));
            return dst.put_blob(d, body, Path::new(&url));
        }
        let claim = self.downloads.there.of(d);
        let mut there = claim.lock().expect("not poisoned");
        if *there {
            self.present.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        let put = self.client.retrying(|| self.download(dst, d))?;
        *there = true;
        match put {
            Some(m) => {
                self.downloaded.fetch_add(1, Ordering::Relaxed);
                Ok(Some(m))
            }
            None => {
                self.present.fetch_add(1, Ordering::Relaxed);
                Ok(None)
            }
        }
    }
}

impl RemoteBlobs<'_> {
    /// One try at streaming the blob into ROOT.
    fn download(&self, dst: &Store, d: &Digest) -> Result<Option<Method>> {
        let scope = Scope::pull(self.repo);
        let url = self.client.url(&format!("/v2/{}/blobs/{d}", self.repo));
        let Some(body) = api::open_blob(self.client, self.repo, d, &scope)? else {
            return Err(Error::MissingBlob {
                digest: d.clone(),
                what: "blob".into(),
                path: url.into(),
            });
        };
        let mut reader = Counted {
            inner: body.reader,
            client: self.client,
            progress: self.progress,
            read: 0,
        };
        let put = dst.put_blob(
            d,
            Body::Stream {
                reader: &mut reader,
                digest: Some(d),
            },
            Path::new(&body.url),
        );
        let read = reader.read;
        match put {
            Ok(m) => {
                self.bytes.fetch_add(read, Ordering::Relaxed);
                Ok(m)
            }
            Err(e) => {
                // What was counted will be counted again by a retry.
                self.progress.inc_length(read);
                Err(transfer_error(e, &body.url))
            }
        }
    }
}

/// A reply body that counts what was read of it.
struct Counted<'a, R> {
    inner: R,
    client: &'a Client,
    progress: &'a Progress,
    read: u64,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        self.client.add_received(n as u64);
        self.progress.inc(n as u64);
        Ok(n)
    }
}

/// A reply body that broke off (the connection dropped, a stall) is the
/// registry's failure, tried again; a digest that does not match is not.
fn transfer_error(e: Error, url: &str) -> Error {
    match e {
        Error::Io {
            action: "read",
            source,
            ..
        } => match source.kind() {
            io::ErrorKind::TimedOut => RemoteError::Stalled {
                method: "GET".into(),
                url: url.into(),
                sending: false,
                after: std::time::Duration::ZERO,
            },
            _ => RemoteError::Unreachable {
                url: url.into(),
                reason: format!("the blob's body broke off: {source}"),
            },
        }
        .into_error(),
        e => e,
    }
}
