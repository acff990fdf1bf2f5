//! Docker manifests and lists rewritten with OCI media types, for readers
//! that take nothing else (skopeo 1.9's `oci:` transport, umoci).
//!
//! Only media types change: the manifest's own, its config's and its
//! layers' (`media::oci_equivalent`). Config and layer bytes stay as they
//! are, so their digests do too; the rewritten manifests are new bytes with
//! new digests. A list's children are rewritten first and the list then
//! refers to their new digests and sizes; it lists only the children the
//! selection kept. A referrer whose `subject` is a manifest rewritten here
//! names the new digest, size and media type (so its own digest changes
//! too): referrers are rewritten after what they refer to
//! ([`Rewriter::rewrite_all`]). Other OCI manifests are never touched, and
//! an OCI index only when one of its children changed. The JSON keeps the
//! source's key order and is written compact, so the same input always
//! gives the same bytes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::media::{self, ManifestKind};
use crate::selection::Image;
use crate::store::Store;

/// A manifest with OCI media types.
#[derive(Debug, Clone)]
pub struct Rewritten {
    pub digest: Digest,
    pub media_type: &'static str,
    pub bytes: Arc<[u8]>,
}

/// Rewrites manifests, each once however many images share it.
pub struct Rewriter<'a> {
    store: &'a Store,
    done: HashMap<Digest, Option<Rewritten>>,
}

impl<'a> Rewriter<'a> {
    pub fn new(store: &'a Store) -> Rewriter<'a> {
        Rewriter {
            store,
            done: HashMap::new(),
        }
    }

    /// Rewrites every manifest of every image, referrers after the images
    /// holding their subjects, so that a referrer can name its subject's
    /// new digest; [`Rewriter::rewrite`] then answers from what was done.
    pub fn rewrite_all(&mut self, images: &[Image]) -> Result<()> {
        let holder: HashMap<&Digest, usize> = images
            .iter()
            .enumerate()
            .flat_map(|(i, img)| img.manifests.iter().map(move |m| (&m.digest, i)))
            .collect();
        let needs: Vec<Vec<usize>> = images
            .iter()
            .enumerate()
            .map(|(i, img)| {
                img.manifests
                    .iter()
                    .filter_map(|m| m.node.manifest.subject.as_ref())
                    .filter_map(|s| holder.get(&s.digest).copied())
                    .filter(|&j| j != i)
                    .collect()
            })
            .collect();
        let mut done = vec![false; images.len()];
        let mut left = images.len();
        while left > 0 {
            let ready: Vec<usize> = (0..images.len())
                .filter(|&i| !done[i] && needs[i].iter().all(|&j| done[j]))
                .collect();
            // A cycle of subjects cannot be (digests would have to agree);
            // should one appear, the rest goes in selection order.
            let ready = if ready.is_empty() {
                (0..images.len()).filter(|&i| !done[i]).collect()
            } else {
                ready
            };
            for i in ready {
                let img = &images[i];
                for m in &img.manifests {
                    self.rewrite(img, &m.digest)
                        .map_err(|e| e.in_image(img.name()))?;
                }
                done[i] = true;
                left -= 1;
            }
        }
        Ok(())
    }

    /// The manifest `digest` of `img` with OCI media types, or `None` when
    /// it needs no change.
    pub fn rewrite(&mut self, img: &Image, digest: &Digest) -> Result<Option<Rewritten>> {
        if let Some(r) = self.done.get(digest) {
            return Ok(r.clone());
        }
        let item = img
            .manifests
            .iter()
            .find(|m| &m.digest == digest)
            .ok_or_else(|| Error::invalid(format!("manifest {digest} is not in the image")))?;
        let kind = item.node.manifest.kind;
        // A subject rewritten earlier in this run (see `rewrite_all`).
        let subject = item
            .node
            .manifest
            .subject
            .as_ref()
            .and_then(|s| self.done.get(&s.digest).cloned().flatten());
        let out = match kind {
            ManifestKind::DockerSchema1 { .. } => {
                return Err(Error::invalid(
                    "a schema1 manifest cannot be given OCI media types",
                ))
            }
            ManifestKind::OciManifest => match &subject {
                Some(s) => {
                    let mut doc = self.read(digest)?;
                    point_at(&mut doc, s);
                    Some(finish(&doc, media::OCI_MANIFEST))
                }
                None => None,
            },
            ManifestKind::DockerManifest => {
                let mut doc = self.read(digest)?;
                doc["mediaType"] = Value::from(media::OCI_MANIFEST);
                if let Some(config) = doc.get_mut("config") {
                    retype(config);
                }
                if let Some(Value::Array(layers)) = doc.get_mut("layers") {
                    layers.iter_mut().for_each(retype);
                }
                if let Some(s) = &subject {
                    point_at(&mut doc, s);
                }
                Some(finish(&doc, media::OCI_MANIFEST))
            }
            ManifestKind::DockerManifestList | ManifestKind::OciIndex => {
                let kept: HashSet<&Digest> = img.manifests.iter().map(|m| &m.digest).collect();
                let mut children = HashMap::new();
                for c in &item.node.manifest.children {
                    if kept.contains(&c.digest) {
                        children.insert(c.digest.clone(), self.rewrite(img, &c.digest)?);
                    }
                }
                let changed = kind == ManifestKind::DockerManifestList
                    || children.values().any(Option::is_some)
                    || subject.is_some();
                if changed {
                    let mut doc = self.read(digest)?;
                    doc["mediaType"] = Value::from(media::OCI_INDEX);
                    if let Some(s) = &subject {
                        point_at(&mut doc, s);
                    }
                    if let Some(Value::Array(entries)) = doc.get_mut("manifests") {
                        entries.retain_mut(|e| {
                            let d = e.get("digest").and_then(Value::as_str);
                            match d.and_then(|d| Digest::parse(d).ok()) {
                                Some(d) => match children.get(&d) {
                                    Some(Some(r)) => {
                                        e["mediaType"] = Value::from(r.media_type);
                                        e["digest"] = Value::from(r.digest.as_str());
                                        e["size"] = Value::from(r.bytes.len() as u64);
                                        true
                                    }
                                    Some(None) => true,
                                    None => false,
                                },
                                None => false,
                            }
                        });
                    }
                    Some(finish(&doc, media::OCI_INDEX))
                } else {
                    None
                }
            }
        };
        self.done.insert(digest.clone(), out.clone());
        Ok(out)
    }

    fn read(&self, digest: &Digest) -> Result<Value> {
        let bytes = self.store.read_blob(digest, "manifest")?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::invalid(format!("manifest {digest} is not JSON: {e}")))
    }

    /// Every rewritten manifest: old digest → new.
    pub fn into_map(self) -> BTreeMap<Digest, Digest> {
        self.done
            .into_iter()
            .filter_map(|(old, r)| r.map(|r| (old, r.digest)))
            .collect()
    }
}

/// Points a manifest's `subject` at its rewritten subject.
fn point_at(doc: &mut Value, subject: &Rewritten) {
    if let Some(s) = doc.get_mut("subject") {
        s["mediaType"] = Value::from(subject.media_type);
        s["digest"] = Value::from(subject.digest.as_str());
        s["size"] = Value::from(subject.bytes.len() as u64);
    }
}

/// Gives a descriptor the OCI equivalent of its Docker media type.
fn retype(descriptor: &mut Value) {
    let new = descriptor
        .get("mediaType")
        .and_then(Value::as_str)
        .and_then(media::oci_equivalent);
    if let Some(mt) = new {
        descriptor["mediaType"] = Value::from(mt);
    }
}

fn finish(doc: &Value, media_type: &'static str) -> Rewritten {
    let bytes: Arc<[u8]> = serde_json::to_vec(doc).expect("serializable").into();
    Rewritten {
        digest: Digest::sha256_of(&bytes),
        media_type,
        bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retypes_docker_descriptors_and_keeps_others() {
        let mut v: Value = serde_json::from_str(&format!(
            r#"{{"mediaType":"{}","size":3,"digest":"x"}}"#,
            media::DOCKER_LAYER_GZIP
        ))
        .unwrap();
        retype(&mut v);
        assert_eq!(v["mediaType"], media::OCI_LAYER_GZIP);
        // Key order is kept.
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            format!(
                r#"{{"mediaType":"{}","size":3,"digest":"x"}}"#,
                media::OCI_LAYER_GZIP
            )
        );
        let mut other: Value =
            serde_json::from_str(r#"{"mediaType":"application/x.custom"}"#).unwrap();
        retype(&mut other);
        assert_eq!(other["mediaType"], "application/x.custom");
    }
}
