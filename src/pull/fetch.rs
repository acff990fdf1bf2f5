//! An image's manifest graph read from a registry: each manifest fetched
//! once per run by digest, its exact bytes checked against it, then closed
//! by [`graph::walk`] into a [`crate::selection::Image`] as `select` closes
//! one out of a tree (top
//! first, children depth first, `--platform` filtering an index's
//! children), so that the registry layout writes the same files for both.
//!
//! Schema1 manifests are served signed (distribution signs them again on
//! every GET), and their digest is that of the JWS payload, which is what
//! the registry stores: the payload is what is kept.

use std::collections::HashSet;
use std::sync::Arc;

use base64::Engine as _;
use rayon::prelude::*;

use crate::catalog::Node;
use crate::claims::Claims;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::graph;
use crate::manifest::{Descriptor, Manifest};
use crate::platform::Platform;
use crate::remote::api;
use crate::remote::auth::Scope;
use crate::remote::client::Client;
use crate::selection::{keeps, BlobItem, Image, IndexMarks, ManifestItem};
use crate::store::Store;

/// A manifest as fetched: the bytes stored for it, parsed.
#[derive(Debug)]
pub struct Fetched {
    pub digest: Digest,
    pub bytes: Arc<[u8]>,
    pub node: Arc<Node>,
}

/// Every manifest fetched in a run, by digest.
#[derive(Default)]
pub struct Manifests {
    cache: Claims<Digest, Option<Arc<Fetched>>>,
}

impl Manifests {
    /// The manifest `digest` of `repo` (`what` names it in errors).
    pub fn get(
        &self,
        client: &Client,
        repo: &str,
        digest: &Digest,
        what: &str,
    ) -> Result<Arc<Fetched>> {
        let claim = self.cache.of(digest);
        let mut held = claim.lock().expect("not poisoned");
        if let Some(f) = &*held {
            return Ok(f.clone());
        }
        let scope = Scope::pull(repo);
        let got = client.retrying(|| api::get_manifest(client, repo, digest.as_str(), &scope))?;
        let url = client.url(&format!("/v2/{repo}/manifests/{digest}"));
        let Some(got) = got else {
            return Err(Error::MissingBlob {
                digest: digest.clone(),
                what: what.into(),
                path: url.into(),
            });
        };
        let f = Arc::new(checked(got, Some(digest))?);
        *held = Some(f.clone());
        Ok(f)
    }

    /// Remembers a manifest fetched by tag.
    pub fn put(&self, f: Arc<Fetched>) {
        let claim = self.cache.of(&f.digest);
        *claim.lock().expect("not poisoned") = Some(f);
    }
}

/// Checks a manifest as served: its bytes (for schema1, its payload) must
/// have `want` (or, without one, the `Docker-Content-Digest` it came with)
/// and parse.
pub fn checked(got: api::Fetched, want: Option<&Digest>) -> Result<Fetched> {
    let bytes = if is_signed_schema1(&got) {
        jws_payload(&got.bytes).map_err(|reason| Error::BadManifest {
            digest: want
                .or(got.digest.as_ref())
                .cloned()
                .unwrap_or_else(|| Digest::sha256_of(&got.bytes)),
            path: got.url.clone().into(),
            reason: crate::manifest::ManifestError::Invalid(reason),
        })?
    } else {
        got.bytes.clone()
    };
    let actual = Digest::sha256_of(&bytes);
    let expected = want
        .or(got.digest.as_ref())
        .cloned()
        .unwrap_or_else(|| actual.clone());
    if expected.algorithm() == actual.algorithm() && expected != actual {
        return Err(Error::DigestMismatch {
            path: got.url.into(),
            expected,
            actual,
        });
    }
    if let (Some(w), Some(said)) = (want, &got.digest) {
        if w != said {
            return Err(Error::invalid(format!(
                "{} answered a manifest it calls {said}, not {w}",
                got.url
            )));
        }
    }
    let manifest = Manifest::parse(&bytes).map_err(|reason| Error::BadManifest {
        digest: expected.clone(),
        path: got.url.clone().into(),
        reason,
    })?;
    Ok(Fetched {
        digest: expected,
        node: Arc::new(Node {
            manifest,
            size: bytes.len() as u64,
        }),
        bytes: bytes.into(),
    })
}

fn is_signed_schema1(got: &api::Fetched) -> bool {
    got.media_type.as_deref() == Some(crate::media::DOCKER_SCHEMA1_SIGNED)
        || (got.bytes.windows(12).any(|w| w == b"\"signatures\"")
            && got.bytes.windows(15).any(|w| w == b"\"schemaVersion\""))
            && serde_json::from_slice::<serde_json::Value>(&got.bytes)
                .ok()
                .is_some_and(|v| v["schemaVersion"] == 1 && v["signatures"].is_array())
}

/// The payload of a libtrust JWS (a signed schema1 manifest): the bytes
/// before `formatLength`, then the base64url `formatTail`, from the first
/// signature's protected header.
pub fn jws_payload(bytes: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let doc: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let protected = doc["signatures"][0]["protected"]
        .as_str()
        .ok_or("a signed schema1 manifest without a protected header")?;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64
        .decode(protected.trim_end_matches('='))
        .map_err(|e| format!("its protected header is not base64url: {e}"))?;
    let header: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| format!("its protected header is not JSON: {e}"))?;
    let len = header["formatLength"]
        .as_u64()
        .ok_or("its protected header has no formatLength")? as usize;
    let tail = b64
        .decode(
            header["formatTail"]
                .as_str()
                .ok_or("its protected header has no formatTail")?
                .trim_end_matches('='),
        )
        .map_err(|e| format!("its formatTail is not base64url: {e}"))?;
    if len > bytes.len() {
        return Err("its formatLength is past its end".into());
    }
    let mut out = bytes[..len].to_vec();
    out.extend_from_slice(&tail);
    Ok(out)
}

/// What closing an image needs.
pub struct Closer<'a> {
    pub client: &'a Client,
    /// The repository on the registry.
    pub repo: &'a str,
    pub manifests: &'a Manifests,
    pub platforms: &'a [Platform],
    /// ROOT: sizes of schema1 layers it has already.
    pub dst: &'a Store,
}

impl Closer<'_> {
    /// The image whose top manifest is `top`, stored as `name[:tag]`, closed
    /// over its kept children, configs and layers by the one graph walk.
    pub fn close(&self, top: &Arc<Fetched>, name: &str, tag: Option<String>) -> Result<Image> {
        let mut img = Image {
            repo: name.to_string(),
            tag,
            digest: top.digest.clone(),
            manifests: Vec::new(),
            blobs: Vec::new(),
            foreign: Vec::new(),
        };
        let mut walk = Walk {
            closer: self,
            img: &mut img,
            seen_blobs: HashSet::new(),
            marks: IndexMarks::default(),
        };
        let kept = graph::walk(&top.digest, &mut walk)?;
        if kept == 0 {
            let has: Vec<String> = top
                .node
                .manifest
                .children
                .iter()
                .map(|c| c.platform.as_ref().map_or("?".into(), |p| p.to_string()))
                .collect();
            return Err(Error::invalid(format!(
                "no manifest for {} (the index has: {})",
                self.platforms
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                has.join(", ")
            )));
        }
        Ok(img)
    }

    /// The size of a blob whose descriptor has none (schema1 layers): from
    /// ROOT when it has it, else a HEAD.
    fn size_of(&self, d: &Digest) -> Result<u64> {
        if let Some(s) = self.dst.blob_size(d)? {
            return Ok(s);
        }
        let scope = Scope::pull(self.repo);
        let size = self
            .client
            .retrying(|| api::blob_size(self.client, self.repo, d, &scope))?;
        size.ok_or_else(|| Error::MissingBlob {
            digest: d.clone(),
            what: "layer".into(),
            path: self
                .client
                .url(&format!("/v2/{}/blobs/{d}", self.repo))
                .into(),
        })
    }
}

/// The walk of one image's graph, fetching manifests as it reaches them
/// (an index's kept children in parallel, before it walks into them).
struct Walk<'a, 'b> {
    closer: &'a Closer<'b>,
    img: &'a mut Image,
    seen_blobs: HashSet<Digest>,
    marks: IndexMarks,
}

impl graph::Visitor for Walk<'_, '_> {
    fn manifest(&mut self, step: &graph::Step) -> Result<Option<Arc<Node>>> {
        let c = self.closer;
        let f = c.manifests.get(c.client, c.repo, step.digest, &step.what)?;
        let m = &f.node.manifest;
        if m.kind.is_index() {
            self.marks.mark(self.img, step.digest);
            m.children
                .par_iter()
                .filter(|ch| keeps(c.platforms, ch))
                .try_for_each(|ch| {
                    c.manifests
                        .get(c.client, c.repo, &ch.digest, "child manifest")
                        .map(drop)
                })?;
        }
        self.img.manifests.push(ManifestItem {
            digest: step.digest.clone(),
            platform: step.entry.and_then(|e| e.platform.clone()),
            node: f.node.clone(),
        });
        Ok(Some(f.node.clone()))
    }

    fn follow(&mut self, _parent: &graph::Step, child: &Descriptor) -> bool {
        keeps(self.closer.platforms, child)
    }

    fn blob(&mut self, _step: &graph::Step, blob: &graph::BlobRef) -> Result<()> {
        let b = blob.descriptor;
        if !self.seen_blobs.insert(b.digest.clone()) {
            return Ok(());
        }
        if b.is_foreign() {
            self.img.foreign.push(b.digest.clone());
            return Ok(());
        }
        let size = match b.size {
            Some(s) => s,
            None => self.closer.size_of(&b.digest)?,
        };
        self.img.blobs.push(BlobItem {
            digest: b.digest.clone(),
            stored: b.digest.clone(),
            size,
            media_type: b.media_type.clone(),
        });
        Ok(())
    }

    fn index_done(&mut self, step: &graph::Step, kept: usize) -> Result<()> {
        self.marks.index_done(self.img, step, kept);
        Ok(())
    }

    fn path(&self, digest: &Digest) -> Option<std::path::PathBuf> {
        let c = self.closer;
        Some(
            c.client
                .url(&format!("/v2/{}/manifests/{digest}", c.repo))
                .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_payload_of_a_signed_schema1_manifest() {
        let payload = b"{\n   \"schemaVersion\": 1,\n   \"name\": \"a\",\n   \"fsLayers\": []\n}";
        // libtrust cuts the payload before its closing brace and puts it
        // back as formatTail.
        let len = payload.len() - 2;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let protected = b64.encode(format!(
            r#"{{"formatLength":{len},"formatTail":"{}","time":"2020-01-01T00:00:00Z"}}"#,
            b64.encode(&payload[len..])
        ));
        let signed = format!(
            "{},\n   \"signatures\": [{{\"header\": {{}}, \"signature\": \"x\", \"protected\": \"{protected}\"}}]\n}}",
            std::str::from_utf8(&payload[..len]).unwrap()
        );
        assert_eq!(jws_payload(signed.as_bytes()).unwrap(), payload);
        let got = api::Fetched {
            url: "http://h/v2/a/manifests/1".into(),
            bytes: signed.into_bytes(),
            media_type: Some(crate::media::DOCKER_SCHEMA1_SIGNED.into()),
            digest: Some(Digest::sha256_of(payload)),
        };
        let f = checked(got, None).unwrap();
        assert_eq!(&f.bytes[..], payload);
        assert_eq!(f.digest, Digest::sha256_of(payload));
        assert!(jws_payload(b"{}").is_err());
    }

    #[test]
    fn refuses_bytes_that_are_not_their_digest() {
        let got = api::Fetched {
            url: "http://h/v2/a/manifests/x".into(),
            bytes: br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#.to_vec(),
            media_type: None,
            digest: None,
        };
        let want = Digest::sha256_of(b"other");
        let e = checked(got, Some(&want)).unwrap_err();
        assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
    }
}
