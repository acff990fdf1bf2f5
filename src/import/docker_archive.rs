//! Reading a `docker save` archive: `manifest.json` lists each image's
//! config, tags (`RepoTags`) and layer files.
//!
//! The registry needs a manifest, which the archive has not: one is built,
//! a Docker schema2 manifest of the config and the layers as they are in
//! the archive (an uncompressed layer keeps the uncompressed layer media
//! type, a gzip one the gzip type), serialized exactly as containerd's
//! `ctr images import` builds it, so both give the same digest. The config
//! is stored as it is, so the image ID does not change. A zstd layer is
//! refused (Docker schema2 has no media type for it).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::compress::Compression;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::import::files::{Files, Local};
use crate::import::{Found, GivenName, Item};
use crate::layout::docker_archive::MANIFEST_FILE;
use crate::media::{self, ManifestKind};
use crate::plan::Source;
use crate::reference::ImageRef;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

#[derive(Deserialize)]
struct Config {
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<Digest>,
}

/// A descriptor as containerd serializes it: mediaType, digest, size.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor<'a> {
    media_type: &'static str,
    digest: &'a Digest,
    size: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Schema2<'a> {
    schema_version: u32,
    media_type: &'static str,
    config: Descriptor<'a>,
    layers: Vec<Descriptor<'a>>,
}

/// Reads every image of the archive, one per tag.
pub fn read(files: &Files, given: Option<&GivenName>) -> Result<Vec<Found>> {
    let list_path = files.display(MANIFEST_FILE);
    let bytes = files
        .read(MANIFEST_FILE, 64 << 20)?
        .ok_or_else(|| Error::Invalid {
            message: "a docker archive needs a manifest.json".into(),
            path: Some(list_path.clone()),
        })?;
    let entries: Vec<Entry> = serde_json::from_slice(&bytes).map_err(|e| Error::Invalid {
        message: format!("not a docker save manifest.json: {e}"),
        path: Some(list_path.clone()),
    })?;
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let bad = |message: String| Error::Invalid {
            message: format!("manifest.json entry {}: {message}", i + 1),
            path: Some(list_path.clone()),
        };
        let names: Vec<(String, Option<String>)> = match (&e.repo_tags, given) {
            (Some(tags), _) if !tags.is_empty() => tags
                .iter()
                .map(|t| {
                    let r = ImageRef::parse(t).map_err(|err| bad(err.to_string()))?;
                    let repo = r.without_host().to_string();
                    Ok((repo, Some(r.tag.unwrap_or_else(|| "latest".into()))))
                })
                .collect::<Result<_>>()?,
            (_, Some(g)) => vec![(g.repo.clone(), g.tag.clone())],
            (_, None) => return Err(bad("it has no RepoTags; give --repo NAME[:TAG]".into())),
        };
        let (manifest, blobs) = image(files, e, i).map_err(|err| match &names[0] {
            (repo, Some(tag)) => err.in_image(format!("{repo}:{tag}")),
            (repo, None) => err.in_image(repo),
        })?;
        let digest = Digest::sha256_of(&manifest);
        let item = Item {
            digest: digest.clone(),
            size: manifest.len() as u64,
            source: Source::Bytes(manifest),
        };
        for (repo, tag) in names {
            out.push(Found {
                repo,
                tag,
                digest: digest.clone(),
                kind: ManifestKind::DockerManifest,
                manifests: vec![item.clone()],
                blobs: blobs.clone(),
                missing_children: Vec::new(),
                source: files.origin.clone(),
            });
        }
    }
    Ok(out)
}

/// The manifest built for one entry, and its config and layers.
fn image(files: &Files, e: &Entry, i: usize) -> Result<(Arc<[u8]>, Vec<Item>)> {
    let absent = |rel: &str, what: String| Error::Invalid {
        message: format!(
            "{what} that manifest.json (entry {}) lists is not in the archive",
            i + 1
        ),
        path: Some(files.display(rel)),
    };
    let config = files
        .file(&e.config)?
        .ok_or_else(|| absent(&e.config, "the config".into()))?;
    let config_bytes = files.read(&e.config, 16 << 20)?.unwrap_or_default();
    let parsed: Config = serde_json::from_slice(&config_bytes).map_err(|err| Error::Invalid {
        message: format!("not an image config (with rootfs.diff_ids): {err}"),
        path: Some(files.display(&e.config)),
    })?;
    let diff_ids = parsed.rootfs.diff_ids;
    if diff_ids.len() != e.layers.len() {
        return Err(Error::Invalid {
            message: format!(
                "manifest.json (entry {}) lists {} layers but the config has {} diff_ids",
                i + 1,
                e.layers.len(),
                diff_ids.len()
            ),
            path: Some(files.display(&e.config)),
        });
    }
    let n = e.layers.len();
    let mut layers: Vec<(Local, &'static str)> = Vec::new();
    for (k, rel) in e.layers.iter().enumerate() {
        let what = format!("layer {} of {n}", k + 1);
        let layer = files.file(rel)?.ok_or_else(|| absent(rel, what.clone()))?;
        let media_type = match sniff(&layer)? {
            Compression::None if layer.digest != diff_ids[k] => {
                return Err(Error::DigestMismatch {
                    path: files.display(rel),
                    expected: diff_ids[k].clone(),
                    actual: layer.digest,
                })
            }
            Compression::None => media::DOCKER_LAYER_TAR,
            Compression::Gzip => media::DOCKER_LAYER_GZIP,
            Compression::Zstd => {
                return Err(Error::Invalid {
                    message: format!(
                    "{what} is zstd-compressed, which a Docker schema2 manifest cannot describe"
                ),
                    path: Some(files.display(rel)),
                })
            }
        };
        layers.push((layer, media_type));
    }
    let manifest = Schema2 {
        schema_version: 2,
        media_type: media::DOCKER_MANIFEST,
        config: Descriptor {
            media_type: media::DOCKER_CONFIG,
            digest: &config.digest,
            size: config.size,
        },
        layers: layers
            .iter()
            .map(|(l, mt)| Descriptor {
                media_type: mt,
                digest: &l.digest,
                size: l.size,
            })
            .collect(),
    };
    let bytes: Arc<[u8]> = serde_json::to_vec(&manifest).expect("serializable").into();
    let mut blobs = vec![item(&config)];
    for (l, _) in &layers {
        if !blobs.iter().any(|b| b.digest == l.digest) {
            blobs.push(item(l));
        }
    }
    Ok((bytes, blobs))
}

fn item(l: &Local) -> Item {
    Item {
        digest: l.digest.clone(),
        size: l.size,
        source: Source::File {
            path: l.path.clone(),
            digest: l.digest.clone(),
        },
    }
}

fn sniff(l: &Local) -> Result<Compression> {
    use std::io::Read;
    let mut head = [0u8; 4];
    let mut f = std::fs::File::open(&l.path).map_err(|e| Error::io("open", &l.path, e))?;
    let n = f
        .read(&mut head)
        .map_err(|e| Error::io("read", &l.path, e))?;
    Ok(Compression::sniff(&head[..n]))
}
