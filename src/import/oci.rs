//! Reading an OCI image layout (a folder, or an oci-archive tar; Docker 25's
//! `docker save` writes one too): `oci-layout`, `index.json` and
//! `blobs/<algorithm>/<hex>`.
//!
//! Names: the full name in `io.containerd.image.name` when an entry has one
//! (a registry host in it is dropped); else the tag in
//! `org.opencontainers.image.ref.name` with the repository of `--repo` (a
//! ref name that is itself `name:tag`, as `skopeo copy ... oci:DIR:name:tag`
//! writes, names both); an entry with neither is imported untagged into
//! `--repo`.

use rayon::prelude::*;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::import::files::Files;
use crate::import::walk::{read_manifest, walk, Paths};
use crate::import::{Found, GivenName};
use crate::layout::oci::{
    blob_path, IMAGE_NAME, INDEX_FILE, LAYOUT_FILE, LAYOUT_VERSION, REF_NAME,
};
use crate::manifest::Descriptor;
use crate::media::ManifestKind;
use crate::paths;
use crate::reference::ImageRef;

/// Where a layout keeps children and blobs: all in `blobs/`.
pub const PATHS: Paths = Paths {
    child: blob_path,
    blob: blob_path,
};

const MAX_INDEX: u64 = 64 << 20;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutFile {
    image_layout_version: String,
}

#[derive(Deserialize)]
struct IndexFile {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// What `read` found: the images, and notes on entries left out.
pub struct Read {
    pub images: Vec<Found>,
    pub notes: Vec<String>,
}

/// Reads every image `index.json` names.
pub fn read(files: &Files, given: Option<&GivenName>) -> Result<Read> {
    let layout = files.read(LAYOUT_FILE, 1 << 20)?.unwrap_or_default();
    let bad_layout = |m: String| Error::Invalid {
        message: m,
        path: Some(files.display(LAYOUT_FILE)),
    };
    let layout: LayoutFile = serde_json::from_slice(&layout)
        .map_err(|e| bad_layout(format!("not an OCI layout file: {e}")))?;
    if layout.image_layout_version != LAYOUT_VERSION {
        return Err(bad_layout(format!(
            "unsupported imageLayoutVersion `{}` (expected {LAYOUT_VERSION})",
            layout.image_layout_version
        )));
    }
    let index_path = files.display(INDEX_FILE);
    let index = files
        .read(INDEX_FILE, MAX_INDEX)?
        .ok_or_else(|| Error::Invalid {
            message: "an OCI layout needs an index.json".into(),
            path: Some(index_path.clone()),
        })?;
    let index: IndexFile = serde_json::from_slice(&index).map_err(|e| Error::Invalid {
        message: format!("not an image index: {e}"),
        path: Some(index_path.clone()),
    })?;
    let mut notes = Vec::new();
    let mut wanted = Vec::new();
    for (i, d) in index.manifests.iter().enumerate() {
        if ManifestKind::from_media_type(&d.media_type).is_none() {
            notes.push(format!(
                "{}: entry {} is a `{}`, not a manifest; left out",
                index_path.display(),
                i + 1,
                d.media_type
            ));
            continue;
        }
        let (repo, tag) = name(d, given).map_err(|message| Error::Invalid {
            message: format!("index.json entry {}: {message}", i + 1),
            path: Some(index_path.clone()),
        })?;
        wanted.push((d, repo, tag));
    }
    let images = wanted
        .par_iter()
        .map(|(d, repo, tag)| {
            let rel = blob_path(&d.digest);
            let name = match tag {
                Some(t) => format!("{repo}:{t}"),
                None => format!("{repo}@{}", d.digest),
            };
            let w = read_manifest(files, &rel, &d.digest, d.size)
                .and_then(|bytes| walk(files, &PATHS, &d.digest, &rel, &bytes))
                .map_err(|e| e.in_image(name))?;
            Ok(w.named(
                repo.clone(),
                tag.clone(),
                d.digest.clone(),
                files.origin.clone(),
            ))
        })
        .collect::<Result<_>>()?;
    Ok(Read { images, notes })
}

/// The repository and tag an index entry goes under.
fn name(
    d: &Descriptor,
    given: Option<&GivenName>,
) -> std::result::Result<(String, Option<String>), String> {
    let ref_name = d.annotations.get(REF_NAME);
    if let Some(full) = d.annotations.get(IMAGE_NAME) {
        let r = ImageRef::parse(full).map_err(|e| format!("{IMAGE_NAME}: {e}"))?;
        let repo = r.without_host().to_string();
        let tag = r
            .tag
            .or_else(|| ref_name.filter(|t| paths::is_valid_tag(t)).cloned());
        return Ok((repo, tag));
    }
    match (ref_name, given) {
        (Some(t), Some(g)) if paths::is_valid_tag(t) => Ok((g.repo.clone(), Some(t.clone()))),
        (Some(t), None) if paths::is_valid_tag(t) => Err(format!(
            "its tag `{t}` names no repository (no {IMAGE_NAME}); give --repo NAME"
        )),
        (Some(t), _) => match ImageRef::parse(t) {
            Ok(r) if r.tag.is_some() => Ok((r.without_host().to_string(), r.tag)),
            Ok(_) | Err(_) => Err(format!(
                "`{t}` ({REF_NAME}) is neither a tag nor a name:tag"
            )),
        },
        (None, Some(g)) => Ok((g.repo.clone(), g.tag.clone())),
        (None, None) => Err(format!(
            "it has no {REF_NAME} or {IMAGE_NAME}; give --repo NAME[:TAG]"
        )),
    }
}
