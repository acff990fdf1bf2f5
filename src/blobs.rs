//! Every blob of a tree: listed from `blobs/`, sized, and hashed on all
//! cores with each file streamed once.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::paths::Spec;
use crate::progress::Progress;
use crate::store::{self, Store};

/// Every blob folder under `blobs/` whose name is a digest, sorted. (A
/// folder without its `data` file is listed too; [`check`] finds it
/// missing.)
pub fn list(store: &Store) -> Result<Vec<Digest>> {
    store.list_blobs()
}

/// Every blob under `blobs/` with its size (`None`: a blob folder without
/// `data`), sorted, each sized once: on disk a listing, then one `stat`
/// each, in parallel; in a bucket one flat listing, which carries the
/// sizes (one request per 1000 blobs).
pub fn sizes(store: &Store) -> Result<Vec<(Digest, Option<u64>)>> {
    if let Some(bucket) = store.s3() {
        let mut out = Vec::new();
        bucket
            .walk(Path::new(crate::paths::BLOBS), &mut |key, object| {
                let rel = format!("{}/{key}", crate::paths::BLOBS);
                if let Some(crate::paths::Parsed::BlobData(d)) = crate::paths::parse(&rel) {
                    out.push((d, Some(object.size)));
                }
            })
            .map_err(|e| Error::io("list folder", store.display(&Spec::BlobsRoot), e))?;
        out.sort();
        out.dedup_by(|a, b| a.0 == b.0);
        return Ok(out);
    }
    let digests = list(store)?;
    let sizes: Vec<Option<u64>> = digests
        .par_iter()
        .with_min_len(64)
        .map(|d| store.blob_size(d))
        .collect::<Result<_>>()?;
    Ok(digests.into_iter().zip(sizes).collect())
}

/// What reading a blob found.
#[derive(Debug)]
pub enum Checked {
    /// No `data` file.
    Missing,
    /// Its size, and its actual digest when it was hashed.
    Present { size: u64, actual: Option<Digest> },
    /// It could not be read.
    Unreadable(Arc<Error>),
}

/// Checks blobs in parallel: each is hashed (streamed once) when `hash`,
/// else only sized; after Ctrl-C the rest are `Unreadable(Interrupted)`. The result is in the order of `digests`. Blobs to hash
/// are read folder by folder (`blobs/sha256/<2 hex>/`), each folder opened
/// once.
pub fn check_all(store: &Store, digests: &[(Digest, bool)], progress: &Progress) -> Vec<Checked> {
    let mut groups: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    let mut sized = Vec::new();
    for (i, (d, hash)) in digests.iter().enumerate() {
        if *hash {
            let key = (d.algorithm().name(), &d.hex()[..2]);
            groups.entry(key).or_default().push(i);
        } else {
            sized.push(i);
        }
    }
    let groups: Vec<Vec<usize>> = groups.into_values().collect();
    let mut found: Vec<(usize, Checked)> = groups
        .par_iter()
        .flat_map_iter(|idx| {
            let found = hash_in(store, idx.iter().map(|&i| &digests[i].0));
            progress.inc(idx.len() as u64);
            idx.iter().copied().zip(found).collect::<Vec<_>>()
        })
        .collect();
    found.par_extend(sized.par_iter().with_max_len(64).map(|&i| {
        let c = check(store, &digests[i].0, digests[i].1);
        progress.inc(1);
        (i, c)
    }));
    found.sort_unstable_by_key(|(i, _)| *i);
    found.into_iter().map(|(_, c)| c).collect()
}

/// Hashes blobs of one prefix folder (`blobs/<algorithm>/<2 hex>/`).
fn hash_in<'a>(store: &Store, digests: impl Iterator<Item = &'a Digest>) -> Vec<Checked> {
    let digests: Vec<&Digest> = digests.collect();
    let Some(first) = digests.first() else {
        return Vec::new();
    };
    let dir = Spec::BlobPrefix(first).path();
    let names: Vec<PathBuf> = digests
        .iter()
        .map(|d| store::relative(&Spec::BlobData(d), &dir))
        .collect();
    let mut out = Vec::with_capacity(digests.len());
    store.backend().each_in(&dir, &names, &mut |i, file| {
        let d = digests[i];
        let path = || store.display(&Spec::BlobData(d));
        if crate::interrupt::interrupted() {
            // Stop reading; the caller reports the interrupt.
            out.push(Checked::Unreadable(Arc::new(Error::Interrupted)));
            return;
        }
        out.push(match file.and_then(|f| hash_stream(d, f)) {
            Ok((actual, size)) => Checked::Present {
                size,
                actual: Some(actual),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Checked::Missing,
            // A folder named like a blob.
            Err(e) if e.raw_os_error() == Some(nix::libc::EISDIR) => Checked::Missing,
            Err(e) => Checked::Unreadable(Arc::new(Error::io("read blob", path(), e))),
        });
    });
    out
}

/// Sizes or hashes one blob.
pub fn check(store: &Store, digest: &Digest, hash: bool) -> Checked {
    if hash {
        return hash_in(store, std::iter::once(digest))
            .pop()
            .expect("one result");
    }
    match store.blob_size(digest) {
        Ok(Some(size)) => Checked::Present { size, actual: None },
        Ok(None) => Checked::Missing,
        Err(e) => Checked::Unreadable(Arc::new(e)),
    }
}

/// Hashes the bytes of the blob `stored` as the blob `name` (another
/// digest of the same bytes, such as a sha512 the registry links to the
/// sha256 it stores them under): `actual` is in `name`'s algorithm.
pub fn check_as(store: &Store, name: &Digest, stored: &Digest) -> Checked {
    let path = || store.display(&Spec::BlobData(stored));
    match store
        .backend()
        .open(&Spec::BlobData(stored).path())
        .and_then(|mut r| crate::digest::hash_reader(name.algorithm(), &mut *r))
    {
        Ok((actual, size)) => Checked::Present {
            size,
            actual: Some(actual),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Checked::Missing,
        Err(e) => Checked::Unreadable(Arc::new(Error::io("read blob", path(), e))),
    }
}

/// Streams a blob, to its end, through the hasher of its digest's
/// algorithm.
fn hash_stream(digest: &Digest, reader: &mut dyn Read) -> io::Result<(Digest, u64)> {
    crate::digest::hash_reader(digest.algorithm(), reader)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn lists_sizes_and_hashes() {
        let t = tempfile::tempdir().unwrap();
        let v2 = t.path().join(crate::paths::V2_PREFIX);
        let good = Digest::sha256_of(b"good");
        let bad = Digest::sha256_of(b"bad");
        for (d, content) in [(&good, &b"good"[..]), (&bad, &b"evil"[..])] {
            let p = v2.join(Spec::BlobData(d).path());
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, content).unwrap();
        }
        let gone = Digest::sha256_of(b"gone");
        fs::create_dir_all(v2.join(Spec::BlobDir(&gone).path())).unwrap();
        let store = Store::open(t.path()).unwrap();
        let mut want = vec![good.clone(), bad.clone(), gone.clone()];
        want.sort();
        assert_eq!(list(&store).unwrap(), want);
        let sized: Vec<(Digest, Option<u64>)> = sizes(&store).unwrap();
        assert_eq!(
            sized.iter().map(|s| &s.0).collect::<Vec<_>>(),
            want.iter().collect::<Vec<_>>()
        );
        for (d, size) in &sized {
            assert_eq!(*size, (d != &gone).then_some(4), "{d}");
        }
        let got = check_all(
            &store,
            &[(good.clone(), true), (bad.clone(), true), (gone, false)],
            &Progress::hidden(),
        );
        assert!(matches!(&got[0], Checked::Present { size: 4, actual: Some(a) } if *a == good));
        assert!(matches!(&got[1], Checked::Present { size: 4, actual: Some(a) } if *a != bad));
        assert!(matches!(&got[2], Checked::Missing));
    }
}
