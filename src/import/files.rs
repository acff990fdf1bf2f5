//! The files of an import source, by relative path: a folder, or a tar
//! unpacked to a staging folder. Every file whose bytes go into ROOT is
//! checked against the digest it must have; a folder's files are hashed
//! once per inode, however many images hold them (extracted trees are
//! hardlinks), an archive's were hashed while unpacking.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::digest::{self, Algorithm, Digest};
use crate::error::{Error, Result};
use crate::import::tar::normalize;

/// A file of an archive, unpacked.
#[derive(Debug, Clone)]
pub struct Member {
    /// Where it was unpacked.
    pub path: PathBuf,
    pub size: u64,
    /// Its sha256.
    pub digest: Digest,
}

/// A file ready to be linked into ROOT: its local path, size and digest.
#[derive(Debug, Clone)]
pub struct Local {
    pub path: PathBuf,
    pub size: u64,
    pub digest: Digest,
}

/// Digests of local files by inode, shared by every folder of one import.
#[derive(Default)]
pub struct Hashes(Mutex<HashMap<(u64, u64, Algorithm), Digest>>);

enum Backing {
    Folder(PathBuf),
    Archive(HashMap<String, Member>),
}

/// An import source's files.
pub struct Files {
    /// The source as the user named it (the folder, or the archive).
    pub origin: PathBuf,
    backing: Backing,
    hashes: Arc<Hashes>,
}

impl Files {
    pub fn folder(path: &Path, hashes: Arc<Hashes>) -> Files {
        Files {
            origin: path.to_path_buf(),
            backing: Backing::Folder(path.to_path_buf()),
            hashes,
        }
    }

    pub fn archive(path: &Path, members: HashMap<String, Member>, hashes: Arc<Hashes>) -> Files {
        Files {
            origin: path.to_path_buf(),
            backing: Backing::Archive(members),
            hashes,
        }
    }

    /// A sibling folder of this one, sharing its digest cache.
    pub fn sub(&self, path: &Path) -> Files {
        Files::folder(path, self.hashes.clone())
    }

    pub fn is_archive(&self) -> bool {
        matches!(self.backing, Backing::Archive(_))
    }

    /// How to name a file of the source in messages: its path, or
    /// `ARCHIVE:member`.
    pub fn display(&self, rel: &str) -> PathBuf {
        match &self.backing {
            Backing::Folder(p) => p.join(rel),
            Backing::Archive(_) => PathBuf::from(format!("{}:{rel}", self.origin.display())),
        }
    }

    /// The local path and size of a regular file of the source, if there is
    /// one (symlinks resolved, so that hardlinks link their target).
    pub fn local(&self, rel: &str) -> Result<Option<(PathBuf, u64)>> {
        // Paths from manifest.json may be `./x`; none may leave the source.
        let clean = normalize("", rel).ok_or_else(|| Error::Invalid {
            message: format!("`{rel}` points outside the source; refusing it"),
            path: Some(self.origin.clone()),
        })?;
        match &self.backing {
            Backing::Archive(m) => Ok(m.get(&clean).map(|m| (m.path.clone(), m.size))),
            Backing::Folder(root) => {
                let path = root.join(&clean);
                let meta = match path.symlink_metadata() {
                    Ok(m) => m,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(Error::io("stat", &path, e)),
                };
                let (path, meta) = if meta.file_type().is_symlink() {
                    match fs::canonicalize(&path).and_then(|p| p.metadata().map(|m| (p, m))) {
                        Ok(pm) => pm,
                        Err(_) => return Ok(None),
                    }
                } else {
                    (path, meta)
                };
                Ok(meta.is_file().then_some((path, meta.len())))
            }
        }
    }

    /// Whether the source holds a regular file at `rel`.
    pub fn exists(&self, rel: &str) -> Result<bool> {
        Ok(self.local(rel)?.is_some())
    }

    /// The bytes of a small file (`limit` at most), or `None` if absent.
    pub fn read(&self, rel: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let Some((path, size)) = self.local(rel)? else {
            return Ok(None);
        };
        if size > limit {
            return Err(Error::Invalid {
                message: format!("this file has {size} bytes, more than the {limit} allowed"),
                path: Some(self.display(rel)),
            });
        }
        let bytes = fs::read(&path).map_err(|e| Error::io("read", self.display(rel), e))?;
        Ok(Some(bytes))
    }

    /// A file with its sha256, or `None` if absent.
    pub fn file(&self, rel: &str) -> Result<Option<Local>> {
        self.file_in(rel, Algorithm::Sha256)
    }

    fn file_in(&self, rel: &str, algo: Algorithm) -> Result<Option<Local>> {
        let Some((path, size)) = self.local(rel)? else {
            return Ok(None);
        };
        if let Backing::Archive(m) = &self.backing {
            let clean = normalize("", rel).expect("checked by local");
            let digest = &m[&clean].digest;
            if digest.algorithm() == algo {
                let digest = digest.clone();
                return Ok(Some(Local { path, size, digest }));
            }
        }
        let digest = self.hash(&path, algo, &self.display(rel))?;
        Ok(Some(Local { path, size, digest }))
    }

    /// The file that must hold `digest` (and `size` bytes, when known):
    /// an error naming it when it is absent or holds something else.
    pub fn expect(
        &self,
        rel: &str,
        digest: &Digest,
        size: Option<u64>,
        what: &str,
    ) -> Result<Local> {
        let missing = || Error::MissingBlob {
            digest: digest.clone(),
            what: what.into(),
            path: self.display(rel),
        };
        let (_, actual_size) = self.local(rel)?.ok_or_else(missing)?;
        if let Some(want) = size.filter(|s| *s != actual_size) {
            return Err(Error::SizeMismatch {
                path: self.display(rel),
                digest: digest.clone(),
                expected: want,
                actual: actual_size,
            });
        }
        let local = self.file_in(rel, digest.algorithm())?.ok_or_else(missing)?;
        if local.digest != *digest {
            return Err(Error::DigestMismatch {
                path: self.display(rel),
                expected: digest.clone(),
                actual: local.digest,
            });
        }
        Ok(local)
    }

    fn hash(&self, path: &Path, algo: Algorithm, shown: &Path) -> Result<Digest> {
        let file = File::open(path).map_err(|e| Error::io("open", shown, e))?;
        let meta = file.metadata().map_err(|e| Error::io("stat", shown, e))?;
        let key = (meta.dev(), meta.ino(), algo);
        if let Some(d) = self.hashes.0.lock().expect("not poisoned").get(&key) {
            return Ok(d.clone());
        }
        let (d, _) = digest::hash_reader(algo, file.take(u64::MAX))
            .map_err(|e| Error::io("read", shown, e))?;
        self.hashes
            .0
            .lock()
            .expect("not poisoned")
            .insert(key, d.clone());
        Ok(d)
    }
}
