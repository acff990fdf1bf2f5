//! `inspect`: offline `skopeo inspect` of one image.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::media::ManifestKind;
use crate::paths::Spec;
use crate::platform::Platform;
use crate::reference::ImageRef;
use crate::selection::{self, Request};
use crate::store::Store;

/// What `skopeo inspect` prints, field for field.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Inspection {
    pub name: String,
    pub digest: Digest,
    pub repo_tags: Vec<String>,
    pub created: Option<String>,
    pub docker_version: String,
    pub labels: Option<BTreeMap<String, String>>,
    pub architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub os: String,
    pub layers: Vec<Digest>,
    pub layers_data: Vec<LayerData>,
    pub env: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LayerData {
    #[serde(rename = "MIMEType")]
    pub mime_type: String,
    pub digest: Digest,
    pub size: i64,
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The parts of one image that `inspect` can print.
pub struct Target {
    pub store: Store,
    pub image: selection::Image,
    /// The manifest chosen for the platform (the image's own when single).
    pub manifest_digest: Digest,
    pub manifest: Manifest,
}

/// Finds the image and, for an index, the manifest for `platform` (default:
/// this machine's).
pub fn find(root: &Path, reference: &str, platform: Option<&Platform>) -> Result<Target> {
    let r = ImageRef::parse(reference)?;
    let mut r2 = r.clone();
    if r2.tag.is_none() && r2.digest.is_none() {
        r2.tag = Some("latest".into());
    }
    let req = Request {
        refs: vec![r2],
        ..Request::default()
    };
    // Only the image's repository is walked, not the whole tree.
    let (store, mut sel) = crate::command::open_and_select(root, &req)?;
    let image = sel.images.remove(0);
    let top = &image.manifests[0];
    let (manifest_digest, manifest) = if top.node.manifest.kind.is_index() {
        let want = platform.cloned().unwrap_or_else(Platform::host);
        let leaf = image
            .manifests
            .iter()
            .find(|m| {
                !m.node.manifest.kind.is_index()
                    && m.platform.as_ref().is_some_and(|p| want.selects(p))
            })
            .ok_or_else(|| {
                let have: Vec<String> = image.platforms().iter().map(|p| p.to_string()).collect();
                Error::invalid(format!(
                    "no manifest for {want} (the index has: {})",
                    have.join(", ")
                ))
                .in_image(image.name())
            })?;
        (leaf.digest.clone(), leaf.node.manifest.clone())
    } else {
        (top.digest.clone(), top.node.manifest.clone())
    };
    Ok(Target {
        store,
        image,
        manifest_digest,
        manifest,
    })
}

impl Target {
    /// The exact bytes of the chosen manifest (the top one unless a
    /// platform was asked for).
    pub fn raw_manifest(&self, top: bool) -> Result<Vec<u8>> {
        let d = if top {
            &self.image.digest
        } else {
            &self.manifest_digest
        };
        self.store.read_blob(d, "manifest")
    }

    /// The exact bytes of the config blob (schema1 has none).
    pub fn raw_config(&self) -> Result<Vec<u8>> {
        let c = self.manifest.config.as_ref().ok_or_else(|| {
            Error::invalid("a schema1 manifest has no config blob").in_image(self.image.name())
        })?;
        self.store.read_blob(&c.digest, "config")
    }

    /// The skopeo-style summary.
    pub fn inspection(&self) -> Result<Inspection> {
        let repo = &self.image.repo;
        let mut repo_tags: Vec<String> = self
            .store
            .list(&Spec::TagsRoot(repo))?
            .into_iter()
            .filter(|e| e.is_dir)
            .map(|e| e.name)
            .collect();
        repo_tags.sort();
        let config: Value = match self.manifest.kind {
            ManifestKind::DockerSchema1 { .. } => schema1_config(&self.raw_manifest(false)?),
            _ => serde_json::from_slice(&self.raw_config()?).unwrap_or(Value::Null),
        };
        let str_at = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let inner = config
            .get("config")
            .or_else(|| config.get("container_config"))
            .cloned()
            .unwrap_or(Value::Null);
        let labels = inner
            .get("Labels")
            .and_then(|l| serde_json::from_value::<BTreeMap<String, String>>(l.clone()).ok());
        let env = inner
            .get("Env")
            .and_then(|e| serde_json::from_value::<Vec<String>>(e.clone()).ok());
        let layers: Vec<_> = self.manifest.layers.iter().collect();
        Ok(Inspection {
            name: repo.clone(),
            digest: self.image.digest.clone(),
            repo_tags,
            created: str_at(&config, "created"),
            docker_version: str_at(&config, "docker_version").unwrap_or_default(),
            labels,
            architecture: str_at(&config, "architecture").unwrap_or_default(),
            variant: str_at(&config, "variant"),
            os: str_at(&config, "os").unwrap_or_default(),
            layers: layers.iter().map(|l| l.digest.clone()).collect(),
            layers_data: layers
                .iter()
                .map(|l| LayerData {
                    mime_type: l.media_type.to_string(),
                    digest: l.digest.clone(),
                    size: l.size.map_or(-1, |s| s as i64),
                    annotations: (!l.annotations.is_empty()).then(|| l.annotations.clone()),
                })
                .collect(),
            env,
        })
    }
}

/// A schema1 manifest keeps its config as a JSON string in the first
/// `history[].v1Compatibility`.
fn schema1_config(bytes: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    v.get("history")
        .and_then(|h| h.get(0))
        .and_then(|h| h.get("v1Compatibility"))
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null)
}
