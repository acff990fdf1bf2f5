//! Manifests parsed from their exact bytes.
//!
//! Every kind the registry stores answers the same questions: which manifests
//! it refers to (`children`), which blobs it needs (`config` and `layers`),
//! which manifest it is about (`subject`). The bytes are never re-serialized;
//! callers keep them beside the parse.

use serde::Deserialize;
use std::collections::BTreeMap;

use crate::digest::Digest;
use crate::media::{self, ManifestKind, MediaType};
use crate::platform::Platform;

/// A content descriptor as found in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: MediaType,
    pub digest: Digest,
    /// Absent only for schema1 `fsLayers`, which carry no size.
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub urls: Vec<String>,
    /// Boxed: most descriptors have none, and a catalog holds many.
    #[serde(default)]
    pub platform: Option<Box<Platform>>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// A non-distributable layer, fetched by clients from its `urls`; the
    /// registry does not store it.
    pub fn is_foreign(&self) -> bool {
        media::is_foreign_layer(&self.media_type) || !self.urls.is_empty()
    }
}

/// A parsed manifest of any kind the registry stores.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub kind: ManifestKind,
    /// The image config (absent for schema1 and for indexes).
    pub config: Option<Descriptor>,
    /// Layers (or an artifact's blobs), in manifest order. For schema1 these
    /// come from `fsLayers[].blobSum`, deduplicated, without sizes.
    pub layers: Vec<Descriptor>,
    /// The manifests an index or manifest list refers to.
    pub children: Vec<Descriptor>,
    /// The manifest this one is about (OCI 1.1 referrers: signatures, SBOMs).
    /// Boxed: most manifests have none, and a catalog holds every one.
    pub subject: Option<Box<Descriptor>>,
    pub artifact_type: Option<String>,
    pub annotations: BTreeMap<String, String>,
}

/// Why bytes are not a manifest we can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("not a manifest: {0}")]
    Invalid(String),
    #[error("unsupported manifest media type `{0}`")]
    Unsupported(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    schema_version: Option<i64>,
    #[serde(default)]
    media_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Box<Descriptor>>,
    artifact_type: Option<String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    fs_layers: Option<Vec<FsLayer>>,
    signatures: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FsLayer {
    blob_sum: Digest,
}

impl Manifest {
    /// Parses the exact bytes of a manifest blob.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let raw: Raw = serde_json::from_slice(bytes).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => ManifestError::Invalid(e.to_string()),
            _ => ManifestError::NotJson(e.to_string()),
        })?;
        let kind = kind_of(&raw)?;
        let mut m = Manifest {
            kind,
            config: None,
            layers: Vec::new(),
            children: Vec::new(),
            subject: raw.subject,
            artifact_type: raw.artifact_type,
            annotations: raw.annotations,
        };
        match kind {
            ManifestKind::DockerSchema1 { .. } => {
                let fs_layers = raw
                    .fs_layers
                    .ok_or_else(|| ManifestError::Invalid("schema1 without fsLayers".into()))?;
                let mut seen = std::collections::HashSet::new();
                // fsLayers list the newest layer first; keep base-first order.
                for l in fs_layers.into_iter().rev() {
                    if seen.insert(l.blob_sum.clone()) {
                        m.layers.push(Descriptor {
                            media_type: media::DOCKER_LAYER_GZIP.into(),
                            digest: l.blob_sum,
                            size: None,
                            urls: vec![],
                            platform: None,
                            annotations: BTreeMap::new(),
                            artifact_type: None,
                        });
                    }
                }
            }
            ManifestKind::DockerManifestList | ManifestKind::OciIndex => {
                m.children = raw
                    .manifests
                    .ok_or_else(|| ManifestError::Invalid("index without manifests".into()))?;
            }
            ManifestKind::DockerManifest | ManifestKind::OciManifest => {
                m.config = Some(raw.config.ok_or_else(|| {
                    ManifestError::Invalid("image manifest without config".into())
                })?);
                m.layers = raw.layers.unwrap_or_default();
            }
        }
        // Parsing grows these by doubling; a catalog keeps every manifest.
        m.layers.shrink_to_fit();
        m.children.shrink_to_fit();
        Ok(m)
    }

    /// Blobs this manifest needs stored (config and non-foreign layers), in
    /// manifest order, without repeats.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        let mut seen = std::collections::HashSet::new();
        self.config
            .iter()
            .chain(self.layers.iter())
            .filter(move |d| seen.insert(&d.digest))
    }

    /// The media type the registry serves this manifest with.
    pub fn media_type(&self) -> &'static str {
        self.kind.media_type()
    }
}

fn kind_of(raw: &Raw) -> Result<ManifestKind, ManifestError> {
    match raw.schema_version {
        Some(1) => {
            return Ok(ManifestKind::DockerSchema1 {
                signed: raw.signatures.is_some(),
            })
        }
        Some(2) => {}
        Some(v) => return Err(ManifestError::Invalid(format!("schemaVersion {v}"))),
        None => return Err(ManifestError::Invalid("no schemaVersion".into())),
    }
    match raw.media_type.as_deref() {
        Some(mt) => {
            ManifestKind::from_media_type(mt).ok_or_else(|| ManifestError::Unsupported(mt.into()))
        }
        // OCI made mediaType optional: tell an index from a manifest by shape.
        None if raw.manifests.is_some() => Ok(ManifestKind::OciIndex),
        None if raw.config.is_some() => Ok(ManifestKind::OciManifest),
        None => Err(ManifestError::Invalid(
            "neither manifests nor config".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        Digest::sha256_of(&[n])
    }

    #[test]
    fn reads_docker_manifest_and_skips_foreign_in_blobs_owner() {
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":7}},
            "layers":[{{"mediaType":"{}","digest":"{}","size":9}},
                      {{"mediaType":"{}","digest":"{}","size":3,"urls":["https://x/y"]}}]}}"#,
            media::DOCKER_MANIFEST,
            media::DOCKER_CONFIG,
            d(1),
            media::DOCKER_LAYER_GZIP,
            d(2),
            media::DOCKER_FOREIGN_LAYER,
            d(3)
        );
        let m = Manifest::parse(json.as_bytes()).unwrap();
        assert_eq!(m.kind, ManifestKind::DockerManifest);
        assert_eq!(m.config.as_ref().unwrap().digest, d(1));
        assert_eq!(m.layers.len(), 2);
        assert!(m.layers[1].is_foreign());
        assert!(!m.layers[0].is_foreign());
    }

    #[test]
    fn reads_schema1_from_fslayers_not_from_history() {
        let json = format!(
            r#"{{"schemaVersion":1,"name":"a","tag":"t","architecture":"amd64",
            "fsLayers":[{{"blobSum":"{}"}},{{"blobSum":"{}"}},{{"blobSum":"{}"}}],
            "history":[{{"v1Compatibility":"{{\"id\":\"{}\"}}"}}],
            "signatures":[]}}"#,
            d(2),
            d(1),
            d(2),
            "ab".repeat(32)
        );
        let m = Manifest::parse(json.as_bytes()).unwrap();
        assert_eq!(m.kind, ManifestKind::DockerSchema1 { signed: true });
        let blobs: Vec<_> = m.blobs().map(|b| b.digest.clone()).collect();
        assert_eq!(blobs, vec![d(2), d(1)]);
    }

    #[test]
    fn reads_index_and_artifact_with_subject() {
        let idx = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{}","size":5,
            "platform":{{"architecture":"arm","os":"linux","variant":"v7"}}}}]}}"#,
            media::OCI_MANIFEST,
            d(4)
        );
        let m = Manifest::parse(idx.as_bytes()).unwrap();
        assert_eq!(m.kind, ManifestKind::OciIndex);
        assert_eq!(
            m.children[0].platform.as_ref().unwrap().to_string(),
            "linux/arm/v7"
        );

        let art = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","artifactType":"application/x.sbom",
            "config":{{"mediaType":"{}","digest":"{}","size":2}},"layers":[],
            "subject":{{"mediaType":"{}","digest":"{}","size":5}}}}"#,
            media::OCI_MANIFEST,
            media::OCI_EMPTY,
            d(5),
            media::OCI_MANIFEST,
            d(4)
        );
        let m = Manifest::parse(art.as_bytes()).unwrap();
        assert_eq!(m.subject.unwrap().digest, d(4));
        assert_eq!(m.artifact_type.as_deref(), Some("application/x.sbom"));
    }

    #[test]
    fn refuses_what_is_not_a_manifest() {
        assert!(matches!(
            Manifest::parse(b"\x00\x01"),
            Err(ManifestError::NotJson(_))
        ));
        assert!(matches!(
            Manifest::parse(b"[1]"),
            Err(ManifestError::Invalid(_))
        ));
        assert!(matches!(
            Manifest::parse(br#"{"schemaVersion":2,"mediaType":"text/plain"}"#),
            Err(ManifestError::Unsupported(_))
        ));
        assert!(matches!(
            Manifest::parse(
                br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#
            ),
            Err(ManifestError::Invalid(_))
        ));
    }
}
