//! Bundles: a tar of a registry tree for air-gapped delivery, its
//! `BUNDLE.json` description, and what a bundle (or a tree) holds, for
//! incremental packs and `diff`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, WalkOptions};
use crate::compress;
use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::{Error, Result};
use crate::paths::{self, Parsed};
use crate::selection::{self, Request};
use crate::store::Store;

/// `BUNDLE.json`: what a bundle holds, written beside it by `pack`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The bundle's file name (or `-` for a stream).
    pub bundle: String,
    /// The sha256 of the bundle file's bytes (compressed, as shipped).
    pub sha256: String,
    pub size: u64,
    pub compression: compress::Compression,
    pub images: Vec<ImageEntry>,
    /// Blobs inside the bundle.
    pub blob_count: usize,
    pub blob_bytes: u64,
    /// Every blob the images need; `included: false` for those left to the
    /// base of an incremental bundle.
    pub blobs: Vec<BlobEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageEntry {
    pub name: String,
    pub digest: Digest,
    pub media_type: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BlobEntry {
    pub digest: Digest,
    pub size: u64,
    pub included: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaseInfo {
    /// What `--base` named.
    pub source: String,
    /// Blobs the base already has, left out of this bundle.
    pub blobs_omitted: usize,
    pub bytes_omitted: u64,
}

/// The path of the description beside a bundle: `BUNDLE.json`.
pub fn manifest_path(bundle: &Path) -> PathBuf {
    let mut name = bundle.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

/// What a bundle, a bundle description or a tree holds.
#[derive(Debug, Default, Clone)]
pub struct Contents {
    /// `repo:tag` → digest.
    pub images: BTreeMap<String, Digest>,
    /// Blobs present (a tree, a bundle and, for a description, what a site
    /// has once it is unpacked) with their sizes.
    pub blobs: BTreeMap<Digest, u64>,
}

impl Contents {
    /// Reads a bundle (`.tar`, `.tar.gz`, `.tar.zst`; its `BUNDLE.json` is
    /// used when it sits beside it), a `BUNDLE.json`, or a storage tree.
    pub fn load(path: &Path) -> Result<Contents> {
        if Store::is_remote(path) {
            return Contents::of_tree(path);
        }
        let meta = fs::metadata(path).map_err(|e| Error::io("open", path, e))?;
        if meta.is_dir() {
            return Contents::of_tree(path);
        }
        let json = if path.extension().is_some_and(|e| e == "json") {
            Some(path.to_path_buf())
        } else {
            Some(manifest_path(path)).filter(|p| p.is_file())
        };
        if let Some(json) = json {
            let bytes = fs::read(&json).map_err(|e| Error::io("read", &json, e))?;
            let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| Error::Invalid {
                message: format!("not a regkit bundle description: {e}"),
                path: Some(json.clone()),
            })?;
            return Ok(Contents {
                images: m.images.into_iter().map(|i| (i.name, i.digest)).collect(),
                blobs: m.blobs.into_iter().map(|b| (b.digest, b.size)).collect(),
            });
        }
        Contents::of_bundle(path)
    }

    fn of_tree(path: &Path) -> Result<Contents> {
        let store = Store::open(path)?;
        let catalog = Catalog::load(&store, WalkOptions::default())?;
        let sel = selection::select(
            &catalog,
            &Request {
                keep_going: true,
                ..Request::default()
            },
        )?;
        let mut c = Contents::default();
        for img in &sel.images {
            c.images.insert(img.name(), img.digest.clone());
            for m in &img.manifests {
                c.blobs.insert(m.digest.clone(), m.node.size);
            }
            for b in &img.blobs {
                c.blobs.insert(b.digest.clone(), b.size);
            }
        }
        // Whatever else the tree stores is there too.
        for d in store.list_blobs()? {
            if let std::collections::btree_map::Entry::Vacant(slot) = c.blobs.entry(d) {
                if let Some(size) = store.blob_size(slot.key())? {
                    slot.insert(size);
                }
            }
        }
        Ok(c)
    }

    fn of_bundle(path: &Path) -> Result<Contents> {
        let file = fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
        let (_, reader) = compress::decoder(file).map_err(|e| Error::io("read", path, e))?;
        let mut archive = tar::Archive::new(reader);
        let mut c = Contents::default();
        let bad = |e: io::Error| Error::io("read the bundle", path, e);
        // Plain tars of a registry (`./docker/...`, the v2 folder) too.
        let mut locator = crate::archive::Locator::new();
        for entry in archive.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let crate::archive::Place::Tree(rel) = locator.place(&name) else {
                continue;
            };
            match paths::parse(&rel) {
                Some(Parsed::BlobData(d)) => {
                    c.blobs.insert(d, entry.header().size().map_err(bad)?);
                }
                Some(Parsed::TagCurrentLink { repo, tag }) => {
                    let mut bytes = Vec::new();
                    entry
                        .by_ref()
                        .take(1024)
                        .read_to_end(&mut bytes)
                        .map_err(bad)?;
                    if let Ok(d) = paths::parse_link(&bytes) {
                        c.images.insert(format!("{repo}:{tag}"), d);
                    }
                }
                _ => {}
            }
        }
        Ok(c)
    }
}

/// A writer that hands its bytes to a thread of its own, which hashes
/// (sha256) and counts them and writes them to `inner`: the caller goes on
/// producing while the bytes are hashed and written.
pub struct HashingWriter {
    buf: Vec<u8>,
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    worker: Option<std::thread::JoinHandle<io::Result<(Digest, u64)>>>,
}

const CHUNK: usize = 1 << 20;

impl HashingWriter {
    pub fn new<W: Write + Send + 'static>(mut inner: W) -> HashingWriter {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        let worker = std::thread::spawn(move || {
            let mut hasher = Hasher::new(Algorithm::Sha256);
            let mut len = 0u64;
            for chunk in rx {
                hasher.update(&chunk);
                len += chunk.len() as u64;
                inner.write_all(&chunk)?;
            }
            inner.flush()?;
            Ok((hasher.finish(), len))
        });
        HashingWriter {
            buf: Vec::with_capacity(CHUNK),
            tx: Some(tx),
            worker: Some(worker),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let sent = self.tx.as_ref().map(|tx| tx.send(chunk));
        if !matches!(sent, Some(Ok(()))) {
            // The writer thread stopped: its error says why.
            return Err(self
                .join()
                .err()
                .unwrap_or_else(|| io::Error::other("the writer stopped")));
        }
        Ok(())
    }

    fn join(&mut self) -> io::Result<(Digest, u64)> {
        self.tx.take();
        match self.worker.take() {
            Some(w) => w
                .join()
                .map_err(|_| io::Error::other("the writer thread panicked"))?,
            None => Err(io::Error::other("the writer already finished")),
        }
    }

    /// Flushes everything and returns the sha256 and length of all bytes.
    pub fn finish(mut self) -> io::Result<(Digest, u64)> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        self.join()
    }
}

impl Write for HashingWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        crate::interrupt::check_io()?;
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
