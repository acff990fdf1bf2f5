//! The local filesystem backend.

use std::fs;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;

use super::{Backend, DirEntry};

/// The local filesystem backend. It holds the `v2` folder open and reads
/// relative to it (`openat`, `fstatat`), so each look-up walks only the
/// path inside the tree.
pub struct FsBackend {
    v2: PathBuf,
    dir: Option<OwnedFd>,
}

impl FsBackend {
    pub fn new(v2: PathBuf) -> FsBackend {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let dir = nix::fcntl::open(&v2, flags, Mode::empty()).ok();
        FsBackend { v2, dir }
    }

    fn open_file(&self, rel: &Path) -> io::Result<fs::File> {
        match &self.dir {
            Some(dir) => open_at(dir, rel),
            None => fs::File::open(self.v2.join(rel)),
        }
    }
}

/// Opens a file below a folder's descriptor, without updating its access
/// time when allowed (reading a tree should not write to it).
fn open_at<Fd: std::os::fd::AsFd>(dir: &Fd, rel: &Path) -> io::Result<fs::File> {
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC;
    let fd = match nix::fcntl::openat(dir, rel, flags | OFlag::O_NOATIME, Mode::empty()) {
        Err(nix::errno::Errno::EPERM) => nix::fcntl::openat(dir, rel, flags, Mode::empty())?,
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
            match open_at(&folder, n) {
                Ok(mut file) => f(i, Ok(&mut file)),
                Err(e) => f(i, Err(e)),
            }
        }
    }

    fn open(&self, rel: &Path) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(self.open_file(rel)?))
    }

    fn size(&self, rel: &Path) -> io::Result<u64> {
        let not_file = || io::Error::new(io::ErrorKind::NotFound, "not a regular file");
        match &self.dir {
            Some(dir) => {
                let st = nix::sys::stat::fstatat(dir, rel, AtFlags::empty())?;
                if st.st_mode & nix::libc::S_IFMT != nix::libc::S_IFREG {
                    return Err(not_file());
                }
                Ok(st.st_size as u64)
            }
            None => {
                let meta = fs::metadata(self.v2.join(rel))?;
                if !meta.is_file() {
                    return Err(not_file());
                }
                Ok(meta.len())
            }
        }
    }

    fn local_path(&self, rel: &Path) -> Option<PathBuf> {
        Some(self.v2.join(rel))
    }

    fn display(&self, rel: &Path) -> PathBuf {
        self.v2.join(rel)
    }

    fn modified(&self, rel: &Path) -> io::Result<std::time::SystemTime> {
        fs::symlink_metadata(self.v2.join(rel))?.modified()
    }
}
