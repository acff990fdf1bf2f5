//! Reading one image out of a layout that names its parts by digest (a
//! `dir:` folder, an OCI layout): from the top manifest down through the
//! children an index names to every config and layer, each checked against
//! its digest and size.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};
use crate::graph::{self, Node};
use crate::import::files::Files;
use crate::import::{Found, Item};
use crate::manifest::Manifest;
use crate::media::ManifestKind;
use crate::plan::Source;
use crate::store::MAX_MANIFEST_SIZE;

/// Where a layout keeps an image's child manifests and blobs.
pub struct Paths {
    pub child: fn(&Digest) -> String,
    pub blob: fn(&Digest) -> String,
}

/// An image read from a layout: everything but its name.
pub struct Walked {
    pub kind: ManifestKind,
    pub manifests: Vec<Item>,
    pub blobs: Vec<Item>,
    pub missing_children: Vec<Digest>,
}

impl Walked {
    /// The image under a name, read from `source`.
    pub fn named(
        self,
        repo: String,
        tag: Option<String>,
        digest: Digest,
        source: PathBuf,
    ) -> Found {
        Found {
            repo,
            tag,
            digest,
            kind: self.kind,
            manifests: self.manifests,
            blobs: self.blobs,
            missing_children: self.missing_children,
            source,
        }
    }
}

/// Reads an image from its top manifest (`bytes`, read from `top_rel` and
/// checked to hash to `top`): the children an index names, where present,
/// and every config and layer, each checked against its digest and size.
pub fn walk(
    files: &Files,
    paths: &Paths,
    top: &Digest,
    top_rel: &str,
    bytes: &[u8],
) -> Result<Walked> {
    let mut w = Walker {
        files,
        paths,
        top_rel,
        top_bytes: bytes,
        seen_blobs: HashSet::new(),
        children: HashMap::new(),
        out: Walked {
            kind: ManifestKind::OciManifest,
            manifests: Vec::new(),
            blobs: Vec::new(),
            missing_children: Vec::new(),
        },
    };
    graph::walk(top, &mut w)?;
    Ok(w.out)
}

/// Reads a manifest at `rel`, checked to hash to `digest` (and to have
/// `size` bytes when known).
pub fn read_manifest(
    files: &Files,
    rel: &str,
    digest: &Digest,
    size: Option<u64>,
) -> Result<Vec<u8>> {
    let bytes = files
        .read(rel, MAX_MANIFEST_SIZE)?
        .ok_or_else(|| Error::MissingBlob {
            digest: digest.clone(),
            what: "manifest".into(),
            path: files.display(rel),
        })?;
    if let Some(want) = size.filter(|s| *s != bytes.len() as u64) {
        return Err(Error::SizeMismatch {
            path: files.display(rel),
            digest: digest.clone(),
            expected: want,
            actual: bytes.len() as u64,
        });
    }
    let mut hasher = Hasher::new(digest.algorithm());
    hasher.update(&bytes);
    let actual = hasher.finish();
    if actual != *digest {
        return Err(Error::DigestMismatch {
            path: files.display(rel),
            expected: digest.clone(),
            actual,
        });
    }
    Ok(bytes)
}

struct Walker<'a> {
    files: &'a Files,
    paths: &'a Paths,
    top_rel: &'a str,
    top_bytes: &'a [u8],
    seen_blobs: HashSet<Digest>,
    /// How many children each index names.
    children: HashMap<Digest, usize>,
    out: Walked,
}

impl Walker<'_> {
    fn rel(&self, step: &graph::Step) -> String {
        match step.depth {
            0 => self.top_rel.to_string(),
            _ => (self.paths.child)(step.digest),
        }
    }
}

impl graph::Visitor for Walker<'_> {
    fn manifest(&mut self, step: &graph::Step) -> Result<Option<Arc<Node>>> {
        let rel = self.rel(step);
        let read;
        let bytes = match step.entry {
            None => self.top_bytes,
            Some(entry) => {
                if !self.files.exists(&rel)? {
                    self.out.missing_children.push(step.digest.clone());
                    return Ok(None);
                }
                read = read_manifest(self.files, &rel, step.digest, entry.size)?;
                &read[..]
            }
        };
        let m = Manifest::parse(bytes).map_err(|reason| Error::BadManifest {
            digest: step.digest.clone(),
            path: self.files.display(&rel),
            reason,
        })?;
        if step.depth == 0 {
            self.out.kind = m.kind;
        }
        if m.kind.is_index() {
            self.children.insert(step.digest.clone(), m.children.len());
        }
        let (path, _) = self.files.local(&rel)?.expect("read just now");
        self.out.manifests.push(Item {
            digest: step.digest.clone(),
            size: bytes.len() as u64,
            source: Source::File {
                path,
                digest: step.digest.clone(),
            },
        });
        Ok(Some(Arc::new(Node {
            manifest: m,
            size: bytes.len() as u64,
        })))
    }

    fn blob(&mut self, _step: &graph::Step, blob: &graph::BlobRef) -> Result<()> {
        let b = blob.descriptor;
        if b.is_foreign() || !self.seen_blobs.insert(b.digest.clone()) {
            return Ok(());
        }
        let rel = (self.paths.blob)(&b.digest);
        let local = self.files.expect(&rel, &b.digest, b.size, &blob.what)?;
        self.out.blobs.push(Item {
            digest: b.digest.clone(),
            size: local.size,
            source: Source::File {
                path: local.path,
                digest: b.digest.clone(),
            },
        });
        Ok(())
    }

    fn index_done(&mut self, step: &graph::Step, kept: usize) -> Result<()> {
        let named = self.children.get(step.digest).copied().unwrap_or(0);
        if kept == 0 && named > 0 {
            return Err(Error::Invalid {
                message: format!(
                    "none of the {named} child manifests of this index is in the source"
                ),
                path: Some(self.files.display(&self.rel(step))),
            });
        }
        Ok(())
    }

    fn path(&self, digest: &Digest) -> Option<std::path::PathBuf> {
        Some(self.files.display(&(self.paths.child)(digest)))
    }
}
