//! Deleting from a storage tree, for the few commands that own ROOT's
//! writes (gc, delete), and the [`Lock`] every command that writes ROOT
//! takes. Paths come only from [`crate::paths::Spec`]; a place that is
//! already gone counts as removed.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

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

    /// Whether `spec` was written (its modification or status change
    /// time) after `since`; `false` if it does not exist. A hardlink or
    /// rename changes the status time, so a blob put in place by any writer
    /// after `since` counts, however old its content.
    pub fn changed_since(&self, spec: &Spec, since: SystemTime) -> Result<bool> {
        let p = self.path(spec);
        let meta = match fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io("stat", p, e)),
        };
        let changed = UNIX_EPOCH
            + Duration::new(
                u64::try_from(meta.ctime()).unwrap_or(0),
                u32::try_from(meta.ctime_nsec()).unwrap_or(0),
            );
        let modified = meta.modified().unwrap_or(UNIX_EPOCH);
        Ok(changed > since || modified > since)
    }
}

/// The lock that keeps gc and the commands that write a tree apart: any
/// number of writers (unpack, import and select into an existing tree,
/// delete) hold it shared; gc holds it alone. It is `flock(2)` on the `v2`
/// folder itself, held by an open descriptor: nothing is written for it,
/// and the kernel releases it when the holder exits, however it exits
/// (`kill -9` included), so a lock is never stale. Taking it never waits:
/// a run that finds it taken fails at once, saying who holds it.
///
/// While gc holds it, `<v2>/.regkit-gc.lock` names the run (pid, host,
/// start) for those messages; one left by a killed gc names nobody (the
/// lock is free) and is replaced by the next gc.
pub struct Lock {
    /// `None` for a store with no local folder (see [`Lock::shared`]).
    _held: Option<Flock<File>>,
    /// gc's note, removed when the lock is released.
    note: Option<PathBuf>,
    /// When gc's note was written, by the tree's own clock.
    taken: Option<SystemTime>,
}

impl Lock {
    /// When gc took the lock, by the clock that stamps the tree's files
    /// (its note's modification time): a file stamped later was written
    /// since. (The system clock and file stamps may differ by a tick.)
    pub fn taken_at(&self) -> Option<SystemTime> {
        self.taken
    }
}

impl Lock {
    /// The writers' lock: shared with other writers, refused while gc runs.
    /// A tree in an object store has no gc yet, so nothing to keep out: its
    /// lock holds nothing until gc comes with a lock object of its own.
    pub fn shared(store: &Store) -> Result<Lock> {
        let Ok(v2) = local_v2(store) else {
            return Ok(Lock {
                _held: None,
                note: None,
                taken: None,
            });
        };
        match take(&v2, FlockArg::LockSharedNonblock)? {
            Some(held) => Ok(Lock {
                _held: Some(held),
                note: None,
                taken: None,
            }),
            None => Err(busy(&v2, Holder::Gc)),
        }
    }

    /// gc's lock: refused while any other regkit writes or collects.
    pub fn exclusive(store: &Store) -> Result<Lock> {
        let v2 = local_v2(store)?;
        let Some(held) = take(&v2, FlockArg::LockExclusiveNonblock)? else {
            // Writers share the lock; another gc holds it alone.
            let holder = match take(&v2, FlockArg::LockSharedNonblock)? {
                Some(_) => Holder::Writers,
                None => Holder::Gc,
            };
            return Err(busy(&v2, holder));
        };
        let note = v2.join(Spec::GcLock.path());
        let text = format!(
            "regkit gc\npid {}\nhost {}\nstarted {}\n",
            std::process::id(),
            hostname(),
            crate::gc::time::format_rfc3339(SystemTime::now())
        );
        fs::write(&note, text).map_err(|e| Error::io("write", &note, e))?;
        let taken = fs::metadata(&note).and_then(|m| m.modified()).ok();
        Ok(Lock {
            _held: Some(held),
            note: Some(note),
            taken,
        })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if let Some(note) = &self.note {
            let _ = fs::remove_file(note);
        }
    }
}

fn local_v2(store: &Store) -> Result<PathBuf> {
    store
        .backend()
        .local_path(Path::new(""))
        .ok_or_else(|| Error::invalid("this storage backend cannot be locked for writing offline"))
}

/// Takes the lock on `v2`; `None` if another holder has it.
fn take(v2: &Path, how: FlockArg) -> Result<Option<Flock<File>>> {
    let dir = File::open(v2).map_err(|e| Error::io("open folder", v2, e))?;
    match Flock::lock(dir, how) {
        Ok(held) => Ok(Some(held)),
        Err((_, Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(Error::Refused {
            message: format!("cannot lock this tree (flock: {e})"),
            path: v2.to_path_buf(),
            help: "regkit locks the v2 folder with flock(2) so that gc and the commands that write never run at once; this filesystem does not support it".into(),
        }),
    }
}

/// Who holds a lock that could not be taken.
enum Holder {
    Gc,
    Writers,
}

fn busy(v2: &Path, holder: Holder) -> Error {
    let note = v2.join(Spec::GcLock.path());
    match holder {
        Holder::Gc => {
            let who = fs::read_to_string(&note)
                .ok()
                .map(|t| describe_note(&t))
                .unwrap_or_default();
            Error::Refused {
                message: format!("a regkit gc is collecting this tree{who}"),
                path: if who.is_empty() { v2.to_path_buf() } else { note },
                help: "run again once it has finished (regkit does not wait)".into(),
            }
        }
        Holder::Writers => Error::Refused {
            message: "another regkit is writing to this tree (unpack, import, select into it, or delete)".into(),
            path: v2.to_path_buf(),
            help: "run gc again once it has finished (gc never removes blobs a writer is putting in place)".into(),
        },
    }
}

/// ` (pid 42 on host reg1, started 2026-01-01T00:00:00Z)` from gc's note.
fn describe_note(text: &str) -> String {
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
    };
    match (field("pid "), field("host "), field("started ")) {
        (Some(pid), Some(host), Some(started)) => {
            format!(" (pid {pid} on host {host}, started {started})")
        }
        _ => String::new(),
    }
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, Store) {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("docker/registry/v2/blobs")).unwrap();
        let store = Store::open(t.path()).unwrap();
        (t, store)
    }

    #[test]
    fn writers_share_the_lock_and_gc_holds_it_alone() {
        let (_t, store) = tree();
        let a = Lock::shared(&store).unwrap();
        let b = Lock::shared(&store).unwrap();
        let e = Lock::exclusive(&store).err().unwrap();
        assert!(e.to_string().contains("writing to this tree"), "{e}");
        drop((a, b));
        let gc = Lock::exclusive(&store).unwrap();
        let note = store.v2().join(Spec::GcLock.path());
        assert!(fs::read_to_string(&note).unwrap().contains("pid "));
        let e = Lock::shared(&store).err().unwrap();
        assert!(
            e.to_string().contains("gc is collecting this tree (pid "),
            "{e}"
        );
        assert!(Lock::exclusive(&store).is_err());
        drop(gc);
        assert!(!note.exists());
        // A note left by a killed gc holds nothing.
        fs::write(
            &note,
            "regkit gc\npid 1\nhost x\nstarted 2000-01-01T00:00:00Z\n",
        )
        .unwrap();
        drop(Lock::shared(&store).unwrap());
        drop(Lock::exclusive(&store).unwrap());
        assert!(!note.exists());
    }

    #[test]
    fn changes_since_a_time_count_a_new_hardlink() {
        let (t, store) = tree();
        let w = TreeWriter::new(&store).unwrap();
        let d = crate::Digest::sha256_of(b"x");
        let p = w.path(&Spec::BlobData(&d));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, b"x").unwrap();
        let later = SystemTime::now() + Duration::from_secs(3600);
        assert!(!w.changed_since(&Spec::BlobData(&d), later).unwrap());
        assert!(w.changed_since(&Spec::BlobData(&d), UNIX_EPOCH).unwrap());
        let since = SystemTime::now();
        std::thread::sleep(Duration::from_millis(20));
        assert!(!w.changed_since(&Spec::BlobData(&d), since).unwrap());
        fs::hard_link(&p, t.path().join("elsewhere")).unwrap();
        assert!(w.changed_since(&Spec::BlobData(&d), since).unwrap());
        let gone = crate::Digest::sha256_of(b"gone");
        assert!(!w.changed_since(&Spec::BlobData(&gone), since).unwrap());
    }
}
