//! Putting a file or a folder in place in one step, on a local filesystem.
//!
//! Everything regkit writes on disk appears through one of these: a new
//! file or folder is built under another name and renamed into place with
//! `renameat2(RENAME_NOREPLACE)`, which fails if something appeared there
//! meanwhile; `--force` swaps the new output with the old one
//! (`RENAME_EXCHANGE`) before the old one is removed. Readers therefore see
//! the old thing or the whole new one, never a part, and a second regkit
//! writing the same output at once loses with a clear error instead of
//! silently winning.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};

use crate::error::{Error, Result};

/// Renames `from` to `to` unless `to` exists (then `AlreadyExists`).
///
/// Filesystems without `RENAME_NOREPLACE` (some network filesystems answer
/// `EINVAL`) get a hardlink-and-unlink for files, which is just as safe,
/// and a checked rename for folders.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    match renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => Ok(()),
        Err(Errno::EINVAL | Errno::ENOSYS) => {
            if fs::symlink_metadata(from)?.is_dir() {
                if to.symlink_metadata().is_ok() {
                    return Err(io::ErrorKind::AlreadyExists.into());
                }
                fs::rename(from, to)
            } else {
                fs::hard_link(from, to)?;
                fs::remove_file(from)
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Swaps `a` and `b`, both of which must exist.
pub fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    renameat2(AT_FDCWD, a, AT_FDCWD, b, RenameFlags::RENAME_EXCHANGE).map_err(io::Error::from)
}

/// The last step of every new output: the finished `staging` (a file or a
/// folder) becomes `out`. Without `force`, an `out` that appeared since the
/// command checked is left alone and the command fails. With `force`, an
/// existing `out` is swapped out and removed only once the new one is in
/// place.
pub fn commit(staging: &Path, out: &Path, force: bool) -> Result<()> {
    match rename_noreplace(staging, out) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && !force => {
            return Err(Error::OutputAppeared { path: out.into() })
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io("rename the output into place", out, e)),
    }
    // --force: put the new output in the old one's place in one step; the
    // old one is then at the staging name.
    match exchange(staging, out) {
        Ok(()) => {}
        // It went away meanwhile: nothing to replace.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return rename_noreplace(staging, out)
                .map_err(|e| Error::io("rename the output into place", out, e))
        }
        Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => {
            // No RENAME_EXCHANGE here: move the old one aside first.
            let old = sibling(out, "regkit-old");
            fs::rename(out, &old).map_err(|e| Error::io("move the old output aside", out, e))?;
            rename_noreplace(staging, out)
                .map_err(|e| Error::io("rename the output into place", out, e))?;
            return remove_any(&old).map_err(|e| Error::io("remove the old output", &old, e));
        }
        Err(e) => return Err(Error::io("replace the output", out, e)),
    }
    remove_any(staging).map_err(|e| Error::io("remove the old output", staging, e))
}

/// Removes a file or a folder with everything in it; gone already is fine.
pub fn remove_any(path: &Path) -> io::Result<()> {
    let r = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// The marker in the names of everything regkit builds aside.
pub const TMP_MARK: &str = "regkit-tmp";

/// A hidden sibling of `path`: `.<name>.<tag>-<pid>`.
pub fn sibling(path: &Path, tag: &str) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(path.file_name().unwrap_or_else(|| "out".as_ref()));
    name.push(format!(".{tag}-{}", std::process::id()));
    path.with_file_name(name)
}

/// A name for a temporary file or folder that no other regkit process (and
/// no other call in this one) uses: `<pid>-<n>+<host>`. The pid and host
/// let a later run tell a leftover of a dead process from the work of a
/// live one.
pub fn temp_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}+{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        hostname()
    )
}

/// This machine's name (as the kernel has it).
pub fn hostname() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    })
}

/// Who made a temporary name of [`temp_name`]: pid and host.
pub fn owner(name: &str) -> Option<(u32, &str)> {
    let (pid_n, host) = name.split_once('+')?;
    let (pid, n) = pid_n.split_once('-')?;
    n.parse::<u64>().ok()?;
    Some((pid.parse().ok()?, host))
}

/// Whether the maker of a temporary name is certainly gone: it ran on
/// this machine and its pid is not alive. (A pid reused since keeps the
/// leftover: that only errs on the safe side.)
pub fn owner_gone(name: &str) -> bool {
    match owner(name) {
        Some((pid, host)) => host == hostname() && !pid_alive(pid),
        None => false,
    }
}

/// Whether a process with this pid is alive on this machine.
pub fn pid_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_refuses_what_appeared_and_force_swaps() {
        let t = tempfile::tempdir().unwrap();
        let (staging, out) = (t.path().join("s"), t.path().join("out"));
        fs::create_dir(&staging).unwrap();
        fs::write(staging.join("new"), b"1").unwrap();
        fs::create_dir(&out).unwrap();
        fs::write(out.join("theirs"), b"2").unwrap();
        let err = commit(&staging, &out, false).unwrap_err();
        assert!(matches!(err, Error::OutputAppeared { .. }), "{err}");
        assert!(out.join("theirs").exists() && staging.join("new").exists());
        commit(&staging, &out, true).unwrap();
        assert!(out.join("new").exists() && !out.join("theirs").exists());
        assert!(!staging.exists());
        // A file output, nothing in the way.
        fs::write(&staging, b"f").unwrap();
        let file = t.path().join("file");
        commit(&staging, &file, false).unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"f");
    }

    #[test]
    fn temporary_names_carry_their_owner() {
        let me = std::process::id();
        let name = temp_name();
        assert_eq!(owner(&name), Some((me, hostname())));
        assert!(!owner_gone(&name));
        // A dead pid on this machine: pid_max is at most 2^22.
        let dead = format!("{}-0+{}", 1u32 << 23, hostname());
        assert!(owner_gone(&dead));
        // Another machine's leftover is never judged by its pid.
        assert!(!owner_gone(&format!("{}-0+elsewhere", 1u32 << 23)));
        assert_eq!(owner("junk"), None);
    }
}
