//! Bundle compression: none, gzip (parallel: blocks compressed on every core
//! with libdeflate, each a gzip member; the members make one standard gzip
//! stream that `gzip -d` and `tar -xzf` read) and zstd (parallel too: frames of 256 KiB
//! compressed on every core, in zstd's seekable format, which `zstd -d` and `tar --zstd`
//! read as one stream); chosen by name or by file extension, and recognised by content
//! when reading. Both compressed forms are their own index for random access
//! ([`crate::store::blocks`]).

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};

use gzp::deflate::Mgzip;
use gzp::par::compress::ParCompressBuilder;
use gzp::ZWriter;

/// A compression of a bundle.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// From a file name: `.tar.gz`/`.tgz` gzip, `.tar.zst`/`.tzst` zstd,
    /// anything else none.
    pub fn from_file_name(path: &Path) -> Compression {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        if name.ends_with(".gz") || name.ends_with(".tgz") {
            Compression::Gzip
        } else if name.ends_with(".zst") || name.ends_with(".tzst") {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// From the first bytes of a stream.
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// A writer that must be finished to flush its last block.
pub trait Finish: Write + Send {
    fn finish(self: Box<Self>) -> io::Result<()>;
}

struct Plain<W: Write + Send>(W);

impl<W: Write + Send> Write for Plain<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write + Send> Finish for Plain<W> {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.0.flush()
    }
}

struct ParGzip<W: Write + Send + 'static>(gzp::par::compress::ParCompress<'static, Mgzip, W>);

impl<W: Write + Send + 'static> Write for ParGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write + Send + 'static> Finish for ParGzip<W> {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        let mut w = self.0.finish().map_err(io::Error::other)?;
        w.flush()
    }
}

/// A frame to compress, and where its compressed bytes go.
type Job = (Vec<u8>, mpsc::SyncSender<io::Result<Vec<u8>>>);

/// zstd's seekable format (`contrib/seekable_format` in the zstd sources):
/// independent frames of [`ZSTD_FRAME`] bytes, compressed on worker threads
/// and written in order, then a skippable frame with the seek table (each
/// frame's compressed and decompressed size) ending in the seekable magic.
struct SeekableZstd<W: Write + Send> {
    out: W,
    buf: Vec<u8>,
    jobs: Option<mpsc::Sender<Job>>,
    /// Frames under way, oldest first, with their decompressed sizes.
    pending: VecDeque<(u32, mpsc::Receiver<io::Result<Vec<u8>>>)>,
    depth: usize,
    table: Vec<(u32, u32)>,
}

use crate::store::blocks::ZSTD_FRAME;

impl<W: Write + Send> SeekableZstd<W> {
    fn new(out: W, threads: usize, level: i32) -> SeekableZstd<W> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..threads.max(1) {
            let rx = rx.clone();
            // Each worker ends when the sender is dropped (finished or not).
            std::thread::spawn(move || {
                let mut z = zstd::bulk::Compressor::new(level).and_then(|mut z| {
                    z.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
                    Ok(z)
                });
                loop {
                    let job = rx.lock().expect("not poisoned").recv();
                    let Ok((frame, done)) = job else { return };
                    let r = match &mut z {
                        Ok(z) => z.compress(&frame),
                        Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                    };
                    let _ = done.send(r);
                }
            });
        }
        SeekableZstd {
            out,
            buf: Vec::with_capacity(ZSTD_FRAME),
            jobs: Some(tx),
            pending: VecDeque::new(),
            depth: 2 * threads.max(1),
            table: Vec::new(),
        }
    }

    fn submit(&mut self) -> io::Result<()> {
        let frame = std::mem::replace(&mut self.buf, Vec::with_capacity(ZSTD_FRAME));
        let len = frame.len() as u32;
        let (done, result) = mpsc::sync_channel(1);
        self.jobs
            .as_ref()
            .expect("not finished")
            .send((frame, done))
            .map_err(|_| io::Error::other("the zstd workers are gone"))?;
        self.pending.push_back((len, result));
        while self.pending.len() > self.depth {
            self.write_oldest()?;
        }
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        let Some((len, result)) = self.pending.pop_front() else {
            return Ok(());
        };
        let frame = result
            .recv()
            .map_err(|_| io::Error::other("a zstd worker ended"))??;
        self.out.write_all(&frame)?;
        self.table.push((frame.len() as u32, len));
        Ok(())
    }
}

impl<W: Write + Send> Write for SeekableZstd<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(ZSTD_FRAME - self.buf.len());
        self.buf.extend_from_slice(&buf[..n]);
        if self.buf.len() == ZSTD_FRAME {
            self.submit()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        // Frames are whole only at their size or at the end: nothing to do
        // before then but what the caller wrote already.
        self.out.flush()
    }
}

impl<W: Write + Send> Finish for SeekableZstd<W> {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.submit()?;
        }
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        self.jobs = None;
        let n = self.table.len() as u32;
        let mut tail = Vec::with_capacity(8 + self.table.len() * 8 + 9);
        tail.extend_from_slice(&0x184D_2A5Eu32.to_le_bytes());
        tail.extend_from_slice(&(n * 8 + 9).to_le_bytes());
        for (size, len) in &self.table {
            tail.extend_from_slice(&size.to_le_bytes());
            tail.extend_from_slice(&len.to_le_bytes());
        }
        tail.extend_from_slice(&n.to_le_bytes());
        tail.push(0); // no checksums in the table: each frame has zstd's own
        tail.extend_from_slice(&0x8F92_EAB1u32.to_le_bytes());
        self.out.write_all(&tail)?;
        self.out.flush()
    }
}

/// Wraps `out` in a compressor using `threads` threads.
pub fn encoder<W: Write + Send + 'static>(
    c: Compression,
    out: W,
    threads: usize,
) -> io::Result<Box<dyn Finish>> {
    Ok(match c {
        Compression::None => Box::new(Plain(out)),
        Compression::Gzip => {
            let z = ParCompressBuilder::<Mgzip>::new()
                .num_threads(threads.max(1))
                .map_err(io::Error::other)?
                .compression_level(gzp::Compression::new(6))
                .from_writer(out);
            Box::new(ParGzip(z))
        }
        Compression::Zstd => Box::new(SeekableZstd::new(out, threads, 3)),
    })
}

/// Opens a (possibly compressed) stream, recognising the compression by
/// its first bytes. Gzip streams of several members (ours, bgzip's) are read
/// whole.
pub fn decoder<'a, R: Read + 'a>(input: R) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut buffered = BufReader::with_capacity(1 << 20, input);
    let kind = Compression::sniff(buffered.fill_buf()?);
    let reader: Box<dyn Read + 'a> = match kind {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
    };
    Ok((kind, reader))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn round_trips_every_compression() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let sink = Shared::default();
            let mut w = encoder(c, sink.clone(), 2).unwrap();
            w.write_all(&data).unwrap();
            w.finish().unwrap();
            let bytes = sink.0.lock().unwrap().clone();
            let (kind, mut r) = decoder(&bytes[..]).unwrap();
            assert_eq!(kind, c);
            let mut back = Vec::new();
            r.read_to_end(&mut back).unwrap();
            assert_eq!(back, data, "{c:?}");
        }
    }

    #[test]
    fn names_choose_compression() {
        assert_eq!(
            Compression::from_file_name(Path::new("b.tar.gz")),
            Compression::Gzip
        );
        assert_eq!(
            Compression::from_file_name(Path::new("b.tgz")),
            Compression::Gzip
        );
        assert_eq!(
            Compression::from_file_name(Path::new("b.tar.zst")),
            Compression::Zstd
        );
        assert_eq!(
            Compression::from_file_name(Path::new("b.tar")),
            Compression::None
        );
    }
}
