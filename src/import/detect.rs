//! What an import source is, told by its content (never by its name).
//!
//! A folder: with `oci-layout`, an OCI image layout; with a
//! `manifest.json` holding a JSON array, an unpacked `docker save`
//! archive; with another `manifest.json`, a `dir:` image folder; else a
//! tree of `<repo>:<tag>` image folders. A file: a tar (plain, gzip or
//! zstd), unpacked first; with `oci-layout` an OCI layout (Docker 25's
//! `docker save` hybrids too), else with `manifest.json` a docker archive.

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::import::files::{Files, Hashes};
use crate::import::tar::{unpack, Staging};
use crate::layout::docker_archive::MANIFEST_FILE;
use crate::layout::oci::LAYOUT_FILE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One `dir:` image folder.
    DirImage,
    /// A folder of `<repo>:<tag>` image folders.
    DirTree,
    /// An OCI image layout (folder or tar).
    Oci,
    /// A `docker save` archive (tar or unpacked).
    DockerArchive,
}

impl Kind {
    pub fn describe(self, archive: bool) -> &'static str {
        match (self, archive) {
            (Kind::DirImage, _) => "dir: image",
            (Kind::DirTree, _) => "folder of dir: images",
            (Kind::Oci, false) => "OCI layout",
            (Kind::Oci, true) => "oci-archive",
            (Kind::DockerArchive, _) => "docker-archive",
        }
    }
}

/// Looks at `path` (unpacking it to `staging` if it is a file).
pub fn detect(path: &Path, staging: &mut Staging, hashes: Arc<Hashes>) -> Result<(Kind, Files)> {
    let meta = path
        .metadata()
        .map_err(|e| Error::io("open the source", path, e))?;
    if meta.is_dir() {
        let files = Files::folder(path, hashes);
        let kind = if files.exists(LAYOUT_FILE)? {
            Kind::Oci
        } else if let Some(m) = files.read(MANIFEST_FILE, 64 << 20)? {
            if m.trim_ascii_start().starts_with(b"[") {
                Kind::DockerArchive
            } else {
                Kind::DirImage
            }
        } else {
            Kind::DirTree
        };
        return Ok((kind, files));
    }
    let members = unpack(path, staging)?;
    let files = Files::archive(path, members, hashes);
    let kind = if files.exists(LAYOUT_FILE)? {
        Kind::Oci
    } else if files.exists(MANIFEST_FILE)? {
        Kind::DockerArchive
    } else {
        return Err(Error::Invalid {
            message: "this archive is neither an OCI layout (oci-layout, index.json) nor a docker save archive (manifest.json)".into(),
            path: Some(path.into()),
        });
    };
    Ok((kind, files))
}
