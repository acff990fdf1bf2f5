//! Deleting from a storage tree, for the few commands that own ROOT's
//! writes (gc, delete). Paths come only from [`crate::paths::Spec`]; a
//! place that is already gone counts as removed.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::paths::Spec;
use crate::store::Store;

/// Removes files and folders of one local tree.
pub struct TreeWriter {
    v2: PathBuf,
}

impl TreeWriter {
    /// A writer over the tree of `store`; refused for a store with no local
    /// folder.
    pub fn new(store: &Store) -> Result<TreeWriter> {
        if store.backend().local_path(Path::new("")).is_none() {
            return Err(Error::invalid(
                "this storage backend cannot be written to offline",
            ));
        }
        Ok(TreeWriter {
            v2: store.v2().to_path_buf(),
        })
    }

    pub fn path(&self, spec: &Spec) -> PathBuf {
        self.v2.join(spec.path())
    }

    /// Removes one file.
    pub fn remove_file(&self, spec: &Spec) -> Result<()> {
        let p = self.path(spec);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove file", p, e)),
        }
    }

    /// Removes a folder and everything in it.
    pub fn remove_tree(&self, spec: &Spec) -> Result<()> {
        let p = self.path(spec);
        match fs::remove_dir_all(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove folder", p, e)),
        }
    }

    /// Removes a folder if it is empty; says whether it is gone.
    pub fn remove_empty_dir(&self, spec: &Spec) -> Result<bool> {
        let p = self.path(spec);
        match fs::remove_dir(&p) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOTEMPTY) => Ok(false),
            Err(e) => Err(Error::io("remove folder", p, e)),
        }
    }

    /// Takes regkit's lock on the tree (created with O_EXCL); released when
    /// the returned guard drops.
    pub fn lock(&self) -> Result<LockGuard> {
        let p = self.path(&Spec::GcLock);
        match fs::OpenOptions::new().write(true).create_new(true).open(&p) {
            Ok(mut f) => {
                let _ = writeln!(f, "regkit pid {}", std::process::id());
                Ok(LockGuard { path: p })
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(locked(&p)),
            Err(e) => Err(Error::io("create lock file", p, e)),
        }
    }

    /// Refuses if another regkit holds the lock (for dry runs, which take
    /// no lock).
    pub fn check_unlocked(&self) -> Result<()> {
        let p = self.path(&Spec::GcLock);
        if p.symlink_metadata().is_ok() {
            return Err(locked(&p));
        }
        Ok(())
    }
}

fn locked(p: &Path) -> Error {
    let holder = fs::read_to_string(p).unwrap_or_default();
    Error::Refused {
        message: format!(
            "another regkit gc or delete is working on this tree (its lock file exists{})",
            match holder.trim() {
                "" => String::new(),
                h => format!(": {h}"),
            }
        ),
        path: p.to_path_buf(),
        help: "if no regkit is running on this tree (one was killed), remove the lock file and run again".into(),
    }
}

/// Removes the lock file when dropped.
pub struct LockGuard {
    path: PathBuf,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_is_exclusive_and_released() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("docker/registry/v2/blobs")).unwrap();
        let store = Store::open(t.path()).unwrap();
        let w = TreeWriter::new(&store).unwrap();
        let guard = w.lock().unwrap();
        assert!(matches!(w.lock(), Err(Error::Refused { .. })));
        assert!(w.check_unlocked().is_err());
        drop(guard);
        assert!(w.check_unlocked().is_ok());
        assert!(w.lock().is_ok());
    }
}
