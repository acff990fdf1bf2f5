//! A registry tree inside a tar, read in place: a bundle is a ROOT.
//!
//! Opening reads the archive's headers once (seeking past the data) into a
//! sorted index of members: each path relative to the `v2` folder (placed by
//! [`crate::archive::Locator`], so regkit's bundles and plain tars of a
//! registry at the usual depths read alike), the offset of its data in the
//! file and its size. Folders are derived from the paths. Reads are `pread`s
//! of the archive: nothing is extracted.
//!
//! Only regular files and folders are members. A hardlink member reads as
//! the earlier member it names (inside the tree); symbolic links, devices,
//! FIFOs and entries that would leave the tree (`..`, absolute paths) are
//! not members, so no read can reach outside the archive.
//!
//! A compressed archive (gzip, zstd) is decompressed once into an unlinked
//! temporary file, with a note, and read from there.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use super::{Backend, DirEntry, Extent};
use crate::archive::{Locator, Place};
use crate::compress::{self, Compression};
use crate::error::{Error, Result};

/// One member of the index: a file's data, or a folder.
#[derive(Debug, Clone)]
struct Member {
    path: Box<str>,
    offset: u64,
    size: u64,
    is_dir: bool,
}

/// A tar read in place.
pub struct TarBackend {
    file: Arc<File>,
    /// The archive as the user named it.
    name: PathBuf,
    /// Where the tree lies in the archive (`docker/registry/v2`).
    prefix: String,
    /// Every member, sorted by path: the members of a folder are the run of
    /// paths that start with `folder/`.
    members: Vec<Member>,
    compression: Compression,
}

/// Whether `path` is a regular file that starts like a tar, a gzip or a
/// zstd stream.
pub fn is_archive(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    if !meta.is_file() {
        return false;
    }
    let mut head = [0u8; 512];
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    let n = read_full(&mut f, &mut head).unwrap_or(0);
    match Compression::sniff(&head[..n]) {
        Compression::Gzip | Compression::Zstd => true,
        Compression::None => n == 512 && is_tar_header(&head),
    }
}

/// A ustar or GNU header with a valid checksum.
fn is_tar_header(h: &[u8; 512]) -> bool {
    let magic = &h[257..263];
    if magic != b"ustar\0" && magic != b"ustar " {
        return false;
    }
    let stored = std::str::from_utf8(&h[148..156])
        .ok()
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '))
        .and_then(|s| u32::from_str_radix(s, 8).ok());
    let sum: u32 = h
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                *b as u32
            }
        })
        .sum();
    stored == Some(sum)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Archives opened by this process, so that a command that opens ROOT
/// twice indexes (and decompresses) it once.
fn opened() -> &'static Mutex<HashMap<PathBuf, Arc<TarBackend>>> {
    static OPENED: OnceLock<Mutex<HashMap<PathBuf, Arc<TarBackend>>>> = OnceLock::new();
    OPENED.get_or_init(Default::default)
}

impl TarBackend {
    /// Opens (once per process) the archive at `path`.
    pub fn open(path: &Path) -> Result<Arc<TarBackend>> {
        let key = std::fs::canonicalize(path).map_err(|e| Error::io("open", path, e))?;
        let mut cache = opened().lock().expect("not poisoned");
        if let Some(b) = cache.get(&key) {
            return Ok(b.clone());
        }
        let b = Arc::new(TarBackend::index(path)?);
        cache.insert(key, b.clone());
        Ok(b)
    }

    fn index(path: &Path) -> Result<TarBackend> {
        let mut file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        let mut head = [0u8; 8];
        let n = read_full(&mut file, &mut head).map_err(|e| Error::io("read", path, e))?;
        let compression = Compression::sniff(&head[..n]);
        file.rewind().map_err(|e| Error::io("read", path, e))?;
        let file =
            match compression {
                Compression::None => file,
                c => {
                    eprintln!(
                    "note: {} is {}-compressed: decompressing it to a temporary file to read it \
                     (an uncompressed .tar is read in place)",
                    path.display(),
                    if c == Compression::Gzip { "gzip" } else { "zstd" }
                );
                    decompress(file, path)?
                }
            };
        let (prefix, members) = scan(&file, path)?;
        Ok(TarBackend {
            file: Arc::new(file),
            name: path.to_path_buf(),
            prefix,
            members,
            compression,
        })
    }

    /// How the archive is compressed (`None`: read in place).
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The `v2` folder, as messages name it: `BUNDLE/docker/registry/v2`.
    pub fn v2(&self) -> PathBuf {
        if self.prefix.is_empty() {
            self.name.clone()
        } else {
            self.name.join(&self.prefix)
        }
    }

    fn find(&self, rel: &Path) -> Option<&Member> {
        let rel = rel.to_str()?.trim_end_matches('/');
        self.members
            .binary_search_by(|m| (*m.path).cmp(rel))
            .ok()
            .map(|i| &self.members[i])
    }

    fn file_member(&self, rel: &Path) -> io::Result<&Member> {
        match self.find(rel) {
            Some(m) if !m.is_dir => Ok(m),
            Some(_) => Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "a folder, not a file",
            )),
            None => Err(io::ErrorKind::NotFound.into()),
        }
    }
}

/// Decompresses `file` into a temporary file that is unlinked at once (it
/// lives as long as the descriptor).
fn decompress(file: File, path: &Path) -> Result<File> {
    let tmp = std::env::temp_dir().join(format!(".regkit-bundle-{}", crate::atomic::temp_name()));
    let mut out = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| Error::io("create", &tmp, e))?;
    let _ = std::fs::remove_file(&tmp);
    let (_, mut reader) = compress::decoder(file).map_err(|e| Error::io("read", path, e))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        crate::interrupt::check()?;
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("decompress", path, e)),
        };
        io::Write::write_all(&mut out, &buf[..n])
            .map_err(|e| Error::io("write", std::env::temp_dir(), e))?;
    }
    out.rewind()
        .map_err(|e| Error::io("read", std::env::temp_dir(), e))?;
    Ok(out)
}

/// Reads the headers of the tar in `file` into the sorted member index.
fn scan(file: &File, path: &Path) -> Result<(String, Vec<Member>)> {
    let bad = |e: io::Error| Error::io("read the archive", path, e);
    let mut archive = tar::Archive::new(file);
    let mut locator = Locator::new();
    // Path → index in `members` (a later member of the same path wins).
    let mut at: HashMap<String, usize> = HashMap::new();
    let mut members: Vec<Member> = Vec::new();
    let mut links: Vec<(String, String)> = Vec::new();
    for entry in archive.entries_with_seek().map_err(bad)? {
        let entry = entry.map_err(bad)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Place::Tree(rel) = locator.place(&name) else {
            continue;
        };
        let kind = entry.header().entry_type();
        let member = if kind.is_dir() {
            Member {
                path: rel.clone().into(),
                offset: 0,
                size: 0,
                is_dir: true,
            }
        } else if kind.is_file() || kind == tar::EntryType::Continuous {
            Member {
                path: rel.clone().into(),
                offset: entry.raw_file_position(),
                size: entry.size(),
                is_dir: false,
            }
        } else if kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            if let Some(Place::Tree(t)) = target.map(|t| locator.place(&t)) {
                links.push((rel, t));
            }
            continue;
        } else {
            // Symbolic links, devices, FIFOs, sparse files: not members.
            continue;
        };
        match at.get(&rel) {
            Some(&i) => members[i] = member,
            None => {
                at.insert(rel, members.len());
                members.push(member);
            }
        }
    }
    // Hardlinks read as the member they name.
    for (rel, target) in links {
        if let Some(&i) = at.get(&target) {
            if !members[i].is_dir {
                let m = Member {
                    path: rel.clone().into(),
                    ..members[i].clone()
                };
                match at.get(&rel) {
                    Some(&j) => members[j] = m,
                    None => {
                        at.insert(rel, members.len());
                        members.push(m);
                    }
                }
            }
        }
    }
    // Folders implied by the paths below them.
    let mut implied: Vec<String> = Vec::new();
    for m in &members {
        let mut p = &*m.path;
        while let Some(i) = p.rfind('/') {
            p = &p[..i];
            if at.contains_key(p) {
                break;
            }
            at.insert(p.to_string(), usize::MAX);
            implied.push(p.to_string());
        }
    }
    members.extend(implied.into_iter().map(|p| Member {
        path: p.into(),
        offset: 0,
        size: 0,
        is_dir: true,
    }));
    members.sort_by(|a, b| a.path.cmp(&b.path));
    let prefix = locator
        .prefix()
        .ok_or(Error::NotAStorageTree { path: path.into() })?;
    Ok((prefix, members))
}

impl Backend for TarBackend {
    fn list(&self, rel: &Path) -> io::Result<Vec<DirEntry>> {
        let dir = rel.to_str().unwrap_or("\0").trim_end_matches('/');
        if !dir.is_empty() {
            match self.find(rel) {
                Some(m) if m.is_dir => {}
                Some(_) => return Err(io::Error::from(io::ErrorKind::NotADirectory)),
                None => return Err(io::ErrorKind::NotFound.into()),
            }
        }
        let start = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let mut out = Vec::new();
        let mut i = self.members.partition_point(|m| *m.path <= *start);
        while let Some(m) = self.members.get(i) {
            let Some(name) = m.path.strip_prefix(start.as_str()) else {
                break;
            };
            if name.contains('/') {
                // A deeper member: skip the rest of that folder.
                let sub = &name[..name.find('/').expect("has a slash")];
                let end = format!("{start}{sub}0");
                i = self.members.partition_point(|m| *m.path < *end);
                continue;
            }
            out.push(DirEntry {
                name: name.to_string(),
                is_dir: m.is_dir,
            });
            if m.is_dir {
                let end = format!("{}0", m.path);
                i = self.members.partition_point(|m| *m.path < *end);
            } else {
                i += 1;
            }
        }
        Ok(out)
    }

    fn read(&self, rel: &Path, limit: u64) -> io::Result<Vec<u8>> {
        let m = self.file_member(rel)?;
        if m.size > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("file is larger than {limit} bytes"),
            ));
        }
        let mut buf = vec![0u8; m.size as usize];
        self.file.read_exact_at(&mut buf, m.offset)?;
        Ok(buf)
    }

    fn open(&self, rel: &Path) -> io::Result<Box<dyn Read + Send>> {
        let e = self.extent(rel)?;
        Ok(Box::new(e.reader(0, e.len)))
    }

    fn size(&self, rel: &Path) -> io::Result<u64> {
        Ok(self.file_member(rel)?.size)
    }

    fn local_path(&self, _rel: &Path) -> Option<PathBuf> {
        None
    }

    fn extent(&self, rel: &Path) -> io::Result<Extent> {
        let m = self.file_member(rel)?;
        Ok(Extent {
            file: self.file.clone(),
            offset: m.offset,
            len: m.size,
        })
    }

    fn display(&self, rel: &Path) -> PathBuf {
        self.v2().join(rel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, &[u8])]) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut b = tar::Builder::new(f.reopen().unwrap());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            if name.ends_with('/') {
                h.set_entry_type(tar::EntryType::Directory);
            }
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.finish().unwrap();
        f
    }

    #[test]
    fn indexes_members_and_lists_folders_from_paths() {
        let f = tar_of(&[
            (
                "./docker/registry/v2/repositories/a/b/_manifests/tags/t/current/link",
                b"x",
            ),
            ("./docker/registry/v2/blobs/sha256/ab/abc/data", b"hello"),
            ("./docker/registry/v2/blobs/sha256/ab/abd/", b""),
            ("./notes.txt", b"beside the tree"),
        ]);
        assert!(is_archive(f.path()));
        let b = TarBackend::index(f.path()).unwrap();
        assert_eq!(b.prefix, "docker/registry/v2");
        let names = |p: &str| -> Vec<(String, bool)> {
            b.list(Path::new(p))
                .unwrap()
                .into_iter()
                .map(|e| (e.name, e.is_dir))
                .collect()
        };
        assert_eq!(
            names(""),
            [("blobs".into(), true), ("repositories".into(), true)]
        );
        assert_eq!(
            names("blobs/sha256/ab"),
            [("abc".into(), true), ("abd".into(), true)]
        );
        assert_eq!(names("repositories"), [("a".into(), true)]);
        assert_eq!(
            names("repositories/a/b/_manifests/tags/t/current"),
            [("link".into(), false)]
        );
        let data = Path::new("blobs/sha256/ab/abc/data");
        assert_eq!(b.read(data, 10).unwrap(), b"hello");
        assert_eq!(b.size(data).unwrap(), 5);
        let mut s = String::new();
        b.open(data).unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
        assert!(b.read(data, 4).is_err());
        let missing = b.size(Path::new("notes.txt")).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        assert_eq!(
            b.list(Path::new("blobs/none")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn a_file_that_is_not_an_archive_is_not_taken_for_one() {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), "storage:\n  filesystem: {}\n").unwrap();
        assert!(!is_archive(f.path()));
        let g = tar_of(&[("x/y", b"1")]);
        assert!(is_archive(g.path()));
        let err = TarBackend::index(g.path()).err().unwrap();
        assert!(matches!(err, Error::NotAStorageTree { .. }), "{err}");
    }
}
