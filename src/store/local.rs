//! The local filesystem backend.

use std::fs;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;

use super::{Backend, Body, DirEntry, Method, PutError};
use crate::atomic;
use crate::digest::{copy_hashed, CopyError};
use crate::paths::STAGING_DIR;
use crate::sink::place::Placer;

/// The local filesystem backend. It holds the `v2` folder open and reads
/// relative to it (`openat`, `fstatat`), so each look-up walks only the
/// path inside the tree.
///
/// Writes are built in the tree's staging folder (`v2/.regkit-tmp/`, on
/// the tree's filesystem, never read by the registry) and renamed into
/// place without replacing; hardlinks are made at their final name
/// directly (a link appears whole). A leftover of a killed run is named
/// `<pid>-<n>+<host>` there, so gc can tell it from the work of a live one.
pub struct FsBackend {
    v2: PathBuf,
    dir: Option<OwnedFd>,
    placer: Placer,
}

impl FsBackend {
    pub fn new(v2: PathBuf) -> FsBackend {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let dir = nix::fcntl::open(&v2, flags, Mode::empty()).ok();
        FsBackend {
            v2,
            dir,
            placer: Placer::new(),
        }
    }

    /// A new temporary name in the staging folder (created if needed).
    fn temp(&self) -> io::Result<PathBuf> {
        let staging = self.v2.join(STAGING_DIR);
        match fs::create_dir(&staging) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        Ok(staging.join(atomic::temp_name()))
    }

    fn create_parent(&self, dst: &Path) -> io::Result<()> {
        match dst.parent() {
            Some(p) => fs::create_dir_all(p),
            None => Ok(()),
        }
    }

    /// Renames the finished temporary `tmp` to `dst`; removes `tmp` if that
    /// fails.
    fn commit(&self, tmp: &Path, dst: &Path, replace: bool) -> Result<(), PutError> {
        let r = if replace {
            fs::rename(tmp, dst)
        } else {
            atomic::rename_noreplace(tmp, dst)
        };
        let r = match r {
            // The staging folder is on another filesystem than this part of
            // the tree (a bind mount inside it): stage beside `dst`.
            Err(e) if e.raw_os_error() == Some(nix::libc::EXDEV) => {
                let near = atomic::sibling(dst, atomic::TMP_MARK);
                let r = fs::copy(tmp, &near).and_then(|_| {
                    if replace {
                        fs::rename(&near, dst)
                    } else {
                        atomic::rename_noreplace(&near, dst)
                    }
                });
                if r.is_err() {
                    let _ = fs::remove_file(&near);
                }
                r
            }
            r => r,
        };
        match r {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = fs::remove_file(tmp);
                Err(if e.kind() == io::ErrorKind::AlreadyExists {
                    PutError::Exists
                } else {
                    PutError::Write(e)
                })
            }
        }
    }

    /// Writes `body` into the new file `tmp`.
    fn fill(&self, tmp: &Path, body: Body<'_>) -> Result<Method, PutError> {
        match body {
            Body::Bytes(b) => {
                fs::write(tmp, b).map_err(PutError::Write)?;
                Ok(Method::Written)
            }
            Body::Stream { reader, digest } => {
                let out = fs::File::options()
                    .write(true)
                    .create_new(true)
                    .open(tmp)
                    .map_err(PutError::Write)?;
                let (actual, _) = copy_hashed(reader, out, digest.map(|d| d.algorithm())).map_err(
                    |e| match e {
                        CopyError::Read(e) => PutError::Read(e),
                        CopyError::Write(e) => PutError::Write(e),
                    },
                )?;
                match (actual, digest) {
                    (Some(a), Some(d)) if a != *d => Err(PutError::Digest(a)),
                    _ => Ok(Method::Copy),
                }
            }
            Body::File { path, digest } => {
                self.placer
                    .place_file(path, tmp, digest)
                    .map_err(|e| match e {
                        crate::Error::DigestMismatch { actual, .. } => PutError::Digest(actual),
                        crate::Error::Io { action, source, .. }
                            if action == "read" || action == "open" =>
                        {
                            PutError::Read(source)
                        }
                        crate::Error::Io { source, .. } => PutError::Write(source),
                        e => PutError::Write(io::Error::other(e.to_string())),
                    })
            }
        }
    }

    fn open_file(&self, rel: &Path) -> io::Result<fs::File> {
        match &self.dir {
            Some(dir) => open_regular(dir, rel),
            None => {
                let dir =
                    nix::fcntl::open(&self.v2, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty())?;
                open_regular(&dir, rel)
            }
        }
    }
}

/// Opens a file below a folder's descriptor for reading, refusing anything
/// but a regular file: a FIFO would block `open` forever (it is opened
/// without blocking, then refused), a folder or a device is no blob or
/// link. A symbolic link is followed to its content. The access time is not
/// updated when allowed (reading a tree should not write to it).
fn open_regular<Fd: std::os::fd::AsFd>(dir: &Fd, rel: &Path) -> io::Result<fs::File> {
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
    let fd = match nix::fcntl::openat(dir, rel, flags | OFlag::O_NOATIME, Mode::empty()) {
        Err(nix::errno::Errno::EPERM) => nix::fcntl::openat(dir, rel, flags, Mode::empty())?,
        r => r?,
    };
    let file = fs::File::from(fd);
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(crate::sink::place::not_regular(kind));
    }
    Ok(file)
}

/// Opens `rel` below `dir` for reading without leaving `dir` on the way.
fn open_beneath<Fd: std::os::fd::AsFd>(dir: &Fd, rel: &Path) -> io::Result<fs::File> {
    use nix::fcntl::{OpenHow, ResolveFlag};
    // Non-blocking: a FIFO put where a blob belongs must not hang the open.
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
    let resolve = ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS;
    let how = |flags| OpenHow::new().flags(flags).resolve(resolve);
    let opened = match nix::fcntl::openat2(dir, rel, how(flags | OFlag::O_NOATIME)) {
        Err(nix::errno::Errno::EPERM) => nix::fcntl::openat2(dir, rel, how(flags)),
        r => r,
    };
    let fd = match opened {
        Err(nix::errno::Errno::ENOSYS) => {
            if rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "not below the tree",
                ));
            }
            nix::fcntl::openat(dir, rel, flags | OFlag::O_NOFOLLOW, Mode::empty())?
        }
        r => r?,
    };
    Ok(fs::File::from(fd))
}

/// Reads a small file whole, refusing more than `limit` bytes. Links and
/// most manifests fit one read: a short read of a regular file is its end,
/// so they cost open, read, close.
pub fn read_small(file: &mut dyn Read, limit: u64) -> io::Result<Vec<u8>> {
    let mut first = [0u8; 8192];
    let n = loop {
        match file.read(&mut first) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => break r?,
        }
    };
    let mut buf = first[..n].to_vec();
    if n == first.len() && (n as u64) <= limit {
        file.take(limit + 1 - n as u64).read_to_end(&mut buf)?;
    }
    if buf.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("file is larger than {limit} bytes"),
        ));
    }
    Ok(buf)
}

impl Backend for FsBackend {
    fn list(&self, rel: &Path) -> io::Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(self.v2.join(rel))? {
            let entry = entry?;
            let ft = entry.file_type()?;
            let is_dir = if ft.is_symlink() {
                fs::metadata(entry.path())
                    .map(|m| m.is_dir())
                    .unwrap_or(false)
            } else {
                ft.is_dir()
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            out.push(DirEntry { name, is_dir });
        }
        Ok(out)
    }

    fn read(&self, rel: &Path, limit: u64) -> io::Result<Vec<u8>> {
        read_small(&mut self.open_file(rel)?, limit)
    }

    fn each_in(
        &self,
        dir: &Path,
        names: &[PathBuf],
        f: &mut dyn FnMut(usize, io::Result<&mut dyn Read>),
    ) {
        // For one or two files, opening the folder costs more than it saves.
        if names.len() <= 2 {
            for (i, n) in names.iter().enumerate() {
                match self.open_file(&dir.join(n)) {
                    Ok(mut file) => f(i, Ok(&mut file)),
                    Err(e) => f(i, Err(e)),
                }
            }
            return;
        }
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let folder = match &self.dir {
            Some(v2) => nix::fcntl::openat(v2, dir, flags, Mode::empty()),
            None => nix::fcntl::open(&self.v2.join(dir), flags, Mode::empty()),
        };
        let folder = match folder {
            Ok(fd) => fd,
            Err(e) => {
                for i in 0..names.len() {
                    f(i, Err(e.into()));
                }
                return;
            }
        };
        for (i, n) in names.iter().enumerate() {
            match open_regular(&folder, n) {
                Ok(mut file) => f(i, Ok(&mut file)),
                Err(e) => f(i, Err(e)),
            }
        }
    }

    fn open(&self, rel: &Path) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(self.open_file(rel)?))
    }

    fn size(&self, rel: &Path) -> io::Result<u64> {
        let meta = match &self.dir {
            Some(dir) => {
                let st = nix::sys::stat::fstatat(dir, rel, AtFlags::empty())?;
                if st.st_mode & nix::libc::S_IFMT == nix::libc::S_IFREG {
                    return Ok(st.st_size as u64);
                }
                fs::metadata(self.v2.join(rel))?
            }
            None => fs::metadata(self.v2.join(rel))?,
        };
        if !meta.is_file() {
            return Err(crate::sink::place::not_regular(meta.file_type()));
        }
        Ok(meta.len())
    }

    fn local_path(&self, rel: &Path) -> Option<PathBuf> {
        Some(self.v2.join(rel))
    }

    /// The whole file, opened so that no symbolic link (nor `..`) can lead
    /// its path out of the tree (`openat2` with `RESOLVE_BENEATH`; where the
    /// kernel lacks it, no symbolic link is followed at all).
    fn extent(&self, rel: &Path) -> io::Result<super::Extent> {
        let file = match &self.dir {
            Some(dir) => open_beneath(dir, rel)?,
            None => {
                let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
                let dir = nix::fcntl::open(&self.v2, flags, Mode::empty())?;
                open_beneath(&dir, rel)?
            }
        };
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(crate::sink::place::not_regular(meta.file_type()));
        }
        Ok(super::Extent {
            file: std::sync::Arc::new(file),
            offset: 0,
            len: meta.len(),
        })
    }

    fn display(&self, rel: &Path) -> PathBuf {
        self.v2.join(rel)
    }

    fn modified(&self, rel: &Path) -> io::Result<std::time::SystemTime> {
        fs::symlink_metadata(self.v2.join(rel))?.modified()
    }

    fn put(&self, rel: &Path, body: Body<'_>, replace: bool) -> Result<Method, PutError> {
        let dst = self.v2.join(rel);
        self.create_parent(&dst).map_err(PutError::Write)?;
        // A hardlink appears whole at its final name, and refuses to replace.
        if let (Body::File { path, .. }, false) = (&body, replace) {
            match self.placer.hardlink(path, &dst) {
                Ok(true) => return Ok(Method::Hardlink),
                Ok(false) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(PutError::Exists),
                Err(e) if e.kind() == io::ErrorKind::NotFound && !path.exists() => {
                    return Err(PutError::Read(e))
                }
                Err(e) if crate::sink::place::is_not_regular(&e) => return Err(PutError::Read(e)),
                Err(e) => return Err(PutError::Write(e)),
            }
        }
        if !replace && dst.symlink_metadata().is_ok() {
            return Err(PutError::Exists);
        }
        let tmp = self.temp().map_err(PutError::Write)?;
        match self.fill(&tmp, body) {
            Ok(m) => self.commit(&tmp, &dst, replace).map(|()| m),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    fn put_folder(&self, dir: &Path, files: &[(&str, &[u8])]) -> Result<(), PutError> {
        let dst = self.v2.join(dir);
        if dst.symlink_metadata().is_ok() {
            return Err(PutError::Exists);
        }
        self.create_parent(&dst).map_err(PutError::Write)?;
        let tmp = self.temp().map_err(PutError::Write)?;
        let built = (|| {
            for (name, bytes) in files {
                let p = tmp.join(name);
                self.create_parent(&p)?;
                fs::write(&p, bytes)?;
            }
            Ok(())
        })();
        let r = built.map_err(PutError::Write).and_then(|()| {
            atomic::rename_noreplace(&tmp, &dst).map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    PutError::Exists
                } else {
                    PutError::Write(e)
                }
            })
        });
        if r.is_err() {
            let _ = atomic::remove_any(&tmp);
        }
        r
    }

    fn create_dir(&self, rel: &Path) -> io::Result<()> {
        fs::create_dir_all(self.v2.join(rel))
    }

    fn remove_file(&self, rel: &Path) -> io::Result<()> {
        match fs::remove_file(self.v2.join(rel)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    fn remove_tree(&self, rel: &Path) -> io::Result<()> {
        match fs::remove_dir_all(self.v2.join(rel)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    fn written_since(&self, rel: &Path, since: std::time::SystemTime) -> io::Result<bool> {
        use std::os::unix::fs::MetadataExt;
        use std::time::{Duration, UNIX_EPOCH};
        let meta = match fs::symlink_metadata(self.v2.join(rel)) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        // A hardlink or rename changes the status time, so a blob put in
        // place after `since` counts, however old its content.
        let changed = UNIX_EPOCH
            + Duration::new(
                u64::try_from(meta.ctime()).unwrap_or(0),
                u32::try_from(meta.ctime_nsec()).unwrap_or(0),
            );
        let modified = meta.modified().unwrap_or(UNIX_EPOCH);
        Ok(changed > since || modified > since)
    }

    fn remove_empty_dir(&self, rel: &Path) -> io::Result<bool> {
        match fs::remove_dir(self.v2.join(rel)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOTEMPTY) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
