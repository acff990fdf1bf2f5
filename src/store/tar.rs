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
//! regkit's own `.tar.gz` and `.tar.zst` bundles are read in place too,
//! through the sizes their gzip members carry or the seek table after their
//! zstd frames ([`super::blocks`]). Any other compressed archive (a plain
//! `tar -czf`, `tar --zstd -cf`) is decompressed once into an unlinked
//! temporary file, with a note, and read from there.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use super::blocks::Blocks;
use super::{Backend, DirEntry, Extent, RangeReader, ReadAt};
use crate::archive::{Locator, Place};
use crate::compress::{self, Compression};
use crate::error::{Error, Result};

/// One file of the index: where its data lies in the tar. Folders are not
/// kept: a folder is there when a file lies below it (the tree's empty
/// folders, such as `_uploads/`, are nothing a reader needs).
#[derive(Debug, Clone)]
struct Member {
    path: Box<str>,
    offset: u64,
    size: u64,
}

/// The tar's bytes: a file, or regkit's gzip members decompressed on
/// demand.
#[derive(Clone)]
enum Data {
    Plain(Arc<File>),
    Blocks(Arc<Blocks>),
}

impl ReadAt for Data {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        match self {
            Data::Plain(f) => f.read_at(buf, offset),
            Data::Blocks(g) => g.read_at(buf, offset),
        }
    }
}

impl Data {
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the archive ends inside this member",
                    ))
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A stream over bytes of the tar (also what the header scan seeks in).
type Cursor = RangeReader<Data>;

/// A tar read in place.
pub struct TarBackend {
    data: Data,
    /// The archive as the user named it.
    name: PathBuf,
    /// Where the tree lies in the archive (`docker/registry/v2`).
    prefix: String,
    /// Every file, sorted by path: the files below a folder are the run of
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
        let note = |what: &str| {
            eprintln!(
                "note: {} is {what}: decompressing it to a temporary file to read it \
                 (an uncompressed .tar and regkit's own .tar.gz and .tar.zst are read in place)",
                path.display()
            )
        };
        let data = match compression {
            Compression::None => Data::Plain(Arc::new(file)),
            Compression::Gzip => {
                match Blocks::index_gzip(file).map_err(|e| Error::io("read", path, e))? {
                    Ok(g) => Data::Blocks(Arc::new(g)),
                    Err(mut file) => {
                        note("gzip-compressed in one stream");
                        file.rewind().map_err(|e| Error::io("read", path, e))?;
                        Data::Plain(Arc::new(decompress(file, path)?))
                    }
                }
            }
            Compression::Zstd => {
                match Blocks::index_zstd(file).map_err(|e| Error::io("read", path, e))? {
                    Ok(z) => Data::Blocks(Arc::new(z)),
                    Err(mut file) => {
                        note("zstd-compressed without a seek table");
                        file.rewind().map_err(|e| Error::io("read", path, e))?;
                        Data::Plain(Arc::new(decompress(file, path)?))
                    }
                }
            }
        };
        let end = match &data {
            Data::Plain(f) => f.metadata().map_err(|e| Error::io("read", path, e))?.len(),
            Data::Blocks(g) => g.len(),
        };
        let cursor = Cursor {
            source: data.clone(),
            pos: 0,
            end,
        };
        let (prefix, members) = scan(cursor, path)?;
        Ok(TarBackend {
            data,
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

    fn find(&self, rel: &str) -> Option<&Member> {
        self.members
            .binary_search_by(|m| (*m.path).cmp(rel))
            .ok()
            .map(|i| &self.members[i])
    }

    /// Whether a file lies below `dir` (`""`: the tree itself).
    fn is_folder(&self, dir: &str) -> bool {
        if dir.is_empty() {
            return true;
        }
        let start = format!("{dir}/");
        let i = self.members.partition_point(|m| *m.path < *start);
        self.members
            .get(i)
            .is_some_and(|m| m.path.starts_with(start.as_str()))
    }

    fn file_member(&self, rel: &Path) -> io::Result<&Member> {
        let rel = rel.to_str().unwrap_or("\0");
        match self.find(rel) {
            Some(m) => Ok(m),
            None if self.is_folder(rel.trim_end_matches('/')) => Err(io::Error::new(
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

/// Reads the headers of the tar into the sorted index of its files.
fn scan(tar: impl Read + Seek, path: &Path) -> Result<(String, Vec<Member>)> {
    let bad = |e: io::Error| Error::io("read the archive", path, e);
    let mut archive = tar::Archive::new(tar);
    let mut locator = Locator::new();
    let mut members: Vec<Member> = Vec::new();
    let mut links: Vec<(String, String)> = Vec::new();
    for entry in archive.entries_with_seek().map_err(bad)? {
        let entry = entry.map_err(bad)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Place::Tree(rel) = locator.place(&name) else {
            continue;
        };
        let kind = entry.header().entry_type();
        if kind.is_file() || kind == tar::EntryType::Continuous {
            members.push(Member {
                path: rel.into(),
                offset: entry.raw_file_position(),
                size: entry.size(),
            });
        } else if kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            if let Some(Place::Tree(t)) = target.map(|t| locator.place(&t)) {
                links.push((rel, t));
            }
        }
        // Folders are implied by their files; symbolic links, devices,
        // FIFOs and sparse files are not members.
    }
    sort_keeping_last(&mut members);
    // Hardlinks read as the file they name.
    let linked: Vec<Member> = links
        .into_iter()
        .filter_map(|(rel, target)| {
            let i = members
                .binary_search_by(|m| (*m.path).cmp(target.as_str()))
                .ok()?;
            Some(Member {
                path: rel.into(),
                ..members[i].clone()
            })
        })
        .collect();
    if !linked.is_empty() {
        members.extend(linked);
        sort_keeping_last(&mut members);
    }
    members.shrink_to_fit();
    let prefix = locator
        .prefix()
        .ok_or(Error::NotAStorageTree { path: path.into() })?;
    Ok((prefix, members))
}

/// Sorts by path; of several members with one path, the last one in the
/// archive stays (as `tar -x` leaves it).
fn sort_keeping_last(members: &mut Vec<Member>) {
    members.reverse();
    members.sort_by(|a, b| a.path.cmp(&b.path));
    members.dedup_by(|later, first| later.path == first.path);
}

impl Backend for TarBackend {
    fn list(&self, rel: &Path) -> io::Result<Vec<DirEntry>> {
        let dir = rel.to_str().unwrap_or("\0").trim_end_matches('/');
        if !self.is_folder(dir) {
            return Err(match self.find(dir) {
                Some(_) => io::Error::from(io::ErrorKind::NotADirectory),
                None => io::ErrorKind::NotFound.into(),
            });
        }
        let start = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let mut out = Vec::new();
        let mut i = self.members.partition_point(|m| *m.path < *start);
        while let Some(m) = self.members.get(i) {
            let Some(name) = m.path.strip_prefix(start.as_str()) else {
                break;
            };
            match name.split_once('/') {
                // A file below a folder of `dir`: the folder, once.
                Some((sub, _)) => {
                    out.push(DirEntry {
                        name: sub.to_string(),
                        is_dir: true,
                    });
                    let end = format!("{start}{sub}0");
                    i = self.members.partition_point(|m| *m.path < *end);
                }
                None => {
                    out.push(DirEntry {
                        name: name.to_string(),
                        is_dir: false,
                    });
                    i += 1;
                }
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
        self.data.read_exact_at(&mut buf, m.offset)?;
        Ok(buf)
    }

    fn open(&self, rel: &Path) -> io::Result<Box<dyn Read + Send>> {
        let m = self.file_member(rel)?;
        Ok(Box::new(Cursor {
            source: self.data.clone(),
            pos: m.offset,
            end: m.offset + m.size,
        }))
    }

    fn size(&self, rel: &Path) -> io::Result<u64> {
        Ok(self.file_member(rel)?.size)
    }

    fn local_path(&self, _rel: &Path) -> Option<PathBuf> {
        None
    }

    /// A member of an uncompressed tar; a compressed one has no range of
    /// a local file to name.
    fn extent(&self, rel: &Path) -> io::Result<Extent> {
        let m = self.file_member(rel)?;
        match &self.data {
            Data::Plain(file) => Ok(Extent {
                file: file.clone(),
                offset: m.offset,
                len: m.size,
            }),
            Data::Blocks(_) => Err(io::Error::new(io::ErrorKind::Unsupported, "compressed")),
        }
    }

    fn display(&self, rel: &Path) -> PathBuf {
        self.v2().join(rel)
    }

    /// Folders are implied by the files below them, as in an object store.
    /// Nothing is written to a bundle while it is read (it is read only):
    /// so what gc would free in it (`du`, `gc --dry-run`) is not held back
    /// as "written since gc started", which the default (no time known:
    /// fresh) would say of every file.
    fn written_since(&self, _: &Path, _: std::time::SystemTime) -> io::Result<bool> {
        Ok(false)
    }

    fn has_folders(&self) -> bool {
        false
    }

    // The write half: a bundle is never written.

    fn put(&self, _: &Path, _: super::Body<'_>, _: bool) -> Result<super::Method, super::PutError> {
        Err(super::PutError::Write(read_only()))
    }

    fn put_folder(&self, _: &Path, _: &[(&str, &[u8])]) -> Result<(), super::PutError> {
        Err(super::PutError::Write(read_only()))
    }

    fn create_dir(&self, _: &Path) -> io::Result<()> {
        Err(read_only())
    }

    fn remove_file(&self, _: &Path) -> io::Result<()> {
        Err(read_only())
    }

    fn remove_tree(&self, _: &Path) -> io::Result<()> {
        Err(read_only())
    }

    fn remove_empty_dir(&self, _: &Path) -> io::Result<bool> {
        Err(read_only())
    }
}

/// Why nothing writes a bundle, and what to do instead.
pub const READ_ONLY: &str =
    "a bundle is read only: unpack it into a tree to write (regkit unpack BUNDLE ROOT)";

fn read_only() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, READ_ONLY)
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
        // An empty folder is nothing a reader needs: folders are implied.
        assert_eq!(names("blobs/sha256/ab"), [("abc".into(), true)]);
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
