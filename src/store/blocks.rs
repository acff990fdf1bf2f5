//! Random access into regkit's own compressed bundles.
//!
//! `pack --compress gzip` writes the tar as a sequence of independent gzip
//! members, one per 128 KiB of tar, each compressed on its own core (gzp's
//! `Mgzip`, the layout of BGZF): every member's header carries an `IG` extra
//! field with the member's compressed size, and its trailer the size of what
//! it holds. So the bundle is its own index: reading the 20-byte header and
//! the 4-byte trailer of each member gives where every 128 KiB of the tar
//! lies, and a read decompresses only the members it touches. `gzip -d`,
//! `gzip -t` and `tar -xzf` read the same file as one multi-member stream.
//!
//! `pack --compress zstd` writes zstd's seekable format
//! (`contrib/seekable_format` of the zstd sources): independent frames of
//! 256 KiB of tar each, then a skippable frame holding the seek table (each
//! frame's compressed and decompressed size) and a footer naming it. `zstd
//! -d` and `tar --zstd -xf` skip the table and read the frames as one stream.
//!
//! Any other gzip or zstd file (one member or frame, as `tar -czf` and
//! `tar --zstd -cf` write) is not indexable.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

/// One gzip member: where it lies in the file and in the tar.
#[derive(Debug, Clone, Copy)]
struct Member {
    /// Offset in the decompressed stream.
    start: u64,
    /// Offset and size in the file.
    offset: u64,
    size: u32,
    /// Bytes it decompresses to.
    len: u32,
}

/// Decompressed members kept (128 or 256 KiB each).
const CACHED: usize = 32;

/// How the members are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Gzip,
    Zstd,
}

/// A compressed file read at any offset of what it decompresses to.
pub struct Blocks {
    file: File,
    codec: Codec,
    members: Vec<Member>,
    len: u64,
    cache: Mutex<VecDeque<(usize, Arc<Vec<u8>>)>>,
}

/// The magic numbers of the seekable format: its skippable frame, and the
/// end of its footer.
const SKIPPABLE_MAGIC: u32 = 0x184D_2A5E;
const SEEKABLE_MAGIC: u32 = 0x8F92_EAB1;

/// Decompressed bytes per zstd frame that `pack` writes.
pub const ZSTD_FRAME: usize = 256 << 10;

impl Blocks {
    fn new(file: File, codec: Codec, members: Vec<Member>) -> Blocks {
        let len = members.last().map_or(0, |m| m.start + m.len as u64);
        Blocks {
            file,
            codec,
            members,
            len,
            cache: Mutex::new(VecDeque::new()),
        }
    }

    /// Indexes a zstd file in the seekable format by its seek table; gives
    /// the file back otherwise.
    pub fn index_zstd(file: File) -> io::Result<std::result::Result<Blocks, File>> {
        let total = file.metadata()?.len();
        let mut footer = [0u8; 9];
        if total < 17 {
            return Ok(Err(file));
        }
        file.read_exact_at(&mut footer, total - 9)?;
        let u32_at = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let frames = u32_at(&footer, 0) as u64;
        let checksums = footer[4] & 0x80 != 0;
        if u32_at(&footer, 5) != SEEKABLE_MAGIC || footer[4] & 0x7c != 0 {
            return Ok(Err(file));
        }
        let entry = if checksums { 12 } else { 8 };
        let table = frames * entry;
        if total < 8 + table + 9 {
            return Ok(Err(file));
        }
        let start = total - 9 - table - 8;
        let mut raw = vec![0u8; (8 + table) as usize];
        file.read_exact_at(&mut raw, start)?;
        if u32_at(&raw, 0) != SKIPPABLE_MAGIC || u32_at(&raw, 4) as u64 != table + 9 {
            return Ok(Err(file));
        }
        let mut members = Vec::with_capacity(frames as usize);
        let (mut offset, mut at) = (0u64, 0u64);
        for e in raw[8..].chunks_exact(entry as usize) {
            let (size, len) = (u32_at(e, 0), u32_at(e, 4));
            members.push(Member {
                start: at,
                offset,
                size,
                len,
            });
            offset += size as u64;
            at += len as u64;
        }
        if offset != start || members.is_empty() {
            return Ok(Err(file));
        }
        Ok(Ok(Blocks::new(file, Codec::Zstd, members)))
    }

    /// Indexes a gzip file when every member names its size; gives the
    /// file back otherwise.
    pub fn index_gzip(file: File) -> io::Result<std::result::Result<Blocks, File>> {
        let total = file.metadata()?.len();
        let mut members = Vec::new();
        let (mut offset, mut start) = (0u64, 0u64);
        let mut head = [0u8; 20];
        while offset < total {
            if total - offset < 28 {
                return Ok(Err(file));
            }
            file.read_exact_at(&mut head, offset)?;
            let size = u32::from_le_bytes([head[16], head[17], head[18], head[19]]);
            let named = head[..3] == [0x1f, 0x8b, 8]
                && head[3] & 4 == 4
                && head[10..12] == [8, 0]
                && &head[12..14] == b"IG"
                && head[14..16] == [4, 0];
            if !named || size < 28 || offset + size as u64 > total {
                return Ok(Err(file));
            }
            let mut isize = [0u8; 4];
            file.read_exact_at(&mut isize, offset + size as u64 - 4)?;
            let len = u32::from_le_bytes(isize);
            members.push(Member {
                start,
                offset,
                size,
                len,
            });
            offset += size as u64;
            start += len as u64;
        }
        if members.is_empty() {
            return Ok(Err(file));
        }
        Ok(Ok(Blocks::new(file, Codec::Gzip, members)))
    }

    /// The length of the decompressed stream.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The decompressed bytes of member `i` (its checksum checked, where
    /// the member has one).
    fn member(&self, i: usize) -> io::Result<Arc<Vec<u8>>> {
        {
            let mut cache = self.cache.lock().expect("not poisoned");
            if let Some(pos) = cache.iter().position(|(j, _)| *j == i) {
                let hit = cache.remove(pos).expect("present");
                let bytes = hit.1.clone();
                cache.push_front(hit);
                return Ok(bytes);
            }
        }
        let m = self.members[i];
        let mut raw = vec![0u8; m.size as usize];
        self.file.read_exact_at(&mut raw, m.offset)?;
        let out = match self.codec {
            Codec::Gzip => {
                let mut out = Vec::with_capacity(m.len as usize);
                flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out)?;
                out
            }
            Codec::Zstd => zstd::bulk::decompress(&raw, m.len as usize)?,
        };
        if out.len() != m.len as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a compressed block holds another size than its index says",
            ));
        }
        let bytes = Arc::new(out);
        let mut cache = self.cache.lock().expect("not poisoned");
        cache.push_front((i, bytes.clone()));
        cache.truncate(CACHED);
        Ok(bytes)
    }

    /// Reads decompressed bytes at `offset` (fewer at a member's end).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if offset >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let i = self
            .members
            .partition_point(|m| m.start + m.len as u64 <= offset);
        let Some(m) = self.members.get(i) else {
            return Ok(0);
        };
        let bytes = self.member(i)?;
        let from = (offset - m.start) as usize;
        let n = buf.len().min(bytes.len() - from);
        buf[..n].copy_from_slice(&bytes[from..from + n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Write;

    fn check_ranges(g: &Blocks, data: &[u8]) -> usize {
        assert_eq!(g.len(), data.len() as u64);
        let mut checked = 0;
        for (at, n) in [
            (0, 10),
            (131_070, 10),
            (262_140, 10),
            (999_990, 100),
            (500_000, 300_000),
        ] {
            let mut buf = vec![0u8; n];
            let mut got = 0;
            while got < n {
                let k = g.read_at(&mut buf[got..], at as u64 + got as u64).unwrap();
                if k == 0 {
                    break;
                }
                got += k;
            }
            let end = (at + n).min(data.len());
            assert_eq!(&buf[..got], &data[at..end], "{at}+{n}");
            checked += 1;
        }
        checked
    }

    fn packed(c: crate::compress::Compression, data: &[u8]) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut w = crate::compress::encoder(c, f.reopen().unwrap(), 2).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap();
        f
    }

    #[test]
    fn reads_any_range_of_a_parallel_gzip_and_refuses_a_plain_one() {
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let f = packed(crate::compress::Compression::Gzip, &data);
        let g = Blocks::index_gzip(f.reopen().unwrap())
            .unwrap()
            .ok()
            .unwrap();
        assert!(g.members.len() >= 7, "{}", g.members.len());
        assert_eq!(check_ranges(&g, &data), 5);
        // One member, as `gzip` writes: not indexable.
        let plain = tempfile::NamedTempFile::new().unwrap();
        let mut e =
            flate2::write::GzEncoder::new(plain.reopen().unwrap(), flate2::Compression::fast());
        e.write_all(&data).unwrap();
        e.finish().unwrap();
        assert!(Blocks::index_gzip(plain.reopen().unwrap())
            .unwrap()
            .is_err());
    }

    #[test]
    fn reads_any_range_of_a_seekable_zstd_that_plain_zstd_also_reads() {
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let f = packed(crate::compress::Compression::Zstd, &data);
        let z = Blocks::index_zstd(f.reopen().unwrap())
            .unwrap()
            .ok()
            .unwrap();
        assert_eq!(z.members.len(), data.len().div_ceil(ZSTD_FRAME));
        assert_eq!(check_ranges(&z, &data), 5);
        // A plain decoder reads the frames as one stream, the table skipped.
        let whole = zstd::stream::decode_all(f.reopen().unwrap()).unwrap();
        assert_eq!(whole, data);
        // One frame with no table, as `zstd` writes: not indexable.
        let plain = tempfile::NamedTempFile::new().unwrap();
        fs::write(plain.path(), zstd::bulk::compress(&data, 3).unwrap()).unwrap();
        assert!(Blocks::index_zstd(plain.reopen().unwrap())
            .unwrap()
            .is_err());
        // A table whose sizes do not add up to the file: not indexable.
        let mut bytes = fs::read(f.path()).unwrap();
        let n = bytes.len();
        bytes[n - 9 - 8] ^= 1;
        fs::write(plain.path(), &bytes).unwrap();
        assert!(Blocks::index_zstd(plain.reopen().unwrap())
            .unwrap()
            .is_err());
    }
}
