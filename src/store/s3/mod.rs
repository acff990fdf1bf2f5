//! Registries kept in S3 (or MinIO, Ceph RGW), as distribution's s3 driver
//! keeps them: the key of a file is `ROOTDIRECTORY/docker/registry/v2/...`
//! (its `rootdirectory` without the leading slash), the same paths as on
//! disk, and there are no folder objects: a folder exists while something
//! lies below it.
//!
//! Writes go straight to their final key: a PUT is atomic, and a large
//! body goes up as a multipart upload that is completed only once its
//! digest is checked (an interrupted one leaves no object, and is aborted).

pub mod client;
pub mod config;
pub mod sigv4;
pub mod xml;

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use client::Client;

use super::{Backend, Body, DirEntry, Method, PutError};
use crate::digest::{Digest, Hasher};

/// Bodies up to this size go up in one PUT; larger ones in parts of it.
pub const PART: usize = 16 << 20;

/// The tree under one prefix of a bucket.
pub struct S3Backend {
    pub client: Arc<Client>,
    /// `ROOTDIRECTORY/docker/registry/v2/` (or `docker/registry/v2/`).
    prefix: String,
}

impl S3Backend {
    pub fn new(client: Arc<Client>, root: &str) -> S3Backend {
        let root = root.trim_matches('/');
        let prefix = if root.is_empty() {
            format!("{}/", crate::paths::V2_PREFIX)
        } else {
            format!("{root}/{}/", crate::paths::V2_PREFIX)
        };
        S3Backend { client, prefix }
    }

    /// The key of a path of the tree.
    pub fn key(&self, rel: &Path) -> String {
        let rel = rel.to_string_lossy();
        let rel = rel.trim_matches('/');
        if rel.is_empty() {
            self.prefix.trim_end_matches('/').to_string()
        } else {
            format!("{}{rel}", self.prefix)
        }
    }

    /// The key prefix of a folder of the tree (ends with `/`).
    fn dir_key(&self, rel: &Path) -> String {
        let k = self.key(rel);
        format!("{k}/")
    }

    /// `ROOTDIRECTORY/docker/registry/v2/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Every object below a folder of the tree, flat: keys relative to it,
    /// with sizes and times, one request per 1000 keys.
    pub fn walk(&self, rel: &Path, f: &mut dyn FnMut(&str, &client::Object)) -> io::Result<()> {
        let dir = self.dir_key(rel);
        self.client.list(&dir, None, &mut |page| {
            for o in &page.objects {
                if let Some(r) = o.key.strip_prefix(&dir) {
                    f(r, o);
                }
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Uploads `reader`, hashing it; the object appears only if the digest
    /// matches (when one is given). Without `replace`, an object there
    /// already is left (checked by the server for one PUT, before starting
    /// for a multipart upload).
    fn upload(
        &self,
        key: &str,
        reader: &mut dyn Read,
        digest: Option<&Digest>,
        replace: bool,
    ) -> Result<(), PutError> {
        let mut hasher = digest.map(|d| Hasher::new(d.algorithm()));
        let mut first = vec![0u8; PART];
        let n = read_full(reader, &mut first).map_err(PutError::Read)?;
        if let Some(h) = hasher.as_mut() {
            h.update(&first[..n]);
        }
        if n < PART {
            check(hasher, digest)?;
            if !replace {
                match self.client.put_if_absent(key, &first[..n]) {
                    Ok(Some(true)) => return Ok(()),
                    Ok(Some(false)) => return Err(PutError::Exists),
                    Ok(None) => {
                        if self.exists(key)? {
                            return Err(PutError::Exists);
                        }
                    }
                    Err(e) => return Err(PutError::Write(e.into())),
                }
            }
            return self
                .client
                .put(key, &first[..n])
                .map_err(|e| PutError::Write(e.into()));
        }
        if !replace && self.exists(key)? {
            return Err(PutError::Exists);
        }
        let upload = self
            .client
            .create_multipart(key)
            .map_err(|e| PutError::Write(e.into()))?;
        let result = (|| {
            let mut etags = vec![self
                .client
                .upload_part(key, &upload, 1, &first[..n])
                .map_err(|e| PutError::Write(e.into()))?];
            let mut buf = first;
            loop {
                crate::interrupt::check()
                    .map_err(|_| PutError::Read(crate::interrupt::io_error()))?;
                let n = read_full(reader, &mut buf).map_err(PutError::Read)?;
                if n == 0 {
                    break;
                }
                if let Some(h) = hasher.as_mut() {
                    h.update(&buf[..n]);
                }
                let part = etags.len() as u32 + 1;
                etags.push(
                    self.client
                        .upload_part(key, &upload, part, &buf[..n])
                        .map_err(|e| PutError::Write(e.into()))?,
                );
                if n < buf.len() {
                    break;
                }
            }
            check(hasher, digest)?;
            self.client
                .complete_multipart(key, &upload, &etags)
                .map_err(|e| PutError::Write(e.into()))
        })();
        if result.is_err() {
            let _ = self.client.abort_multipart(key, &upload);
        }
        result
    }
}

fn check(hasher: Option<Hasher>, digest: Option<&Digest>) -> Result<(), PutError> {
    match (hasher, digest) {
        (Some(h), Some(d)) => {
            let actual = h.finish();
            if actual != *d {
                return Err(PutError::Digest(actual));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Reads until `buf` is full or the stream ends; returns how much came.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl Backend for S3Backend {
    fn list(&self, rel: &Path) -> io::Result<Vec<DirEntry>> {
        let dir = self.dir_key(rel);
        let mut out = Vec::new();
        self.client.list(&dir, Some("/"), &mut |page| {
            for p in &page.prefixes {
                if let Some(name) = p.strip_prefix(&dir) {
                    out.push(DirEntry {
                        name: name.trim_end_matches('/').to_string(),
                        is_dir: true,
                    });
                }
            }
            for o in &page.objects {
                if let Some(name) = o.key.strip_prefix(&dir) {
                    if !name.is_empty() {
                        out.push(DirEntry {
                            name: name.to_string(),
                            is_dir: false,
                        });
                    }
                }
            }
            Ok(())
        })?;
        if out.is_empty() {
            return Err(io::ErrorKind::NotFound.into());
        }
        Ok(out)
    }

    fn read(&self, rel: &Path, limit: u64) -> io::Result<Vec<u8>> {
        let (r, _) = self
            .client
            .get(&self.key(rel), 0)?
            .ok_or(io::ErrorKind::NotFound)?;
        let mut buf = Vec::new();
        r.take(limit + 1).read_to_end(&mut buf)?;
        if buf.len() as u64 > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("file is larger than {limit} bytes"),
            ));
        }
        Ok(buf)
    }

    fn open(&self, rel: &Path) -> io::Result<Box<dyn Read + Send>> {
        let (r, _) = self
            .client
            .get(&self.key(rel), 0)?
            .ok_or(io::ErrorKind::NotFound)?;
        Ok(r)
    }

    fn size(&self, rel: &Path) -> io::Result<u64> {
        match self.client.head(&self.key(rel))? {
            Some(o) => Ok(o.size),
            None => Err(io::ErrorKind::NotFound.into()),
        }
    }

    fn local_path(&self, _: &Path) -> Option<PathBuf> {
        None
    }

    fn display(&self, rel: &Path) -> PathBuf {
        PathBuf::from(self.client.display(&self.key(rel)))
    }

    fn modified(&self, rel: &Path) -> io::Result<std::time::SystemTime> {
        match self.client.head(&self.key(rel))? {
            Some(o) => o
                .modified
                .ok_or_else(|| io::Error::other("no Last-Modified")),
            None => Err(io::ErrorKind::NotFound.into()),
        }
    }

    fn put(&self, rel: &Path, body: Body<'_>, replace: bool) -> Result<Method, PutError> {
        let key = self.key(rel);
        // Small bytes (links, lock objects): refused by the server itself if
        // the key appeared, where it can.
        if let (Body::Bytes(b), false) = (&body, replace) {
            match self.client.put_if_absent(&key, b) {
                Ok(Some(true)) => return Ok(Method::Written),
                Ok(Some(false)) => return Err(PutError::Exists),
                Ok(None) => {}
                Err(e) => return Err(PutError::Write(e.into())),
            }
        }
        if !replace && matches!(body, Body::Bytes(_)) && self.exists(&key)? {
            return Err(PutError::Exists);
        }
        match body {
            Body::Bytes(b) => {
                self.client
                    .put(&key, b)
                    .map_err(|e| PutError::Write(e.into()))?;
                Ok(Method::Written)
            }
            Body::Stream { reader, digest } => self
                .upload(&key, reader, digest, replace)
                .map(|()| Method::Copy),
            Body::File { path, digest } => {
                let mut f = std::fs::File::open(path).map_err(PutError::Read)?;
                self.upload(&key, &mut f, Some(digest), replace)
                    .map(|()| Method::Copy)
            }
        }
    }

    fn put_folder(&self, dir: &Path, files: &[(&str, &[u8])]) -> Result<(), PutError> {
        let page = self
            .client
            .list_page(&self.dir_key(dir), None, None, None)
            .map_err(|e| PutError::Write(e.into()))?;
        if !page.objects.is_empty() {
            return Err(PutError::Exists);
        }
        for (name, bytes) in files {
            self.client
                .put(&self.key(&dir.join(name)), bytes)
                .map_err(|e| PutError::Write(e.into()))?;
        }
        Ok(())
    }

    fn create_dir(&self, _: &Path) -> io::Result<()> {
        Ok(())
    }

    fn remove_file(&self, rel: &Path) -> io::Result<()> {
        Ok(self.client.delete(&self.key(rel))?)
    }

    fn remove_tree(&self, rel: &Path) -> io::Result<()> {
        let mut keys = Vec::new();
        let dir = self.dir_key(rel);
        self.client.list(&dir, None, &mut |page| {
            keys.extend(page.objects.into_iter().map(|o| o.key));
            Ok(())
        })?;
        self.remove_keys(&keys)
    }

    fn remove_files(&self, rels: &[PathBuf]) -> io::Result<()> {
        let keys: Vec<String> = rels.iter().map(|r| self.key(r)).collect();
        self.remove_keys(&keys)
    }

    fn has_folders(&self) -> bool {
        false
    }

    fn remove_empty_dir(&self, rel: &Path) -> io::Result<bool> {
        let page = self
            .client
            .list_page(&self.dir_key(rel), None, None, None)?;
        Ok(page.objects.is_empty())
    }
}

impl S3Backend {
    fn exists(&self, key: &str) -> Result<bool, PutError> {
        self.client
            .head(key)
            .map(|o| o.is_some())
            .map_err(|e| PutError::Write(e.into()))
    }

    /// Every file of the tree (relative to `v2`) with its size, from flat
    /// listings of `blobs/` and `repositories/`: what a merge looks at
    /// before writing.
    pub fn files(&self) -> io::Result<std::collections::HashMap<String, u64>> {
        let mut out = std::collections::HashMap::new();
        for root in [crate::paths::BLOBS, crate::paths::REPOSITORIES] {
            self.walk(Path::new(root), &mut |key, o| {
                out.insert(format!("{root}/{key}"), o.size);
            })?;
        }
        Ok(out)
    }

    /// Deletes keys in batches of 1000 (DeleteObjects).
    pub fn remove_keys(&self, keys: &[String]) -> io::Result<()> {
        for chunk in keys.chunks(1000) {
            let failed = self.client.delete_batch(chunk)?;
            if let Some((k, why)) = failed.first() {
                return Err(io::Error::other(format!(
                    "{} of {} keys were not deleted, the first {}: {why}",
                    failed.len(),
                    chunk.len(),
                    self.client.display(k)
                )));
            }
        }
        Ok(())
    }
}
