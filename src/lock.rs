//! The [`Lock`] that keeps gc apart from every command that writes a tree:
//! `flock(2)` on a filesystem, lock objects in a bucket.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result};
use crate::paths::Spec;
use crate::store::Store;

/// The lock that keeps gc and the commands that write a tree apart: any
/// number of writers (unpack, import and select into an existing tree,
/// delete, pull) hold it shared; gc holds it alone. Taking it never waits:
/// a run that finds it taken fails at once, saying who holds it.
///
/// On a filesystem it is `flock(2)` on the `v2` folder itself, held by an
/// open descriptor: nothing is written for it, and the kernel releases it
/// when the holder exits, however it exits (`kill -9` included), so a lock
/// is never stale. While gc holds it, `<v2>/.regkit-gc.lock` names the run
/// (pid, host, start) for those messages; one left by a killed gc names
/// nobody (the lock is free) and is replaced by the next gc.
///
/// In a bucket there is no flock: gc creates `<v2>/.regkit-gc.lock` only if
/// it does not exist (a conditional PUT), then looks for writers; a writer
/// first puts `<v2>/.regkit-writers/<pid>-<n>+<host>`, then looks for gc's
/// lock. With S3's read-after-write consistency one of the two always sees
/// the other. Objects left by a killed run are stale once their run is
/// gone from this host, or after 24 hours for another host's.
pub struct Lock {
    held: Held,
    /// When gc's note was written, by the tree's own clock.
    taken: Option<SystemTime>,
}

enum Held {
    /// A store that cannot be locked (an in-memory one): nothing.
    Nothing,
    Flock {
        _fd: Flock<File>,
        /// gc's note, removed when the lock is released.
        note: Option<PathBuf>,
    },
    /// An object of the bucket, removed when the lock is released.
    Object { store: Store, rel: PathBuf },
}

impl Lock {
    /// When gc took the lock, by the clock that stamps the tree's files
    /// (its note's modification time): a file stamped later was written
    /// since. (The system clock and file stamps may differ by a tick.)
    pub fn taken_at(&self) -> Option<SystemTime> {
        self.taken
    }
}

/// Where writers announce themselves in a bucket.
const WRITERS: &str = ".regkit-writers";

impl Lock {
    /// The writers' lock: shared with other writers, refused while gc runs.
    pub fn shared(store: &Store) -> Result<Lock> {
        if store.s3().is_some() {
            return shared_object(store);
        }
        let Ok(v2) = local_v2(store) else {
            return Ok(Lock {
                held: Held::Nothing,
                taken: None,
            });
        };
        match take(&v2, FlockArg::LockSharedNonblock)? {
            Some(held) => Ok(Lock {
                held: Held::Flock {
                    _fd: held,
                    note: None,
                },
                taken: None,
            }),
            None => Err(busy(&v2, Holder::Gc)),
        }
    }

    /// gc's lock: refused while any other regkit writes or collects.
    pub fn exclusive(store: &Store) -> Result<Lock> {
        if store.s3().is_some() {
            return exclusive_object(store);
        }
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
        fs::write(&note, note_text()).map_err(|e| Error::io("write", &note, e))?;
        let taken = fs::metadata(&note).and_then(|m| m.modified()).ok();
        Ok(Lock {
            held: Held::Flock {
                _fd: held,
                note: Some(note),
            },
            taken,
        })
    }
}

fn note_text() -> String {
    format!(
        "regkit gc\npid {}\nhost {}\nstarted {}\n",
        std::process::id(),
        hostname(),
        crate::gc::time::format_rfc3339(SystemTime::now())
    )
}

/// How old a lock object of another host must be to count as left behind.
const STALE_ELSEWHERE: Duration = Duration::from_secs(24 * 3600);

/// Whether gc's note (its text, and its object's time) names a run that
/// is gone: on this host with its pid dead, or anywhere a day ago.
fn note_stale(text: &str, written: Option<SystemTime>) -> bool {
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
    };
    let here = field("host ").as_deref() == Some(hostname().as_str());
    let dead = field("pid ")
        .and_then(|p| p.parse().ok())
        .is_some_and(|p| !crate::atomic::pid_alive(p));
    let old = written
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age >= STALE_ELSEWHERE);
    (here && dead) || old
}

/// gc's note in a bucket, if it holds one that is not stale.
fn live_gc_note(store: &Store) -> Result<Option<String>> {
    let Some(bytes) = store.read_file(&Spec::GcLock, 4096)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let written = store.modified(&Spec::GcLock)?;
    if note_stale(&text, written) {
        return Ok(None);
    }
    Ok(Some(text))
}

fn busy_object(store: &Store, holder: Holder, who: &str) -> Error {
    match holder {
        Holder::Gc => Error::Refused {
            message: format!("a regkit gc is collecting this tree{who}"),
            path: store.display(&Spec::GcLock),
            help: "run again once it has finished (regkit does not wait)".into(),
        },
        Holder::Writers => Error::Refused {
            message: format!("another regkit is writing to this tree{who}"),
            path: store.display(&Spec::Staging).with_file_name(WRITERS),
            help: "run gc again once it has finished (gc never removes blobs a writer is putting in place)".into(),
        },
    }
}

fn shared_object(store: &Store) -> Result<Lock> {
    let rel = PathBuf::from(WRITERS).join(crate::atomic::temp_name());
    let put = store.backend().put(
        &rel,
        crate::store::Body::Bytes(note_text().as_bytes()),
        false,
    );
    if let Err(e) = put {
        return Err(Error::io(
            "write",
            store.backend().display(&rel),
            match e {
                crate::store::PutError::Write(e) | crate::store::PutError::Read(e) => e,
                _ => std::io::Error::other("the writer's lock object exists"),
            },
        ));
    }
    let lock = Lock {
        held: Held::Object {
            store: store.clone(),
            rel,
        },
        taken: None,
    };
    // Announced first, then looked: gc does the same the other way round.
    if let Some(text) = live_gc_note(store)? {
        return Err(busy_object(store, Holder::Gc, &describe_note(&text)));
    }
    Ok(lock)
}

fn exclusive_object(store: &Store) -> Result<Lock> {
    let rel = Spec::GcLock.path();
    let text = note_text();
    for attempt in 0..2 {
        match store
            .backend()
            .put(&rel, crate::store::Body::Bytes(text.as_bytes()), false)
        {
            Ok(_) => break,
            Err(crate::store::PutError::Exists) if attempt == 0 => match live_gc_note(store)? {
                Some(other) => return Err(busy_object(store, Holder::Gc, &describe_note(&other))),
                // Left by a gc that is gone: taken over.
                None => store.remove_file(&Spec::GcLock)?,
            },
            Err(crate::store::PutError::Exists) => {
                return Err(busy_object(store, Holder::Gc, ""));
            }
            Err(crate::store::PutError::Write(e) | crate::store::PutError::Read(e)) => {
                return Err(Error::io("write", store.display(&Spec::GcLock), e))
            }
            Err(crate::store::PutError::Digest(_)) => unreachable!("no digest asked"),
        }
    }
    // S3 stamps objects to the second: anything of that second counts as
    // written since.
    let taken = store
        .modified(&Spec::GcLock)?
        .map(|t| t - Duration::from_secs(1));
    let lock = Lock {
        held: Held::Object {
            store: store.clone(),
            rel,
        },
        taken,
    };
    // Taken first, then looked: writers do the same the other way round.
    let writers = store.backend().list(Path::new(WRITERS)).unwrap_or_default();
    for w in writers {
        let rel = PathBuf::from(WRITERS).join(&w.name);
        let written = store.backend().modified(&rel).ok();
        let old = written
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age >= STALE_ELSEWHERE);
        if crate::atomic::owner_gone(&w.name) || old {
            // Left by a writer that is gone.
            let _ = store.backend().remove_file(&rel);
            continue;
        }
        let who = match crate::atomic::owner(&w.name) {
            Some((pid, host)) => format!(" (pid {pid} on host {host})"),
            None => String::new(),
        };
        return Err(busy_object(store, Holder::Writers, &who));
    }
    Ok(lock)
}

impl Drop for Lock {
    fn drop(&mut self) {
        match &self.held {
            Held::Flock {
                note: Some(note), ..
            } => {
                let _ = fs::remove_file(note);
            }
            Held::Object { store, rel } => {
                let _ = store.backend().remove_file(rel);
            }
            _ => {}
        }
    }
}

fn local_v2(store: &Store) -> Result<PathBuf> {
    if store.is_bundle() {
        return Err(Error::Invalid {
            message: crate::store::tar::READ_ONLY.into(),
            path: Some(store.v2().to_path_buf()),
        });
    }
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
}
