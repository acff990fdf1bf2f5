//! Random access into regkit's own `.tar.gz` bundles.
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
//! Any other gzip file (one member, as `tar -czf` writes) is not indexable.

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

/// Decompressed members kept (128 KiB each).
const CACHED: usize = 32;

pub struct GzBlocks {
    file: File,
    members: Vec<Member>,
    len: u64,
    cache: Mutex<VecDeque<(usize, Arc<Vec<u8>>)>>,
}

impl GzBlocks {
    /// Indexes `file` when every member names its size; gives the file
    /// back otherwise.
    pub fn index(file: File) -> io::Result<std::result::Result<GzBlocks, File>> {
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
        Ok(Ok(GzBlocks {
            file,
            members,
            len: start,
            cache: Mutex::new(VecDeque::new()),
        }))
    }

    /// The length of the decompressed stream.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The decompressed bytes of member `i` (its CRC checked).
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
        let mut out = Vec::with_capacity(m.len as usize);
        flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out)?;
        if out.len() != m.len as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a gzip member holds another size than its trailer says",
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
    use std::io::Write;

    #[test]
    fn reads_any_range_of_a_parallel_gzip_and_refuses_a_plain_one() {
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut w =
            crate::compress::encoder(crate::compress::Compression::Gzip, f.reopen().unwrap(), 2)
                .unwrap();
        w.write_all(&data).unwrap();
        w.finish().unwrap();
        let g = GzBlocks::index(f.reopen().unwrap()).unwrap().ok().unwrap();
        assert_eq!(g.len(), data.len() as u64);
        assert!(g.members.len() >= 7, "{}", g.members.len());
        let mut checked = 0;
        for (at, n) in [(0, 10), (131_070, 10), (999_990, 100), (500_000, 300_000)] {
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
        assert_eq!(checked, 4);
        // One member, as `gzip` writes: not indexable.
        let plain = tempfile::NamedTempFile::new().unwrap();
        let mut e =
            flate2::write::GzEncoder::new(plain.reopen().unwrap(), flate2::Compression::fast());
        e.write_all(&data).unwrap();
        e.finish().unwrap();
        assert!(GzBlocks::index(plain.reopen().unwrap()).unwrap().is_err());
    }
}
