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
pub mod walk;

use std::path::PathBuf;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layout::registry;
use crate::media::ManifestKind;
use crate::plan::{self, Plan};
use crate::reference::ImageRef;

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
        // The name as given, unless it cannot be a repository name
        // (`host:port/...`): then without its host.
        Ok(GivenName {
            repo: r.candidates().swap_remove(0),
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
