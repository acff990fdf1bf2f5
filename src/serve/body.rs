//! Blob bodies: read in tokio's blocking pool and handed to hyper in
//! chunks of 64 KiB.
//!
//! Where the store names a blob as a range of a local file
//! ([`crate::store::Backend::extent`]: a file of the tree, a member of an
//! uncompressed bundle), the chunks are `pread`s of that file, the file held
//! open for the whole response (a blob removed meanwhile is still sent
//! whole). hyper has no path for `sendfile(2)` (its body is a stream of
//! buffers), and a mapped file would turn a file truncated under the server
//! into SIGBUS; one copy into a buffer that hyper writes out is the cost.
//! Other stores (S3) stream through their reader.
//!
//! The first full read of a blob hashes it on the way, and the last chunk
//! is sent only once the digest matched: a damaged blob's body ends short
//! of its `Content-Length` with an error, so no client takes it for good.

use std::io::{self, Read};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http_body::Frame;
use tokio::sync::mpsc;

use super::api::{Checked, Registry};
use crate::digest::{Digest, Hasher};
use crate::paths::Spec;
use crate::store::{Extent, Store};

/// What one read hands hyper; with at most two more waiting per response,
/// 16 connections hold a few MB.
const CHUNK: usize = 64 << 10;

/// Where a blob's bytes come from.
#[derive(Clone)]
pub struct Source {
    pub len: u64,
    from: From,
}

#[derive(Clone)]
enum From {
    /// A range of an open local file.
    File(Extent),
    /// A store without local files: opened for each read.
    Store(Store, Digest),
}

impl Source {
    pub fn open(store: &Store, digest: &Digest) -> io::Result<Source> {
        let rel = Spec::BlobData(digest).path();
        match store.backend().extent(&rel) {
            Ok(e) => Ok(Source {
                len: e.len,
                from: From::File(e),
            }),
            Err(e) if e.kind() == io::ErrorKind::Unsupported => Ok(Source {
                len: store.backend().size(&rel)?,
                from: From::Store(store.clone(), digest.clone()),
            }),
            Err(e) => Err(e),
        }
    }

    /// A reader over bytes `[start, start + len)` of the blob.
    fn reader(&self, start: u64, len: u64) -> io::Result<Box<dyn Read + Send>> {
        match &self.from {
            From::File(e) => Ok(Box::new(e.reader(start, len))),
            From::Store(store, digest) => {
                let mut r = store.backend().open(&Spec::BlobData(digest).path())?;
                io::copy(&mut (&mut r).take(start), &mut io::sink())?;
                Ok(Box::new(r.take(len)))
            }
        }
    }
}

/// Hashes the whole blob: whether its bytes have `digest`.
pub fn check_whole(src: &Source, digest: &Digest) -> Checked {
    let Ok(r) = src.reader(0, src.len) else {
        return Checked::Damaged;
    };
    match crate::digest::hash_reader(digest.algorithm(), r) {
        Ok((actual, n)) if &actual == digest && n == src.len => Checked::Good,
        _ => Checked::Damaged,
    }
}

/// A body fed by a blocking task through a small channel.
struct Chunks(mpsc::Receiver<io::Result<Bytes>>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.0.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
}

/// The body of bytes `[start, start + len)` of `src`; with `hash`, the
/// blob is checked on the way (the whole of it is being sent).
pub fn send(
    registry: Arc<Registry>,
    src: Source,
    start: u64,
    len: u64,
    hash: Option<Digest>,
) -> Body {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(2);
    tokio::task::spawn_blocking(move || {
        let mut reader = match src.reader(start, len) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        let mut hasher = hash.as_ref().map(|d| Hasher::new(d.algorithm()));
        let mut left = len;
        while left > 0 {
            let mut buf = vec![0u8; CHUNK.min(left as usize)];
            if let Err(e) = reader.read_exact(&mut buf) {
                if let Some(d) = &hash {
                    registry.record(d, Checked::Damaged);
                }
                let _ = tx.blocking_send(Err(e));
                return;
            }
            left -= buf.len() as u64;
            if let Some(h) = hasher.as_mut() {
                h.update(&buf);
            }
            if left == 0 {
                if let (Some(h), Some(want)) = (hasher.take(), hash.as_ref()) {
                    let actual = h.finish();
                    if &actual != want {
                        registry.record(want, Checked::Damaged);
                        eprintln!(
                            "error: blob {want} is damaged: its bytes have the digest {actual} ({}); its body was cut short",
                            registry.store.display(&Spec::BlobData(want)).display()
                        );
                        let _ = tx.blocking_send(Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "blob does not match its digest",
                        )));
                        return;
                    }
                    registry.record(want, Checked::Good);
                }
            }
            if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                // The client went away.
                return;
            }
        }
        // An empty blob: its digest is the empty input's.
        if let (Some(h), Some(want)) = (hasher, hash.as_ref()) {
            let good = &h.finish() == want;
            registry.record(
                want,
                if good {
                    Checked::Good
                } else {
                    Checked::Damaged
                },
            );
            if !good {
                let _ = tx.blocking_send(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "blob does not match its digest",
                )));
            }
        }
    });
    Body::new(Chunks(rx))
}
