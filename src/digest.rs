//! Content digests (`sha256:<64 hex>`), parsed strictly, and hashing.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256, Sha512};

/// A validated content digest such as `sha256:3f5e…`.
///
/// Only the algorithms the registry stores (`sha256`, and `sha512`, which
/// distribution accepts but rarely sees) are accepted; the hex part must be
/// lowercase and of the algorithm's exact length.
///
/// The text is shared: a clone is a reference count, not a copy. A big
/// tree's walk holds each digest in many places (the manifest naming it,
/// the images using it, sizes, plans), and a copy each would be most of
/// the memory it needs.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Digest(std::sync::Arc<str>);

/// Hashes the last 16 hex digits only: they are as random as the rest, and
/// hash maps keyed by digests are hot in every walk of a big tree.
impl std::hash::Hash for Digest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let b = self.0.as_bytes();
        state.write(&b[b.len() - 16..]);
    }
}

/// Hash algorithms a digest may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    /// Every algorithm a digest may name.
    pub const ALL: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Sha512];

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    pub fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{found}` is not a digest (expected `sha256:` and 64 lowercase hex digits)")]
pub struct DigestError {
    pub found: String,
}

impl Digest {
    /// Parses `algo:hex` strictly: no whitespace, no newline, lowercase hex.
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let bad = || DigestError {
            found: s.chars().take(100).collect(),
        };
        let (algo, hex) = s.split_once(':').ok_or_else(bad)?;
        let algo = Algorithm::from_name(algo).ok_or_else(bad)?;
        if hex.len() != algo.hex_len() || !hex.bytes().all(is_lower_hex) {
            return Err(bad());
        }
        Ok(Digest(s.into()))
    }

    /// [`Digest::parse`], sharing the text with every other digest read
    /// from a tree the same way: a digest is named by its manifest, its
    /// folder in `blobs/`, its revision and `_layers` folders and the links
    /// inside them, and a big tree's walk would otherwise hold a copy of
    /// each. For what a tree holds only (the table is never emptied), not
    /// for names from a request.
    pub fn parse_shared(s: &str) -> Result<Digest, DigestError> {
        let d = Digest::parse(s)?;
        Ok(Digest(intern(d.0)))
    }

    /// Builds a digest from an algorithm and a hex string (validated), as
    /// a tree's folders name them ([`Digest::parse_shared`]).
    pub fn from_parts(algo: &str, hex: &str) -> Result<Digest, DigestError> {
        Digest::parse_shared(&format!("{algo}:{hex}"))
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        let mut h = Hasher::new(Algorithm::Sha256);
        h.update(bytes);
        h.finish()
    }

    pub fn algorithm(&self) -> Algorithm {
        let (algo, _) = self.0.split_once(':').expect("validated");
        Algorithm::from_name(algo).expect("validated")
    }

    /// The hex part, without the `algo:` prefix.
    pub fn hex(&self) -> &str {
        let (_, hex) = self.0.split_once(':').expect("validated");
        hex
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text's bytes, shared rather than copied: a link file holds
    /// exactly these, and a plan holds one per link it writes.
    pub fn shared_bytes(&self) -> std::sync::Arc<[u8]> {
        std::sync::Arc::<[u8]>::from(self.0.clone())
    }

    /// A short form for messages: `sha256:3f5e9c1a2b4d`.
    pub fn short(&self) -> &str {
        &self.0[..self.algorithm().name().len() + 13]
    }
}

/// Hashes a digest's text by its last 8 hex digits (random already),
/// for the table below: SipHash over all 71 bytes would cost more than
/// the rest of the lookup.
#[derive(Default)]
struct TailHasher(u64);

impl std::hash::Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        let tail = &bytes[bytes.len().saturating_sub(8)..];
        let mut word = [0u8; 8];
        word[..tail.len()].copy_from_slice(tail);
        self.0 = (self.0 ^ u64::from_le_bytes(word)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_u8(&mut self, b: u8) {
        self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type Shared =
    std::collections::HashSet<std::sync::Arc<str>, std::hash::BuildHasherDefault<TailHasher>>;

/// The one shared copy of a digest's text: a table in 16 parts (by the
/// last hex digit), so that the threads of a walk seldom wait for each
/// other.
fn intern(text: std::sync::Arc<str>) -> std::sync::Arc<str> {
    use std::sync::{Mutex, OnceLock};
    static TABLE: OnceLock<Vec<Mutex<Shared>>> = OnceLock::new();
    let table = TABLE.get_or_init(|| (0..16).map(|_| Mutex::new(Shared::default())).collect());
    let last = text.as_bytes()[text.len() - 1];
    let part = usize::from(if last.is_ascii_digit() {
        last - b'0'
    } else {
        last - b'a' + 10
    });
    let mut set = table[part & 15].lock().unwrap_or_else(|e| e.into_inner());
    match set.get(&*text) {
        Some(shared) => shared.clone(),
        None => {
            set.insert(text.clone());
            text
        }
    }
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        Digest::parse_shared(&s).map_err(serde::de::Error::custom)
    }
}

/// An incremental hasher for one of the supported algorithms.
pub struct Hasher {
    inner: HasherInner,
}

enum HasherInner {
    Sha256(Sha256),
    Sha512(Box<Sha512>),
}

impl Hasher {
    pub fn new(algo: Algorithm) -> Hasher {
        let inner = match algo {
            Algorithm::Sha256 => HasherInner::Sha256(Sha256::new()),
            Algorithm::Sha512 => HasherInner::Sha512(Box::new(Sha512::new())),
        };
        Hasher { inner }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.inner {
            HasherInner::Sha256(h) => h.update(bytes),
            HasherInner::Sha512(h) => h.update(bytes),
        }
    }

    pub fn finish(self) -> Digest {
        let (algo, hex) = match self.inner {
            HasherInner::Sha256(h) => ("sha256", hex::encode(h.finalize())),
            HasherInner::Sha512(h) => ("sha512", hex::encode(h.finalize())),
        };
        Digest(format!("{algo}:{hex}").into())
    }
}

impl Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Where a streamed copy failed: reading its source or writing its target.
#[derive(Debug)]
pub enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Streams `reader` to its end into `writer`, hashing the bytes on the way
/// when `algo` is given; returns the digest (if hashed) and the length.
/// Ctrl-C stops it at the next buffer, as a read failing with
/// [`crate::interrupt::io_error`].
pub fn copy_hashed(
    mut reader: impl Read,
    mut writer: impl Write,
    algo: Option<Algorithm>,
) -> Result<(Option<Digest>, u64), CopyError> {
    thread_local! {
        // One buffer per thread: verify and gc hash tens of thousands of
        // blobs, and a fresh 256 KiB buffer each would be an mmap each.
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 256 * 1024]);
    }
    BUF.with(|buf| {
        // A reader that itself copies (nested use) gets a buffer of its own.
        let mut owned;
        let mut borrowed = buf.try_borrow_mut();
        let buf: &mut [u8] = match borrowed.as_mut() {
            Ok(b) => b,
            Err(_) => {
                owned = vec![0u8; 256 * 1024];
                &mut owned
            }
        };
        let mut hasher = algo.map(Hasher::new);
        let mut total = 0u64;
        loop {
            crate::interrupt::check_io().map_err(CopyError::Read)?;
            let n = match reader.read(buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(CopyError::Read(e)),
            };
            if let Some(h) = hasher.as_mut() {
                h.update(&buf[..n]);
            }
            writer.write_all(&buf[..n]).map_err(CopyError::Write)?;
            total += n as u64;
        }
        Ok((hasher.map(Hasher::finish), total))
    })
}

/// Streams `reader` to its end, returning its digest (in `algo`) and length.
pub fn hash_reader(algo: Algorithm, reader: impl Read) -> io::Result<(Digest, u64)> {
    match copy_hashed(reader, io::sink(), Some(algo)) {
        Ok((d, n)) => Ok((d.expect("hashed"), n)),
        Err(CopyError::Read(e) | CopyError::Write(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_splits() {
        let d = Digest::parse(EMPTY).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.hex().len(), 64);
        assert_eq!(d.short(), "sha256:e3b0c44298fc");
    }

    #[test]
    fn rejects_near_misses() {
        for bad in [
            "",
            "sha256:",
            &format!("{EMPTY}\n"),
            &format!(" {EMPTY}"),
            &EMPTY.to_uppercase(),
            &EMPTY.replace("sha256", "md5"),
            &EMPTY[..EMPTY.len() - 1],
            "sha256:xyz",
        ] {
            assert!(Digest::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn digests_read_from_a_tree_share_their_text() {
        let a = Digest::parse_shared(EMPTY).unwrap();
        let b = Digest::from_parts("sha256", &EMPTY[7..]).unwrap();
        let c: Digest = serde_json::from_str(&format!("{EMPTY:?}")).unwrap();
        assert!(std::sync::Arc::ptr_eq(&a.0, &b.0) && std::sync::Arc::ptr_eq(&a.0, &c.0));
        // A name from elsewhere (a request) is not kept.
        assert!(!std::sync::Arc::ptr_eq(
            &a.0,
            &Digest::parse(EMPTY).unwrap().0
        ));
        assert_eq!((a.clone(), b.as_str()), (c, EMPTY));
    }

    #[test]
    fn hashes_bytes() {
        assert_eq!(Digest::sha256_of(b"").as_str(), EMPTY);
        let (d, n) = hash_reader(Algorithm::Sha256, &b""[..]).unwrap();
        assert_eq!((d.as_str(), n), (EMPTY, 0));
    }
}
