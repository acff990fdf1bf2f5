//! Bundle compression: none, gzip (parallel: blocks compressed on every core
//! with libdeflate, each a gzip member; the members make one standard gzip
//! stream that `gzip -d` and `tar -xzf` read) and zstd (multithreaded); chosen by name or
//! by file extension, and recognised by content when reading.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

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

struct Zstd<W: Write + Send>(zstd::stream::write::Encoder<'static, W>);

impl<W: Write + Send> Write for Zstd<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write + Send> Finish for Zstd<W> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        let mut w = self.0.finish()?;
        w.flush()
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
        Compression::Zstd => {
            let mut z = zstd::stream::write::Encoder::new(out, 3)?;
            if threads > 1 {
                z.multithread(threads as u32)?;
            }
            Box::new(Zstd(z))
        }
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
