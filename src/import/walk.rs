//! Reading one image out of a layout that names its parts by digest (a
//! `dir:` folder, an OCI layout): from the top manifest down through the
//! children an index names to every config and layer, each checked against
//! its digest and size.

use std::collections::HashSet;
use std::path::PathBuf;

use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};
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

const MAX_DEPTH: usize = 8;

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
        seen: HashSet::new(),
        seen_blobs: HashSet::new(),
        out: Walked {
            kind: ManifestKind::OciManifest,
            manifests: Vec::new(),
            blobs: Vec::new(),
            missing_children: Vec::new(),
        },
    };
    w.out.kind = w.visit(top, top_rel, bytes, 0)?;
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
    seen: HashSet<Digest>,
    seen_blobs: HashSet<Digest>,
    out: Walked,
}

impl Walker<'_> {
    /// Adds a manifest and what it needs; returns its kind.
    fn visit(
        &mut self,
        digest: &Digest,
        rel: &str,
        bytes: &[u8],
        depth: usize,
    ) -> Result<ManifestKind> {
        if depth > MAX_DEPTH {
            return Err(Error::Invalid {
                message: format!("indexes nest deeper than {MAX_DEPTH} levels"),
                path: Some(self.files.display(rel)),
            });
        }
        let m = Manifest::parse(bytes).map_err(|reason| Error::BadManifest {
            digest: digest.clone(),
            path: self.files.display(rel),
            reason,
        })?;
        if !self.seen.insert(digest.clone()) {
            return Ok(m.kind);
        }
        let (path, _) = self.files.local(rel)?.expect("read just now");
        self.out.manifests.push(Item {
            digest: digest.clone(),
            size: bytes.len() as u64,
            source: Source::File {
                path,
                digest: digest.clone(),
            },
        });
        if m.kind.is_index() {
            let mut present = 0;
            for c in &m.children {
                let child_rel = (self.paths.child)(&c.digest);
                if !self.files.exists(&child_rel)? {
                    self.out.missing_children.push(c.digest.clone());
                    continue;
                }
                let child = read_manifest(self.files, &child_rel, &c.digest, c.size)?;
                self.visit(&c.digest, &child_rel, &child, depth + 1)?;
                present += 1;
            }
            if present == 0 && !m.children.is_empty() {
                return Err(Error::Invalid {
                    message: format!(
                        "none of the {} child manifests of this index is in the source",
                        m.children.len()
                    ),
                    path: Some(self.files.display(rel)),
                });
            }
            return Ok(m.kind);
        }
        let n = m.layers.len();
        for b in m.blobs() {
            if b.is_foreign() || !self.seen_blobs.insert(b.digest.clone()) {
                continue;
            }
            let what = match m.layers.iter().position(|l| l.digest == b.digest) {
                Some(i) if m.config.as_ref().is_none_or(|c| c.digest != b.digest) => {
                    format!("layer {} of {n}", i + 1)
                }
                _ => "config".to_string(),
            };
            let rel = (self.paths.blob)(&b.digest);
            let local = self.files.expect(&rel, &b.digest, b.size, &what)?;
            self.out.blobs.push(Item {
                digest: b.digest.clone(),
                size: local.size,
                source: Source::File {
                    path: local.path,
                    digest: b.digest.clone(),
                },
            });
        }
        Ok(m.kind)
    }
}
