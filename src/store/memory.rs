//! An in-memory backend for unit tests. It keeps files only, as an object
//! store does (a folder exists while something lies below it), so the code
//! that must work on S3 is tested against the same semantics.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{Backend, Body, DirEntry, Method, PutError};
use crate::digest::{copy_hashed, CopyError};

#[derive(Default)]
pub struct MemBackend {
    files: Mutex<BTreeMap<String, Vec<u8>>>,
}

fn key(rel: &Path) -> String {
    rel.to_string_lossy().trim_matches('/').to_string()
}

fn not_found() -> io::Error {
    io::ErrorKind::NotFound.into()
}

impl MemBackend {
    pub fn new() -> MemBackend {
        MemBackend::default()
    }

    /// Every file, by path: what a test compares.
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        self.files.lock().unwrap().clone()
    }

    fn get(&self, rel: &Path) -> io::Result<Vec<u8>> {
        self.files
            .lock()
            .unwrap()
            .get(&key(rel))
            .cloned()
            .ok_or_else(not_found)
    }
}

impl Backend for MemBackend {
    fn list(&self, rel: &Path) -> io::Result<Vec<DirEntry>> {
        let k = key(rel);
        let prefix = if k.is_empty() { k } else { format!("{k}/") };
        let files = self.files.lock().unwrap();
        let mut out: Vec<DirEntry> = Vec::new();
        for path in files.range(prefix.clone()..).map(|(p, _)| p) {
            let Some(rest) = path.strip_prefix(&prefix) else {
                break;
            };
            let (name, is_dir) = match rest.split_once('/') {
                Some((d, _)) => (d, true),
                None => (rest, false),
            };
            if out.last().is_none_or(|l| l.name != name) {
                out.push(DirEntry {
                    name: name.to_string(),
                    is_dir,
                });
            }
        }
        if out.is_empty() {
            return Err(not_found());
        }
        Ok(out)
    }

    fn read(&self, rel: &Path, limit: u64) -> io::Result<Vec<u8>> {
        let b = self.get(rel)?;
        if b.len() as u64 > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("file is larger than {limit} bytes"),
            ));
        }
        Ok(b)
    }

    fn open(&self, rel: &Path) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(io::Cursor::new(self.get(rel)?)))
    }

    fn size(&self, rel: &Path) -> io::Result<u64> {
        Ok(self.get(rel)?.len() as u64)
    }

    fn local_path(&self, _: &Path) -> Option<PathBuf> {
        None
    }

    fn display(&self, rel: &Path) -> PathBuf {
        Path::new("mem:").join(rel)
    }

    fn put(&self, rel: &Path, body: Body<'_>, replace: bool) -> Result<Method, PutError> {
        let k = key(rel);
        if !replace && self.files.lock().unwrap().contains_key(&k) {
            return Err(PutError::Exists);
        }
        let (bytes, method) = match body {
            Body::Bytes(b) => (b.to_vec(), Method::Written),
            Body::Stream { reader, digest } => {
                let mut buf = Vec::new();
                let (actual, _) = copy_hashed(reader, &mut buf, digest.map(|d| d.algorithm()))
                    .map_err(|e| match e {
                        CopyError::Read(e) => PutError::Read(e),
                        CopyError::Write(e) => PutError::Write(e),
                    })?;
                if let (Some(a), Some(d)) = (actual, digest) {
                    if a != *d {
                        return Err(PutError::Digest(a));
                    }
                }
                (buf, Method::Copy)
            }
            Body::File { path, digest } => {
                let b = std::fs::read(path).map_err(PutError::Read)?;
                let actual = crate::digest::Digest::sha256_of(&b);
                if actual != *digest {
                    return Err(PutError::Digest(actual));
                }
                (b, Method::Copy)
            }
        };
        let mut files = self.files.lock().unwrap();
        if !replace && files.contains_key(&k) {
            return Err(PutError::Exists);
        }
        files.insert(k, bytes);
        Ok(method)
    }

    fn put_folder(&self, dir: &Path, files: &[(&str, &[u8])]) -> Result<(), PutError> {
        if self.list(dir).is_ok() {
            return Err(PutError::Exists);
        }
        for (name, bytes) in files {
            self.put(&dir.join(name), Body::Bytes(bytes), false)?;
        }
        Ok(())
    }

    fn create_dir(&self, _: &Path) -> io::Result<()> {
        Ok(())
    }

    fn remove_file(&self, rel: &Path) -> io::Result<()> {
        self.files.lock().unwrap().remove(&key(rel));
        Ok(())
    }

    fn remove_tree(&self, rel: &Path) -> io::Result<()> {
        let prefix = format!("{}/", key(rel));
        self.files
            .lock()
            .unwrap()
            .retain(|k, _| !k.starts_with(&prefix));
        Ok(())
    }

    fn has_folders(&self) -> bool {
        false
    }

    fn remove_empty_dir(&self, rel: &Path) -> io::Result<bool> {
        Ok(self.list(rel).is_err())
    }
}
