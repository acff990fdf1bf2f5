//! Images read out of other layouts for `regkit import`: skopeo's `dir:`
//! folders (one image, or a tree of `<repo>:<tag>` folders), OCI image
//! layouts (folders or tars) and `docker save` archives.
//!
//! Each source is read into [`Found`] images: the name they go under, and
//! for every manifest and blob, where its bytes are and the digest they
//! were checked to have. [`plan`] then lays them out as the registry does
//! after a push (`layout::registry`).

pub mod detect;
pub mod dir;
pub mod docker_archive;
pub mod files;
pub mod oci;
pub mod tar;

use std::collections::HashSet;
use std::path::PathBuf;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layout::registry;
use crate::manifest::Manifest;
use crate::media::ManifestKind;
use crate::plan::{self, Plan};
use crate::reference::ImageRef;
use crate::store::MAX_MANIFEST_SIZE;
use files::Files;

/// One image found in a source.
#[derive(Debug, Clone)]
pub struct Found {
    pub repo: String,
    /// `None`: imported by digest only (revision links, no tag).
    pub tag: Option<String>,
    /// The top manifest.
    pub digest: Digest,
    pub kind: ManifestKind,
    /// The top manifest first, then every child the source holds.
    pub manifests: Vec<Item>,
    /// Every config and layer; unique.
    pub blobs: Vec<Item>,
    /// Children of an index the source does not hold (left out, as
    /// `--platform` leaves them); the index keeps its bytes.
    pub missing_children: Vec<Digest>,
    /// The source it was read from.
    pub source: PathBuf,
}

/// A manifest or blob and where its checked bytes are.
#[derive(Debug, Clone)]
pub struct Item {
    pub digest: Digest,
    pub size: u64,
    pub source: plan::Source,
}

impl Found {
    /// `repo:tag`, or `repo@digest` when untagged.
    pub fn name(&self) -> String {
        match &self.tag {
            Some(t) => format!("{}:{t}", self.repo),
            None => format!("{}@{}", self.repo, self.digest),
        }
    }

    pub fn size(&self) -> u64 {
        self.manifests
            .iter()
            .chain(&self.blobs)
            .map(|i| i.size)
            .sum()
    }
}

/// The name `--repo NAME[:TAG]` gives to images whose source names none.
#[derive(Debug, Clone)]
pub struct GivenName {
    pub repo: String,
    pub tag: Option<String>,
}

impl GivenName {
    pub fn parse(s: &str) -> Result<GivenName> {
        let r = ImageRef::parse(s)?;
        if r.digest.is_some() {
            return Err(Error::BadReference {
                input: s.into(),
                reason: "--repo takes NAME[:TAG], not a digest".into(),
            });
        }
        Ok(GivenName {
            repo: r.repo,
            tag: r.tag,
        })
    }
}

/// What one source held.
pub struct Source {
    pub path: PathBuf,
    pub kind: detect::Kind,
    pub archive: bool,
    pub images: Vec<Found>,
    /// Things left out, worth a note.
    pub notes: Vec<String>,
}

/// Reads one source, whatever it is.
pub fn read(
    path: &std::path::Path,
    given: Option<&GivenName>,
    staging: &mut tar::Staging,
    hashes: std::sync::Arc<files::Hashes>,
) -> Result<Source> {
    let (kind, files) = detect::detect(path, staging, hashes)?;
    let mut notes = Vec::new();
    let images = match kind {
        detect::Kind::DirImage => vec![dir::read_one(&files, given)?],
        detect::Kind::DirTree => dir::read_tree(&files)?,
        detect::Kind::Oci => {
            let r = oci::read(&files, given)?;
            notes = r.notes;
            r.images
        }
        detect::Kind::DockerArchive => docker_archive::read(&files, given)?,
    };
    Ok(Source {
        path: path.to_path_buf(),
        kind,
        archive: files.is_archive(),
        images,
        notes,
    })
}

/// Plans the registry tree of the images found, paths from
/// `docker/registry/v2/`.
pub fn plan<'a>(found: impl IntoIterator<Item = &'a Found>) -> Result<Plan> {
    let mut plan = Plan::new();
    for f in found {
        let repo = f.repo.as_str();
        for m in &f.manifests {
            registry::manifest(&mut plan, repo, &m.digest, m.size, m.source.clone())?;
        }
        for b in &f.blobs {
            registry::blob(&mut plan, repo, &b.digest, b.size, b.source.clone())?;
        }
        if let Some(tag) = &f.tag {
            registry::tag(&mut plan, repo, tag, &f.digest)?;
        }
        registry::repository(&mut plan, repo);
    }
    Ok(plan)
}

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
    let mut hasher = crate::digest::Hasher::new(digest.algorithm());
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
            source: plan::Source::File {
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
                Some(i) if m.config.as_ref().map_or(true, |c| c.digest != b.digest) => {
                    format!("layer {} of {n}", i + 1)
                }
                _ => "config".to_string(),
            };
            let rel = (self.paths.blob)(&b.digest);
            let local = self.files.expect(&rel, &b.digest, b.size, &what)?;
            self.out.blobs.push(Item {
                digest: b.digest.clone(),
                size: local.size,
                source: plan::Source::File {
                    path: local.path,
                    digest: b.digest.clone(),
                },
            });
        }
        Ok(m.kind)
    }
}
