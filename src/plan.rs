//! A plan: the folders and files an output layout needs, before any sink
//! writes them. Layouts build plans; sinks apply them (to a folder, a tar
//! stream) or print them (`--dry-run`).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use crate::digest::Digest;
use crate::error::{Error, Result};

/// Where a file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A blob of the source tree, linked or streamed as its exact bytes.
    Blob(Digest),
    /// Small bytes made by the layout (link files, `version`, `index.json`).
    Bytes(Arc<[u8]>),
    /// A local file outside the store (an import source) whose content must
    /// have this digest; linked where it can be, checked where copied.
    File { path: PathBuf, digest: Digest },
}

/// Files are written phase by phase, so that a reader of a partly written
/// output never finds a link to a blob that is not there yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Blob data, and anything that only holds content.
    Content,
    /// Links that make content reachable by digest (revisions, `_layers`).
    Link,
    /// Names (tag links), last.
    Name,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub source: Source,
    pub size: u64,
    pub phase: Phase,
}

/// Folders and files relative to an output root, by `/`-separated relative
/// paths (strings: they compare as bytes, which keeps parents before their
/// children and is much cheaper than comparing `Path` components).
#[derive(Debug, Default, Clone)]
pub struct Plan {
    pub dirs: BTreeSet<String>,
    pub files: BTreeMap<String, FileEntry>,
}

impl Plan {
    pub fn new() -> Plan {
        Plan::default()
    }

    /// Adds an (possibly empty) folder.
    pub fn dir(&mut self, path: impl Into<String>) {
        self.dirs.insert(path.into());
    }

    /// Adds a file with a blob's bytes.
    pub fn blob(
        &mut self,
        path: impl Into<String>,
        digest: &Digest,
        size: u64,
        phase: Phase,
    ) -> Result<()> {
        self.file(path.into(), Source::Blob(digest.clone()), size, phase)
    }

    /// Adds a file whose bytes come from a local file with a known digest.
    pub fn local_file(
        &mut self,
        path: impl Into<String>,
        from: PathBuf,
        digest: &Digest,
        size: u64,
        phase: Phase,
    ) -> Result<()> {
        let source = Source::File {
            path: from,
            digest: digest.clone(),
        };
        self.file(path.into(), source, size, phase)
    }

    /// Adds a file with the given bytes.
    pub fn bytes(
        &mut self,
        path: impl Into<String>,
        bytes: impl Into<Arc<[u8]>>,
        phase: Phase,
    ) -> Result<()> {
        let bytes: Arc<[u8]> = bytes.into();
        let size = bytes.len() as u64;
        self.file(path.into(), Source::Bytes(bytes), size, phase)
    }

    /// Adds a file with bytes from any source; the same path twice must have
    /// the same source.
    pub fn file(
        &mut self,
        path: impl Into<String>,
        source: Source,
        size: u64,
        phase: Phase,
    ) -> Result<()> {
        let path = path.into();
        let entry = FileEntry {
            source,
            size,
            phase,
        };
        match self.files.entry(path) {
            std::collections::btree_map::Entry::Occupied(o) => {
                let existing = o.get();
                if same_content(&existing.source, &entry.source) {
                    Ok(())
                } else {
                    Err(Error::Conflict {
                        existing: describe(&existing.source),
                        wanted: describe(&entry.source),
                        path: o.key().into(),
                    })
                }
            }
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(entry);
                Ok(())
            }
        }
    }

    /// Every folder the plan needs, parents included, grouped by depth
    /// (index 0 holds the top-level folders), so each group can be created
    /// in parallel once the one before it exists.
    pub fn dirs_by_depth(&self) -> Vec<Vec<&str>> {
        let mut seen: HashSet<&str> = HashSet::new();
        let parents = self
            .files
            .keys()
            .filter_map(|p| p.rsplit_once('/').map(|(d, _)| d));
        for d in self.dirs.iter().map(String::as_str).chain(parents) {
            let mut cur = d;
            while !cur.is_empty() && seen.insert(cur) {
                cur = cur.rsplit_once('/').map_or("", |(p, _)| p);
            }
        }
        let mut levels: Vec<Vec<&str>> = Vec::new();
        for d in seen {
            let depth = d.matches('/').count();
            if levels.len() <= depth {
                levels.resize(depth + 1, Vec::new());
            }
            levels[depth].push(d);
        }
        for l in &mut levels {
            l.sort_unstable();
        }
        levels
    }

    /// Files grouped by phase, each group sorted by path.
    pub fn phases(&self) -> Vec<(Phase, Vec<(&String, &FileEntry)>)> {
        let mut out: BTreeMap<Phase, Vec<(&String, &FileEntry)>> = BTreeMap::new();
        for (p, f) in &self.files {
            out.entry(f.phase).or_default().push((p, f));
        }
        out.into_iter().collect()
    }

    /// The number of files whose bytes come from blobs (in the store or local
    /// files), and their total size.
    pub fn blob_totals(&self) -> (usize, u64) {
        self.files
            .values()
            .filter(|f| !matches!(f.source, Source::Bytes(_)))
            .fold((0, 0), |(n, b), f| (n + 1, b + f.size))
    }
}

/// Whether two sources give the same bytes: the same digest (blobs and
/// local files are checked against theirs when written), or the same bytes.
fn same_content(a: &Source, b: &Source) -> bool {
    let digest_of = |s: &Source| match s {
        Source::Blob(d) | Source::File { digest: d, .. } => Ok(d.clone()),
        Source::Bytes(bytes) => Err(bytes.clone()),
    };
    match (digest_of(a), digest_of(b)) {
        (Ok(x), Ok(y)) => x == y,
        (Err(x), Err(y)) => x == y,
        (Ok(d), Err(bytes)) | (Err(bytes), Ok(d)) => Digest::sha256_of(&bytes) == d,
    }
}

/// A short description of a file's intended content, for conflict messages.
pub fn describe(source: &Source) -> String {
    match source {
        Source::Blob(d) | Source::File { digest: d, .. } => format!("blob {d}"),
        Source::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) if s.len() <= 80 => format!("{s:?}"),
            _ => format!("{} bytes", b.len()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirs_include_parents_and_conflicts_are_refused() {
        let mut p = Plan::new();
        let d = Digest::sha256_of(b"a");
        p.blob("a/b/c", &d, 1, Phase::Content).unwrap();
        p.blob("a/b/c", &d, 1, Phase::Content).unwrap();
        p.dir("x/_uploads");
        assert_eq!(
            p.dirs_by_depth(),
            [vec!["a", "x"], vec!["a/b", "x/_uploads"]]
        );
        let err = p.bytes("a/b/c", &b"other"[..], Phase::Link).unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }));
    }
}
