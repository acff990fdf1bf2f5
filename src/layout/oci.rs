//! The OCI image layout (image-spec `image-layout.md`), one for every
//! selected image:
//!
//! ```text
//! OUT/oci-layout               {"imageLayoutVersion":"1.0.0"}
//! OUT/index.json               one descriptor per selected tag
//! OUT/blobs/sha256/<hex>       every manifest, config and layer
//! ```
//!
//! Each `index.json` entry is the top manifest's descriptor (its exact media
//! type, digest and size) with the tag in `org.opencontainers.image.ref.name`
//! and the full name in `io.containerd.image.name`, as containerd, BuildKit
//! and Docker 25 write them: skopeo's `oci:OUT:TAG` finds an entry by the
//! first, `ctr images import` names the image by the second.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::digest::Digest;
use crate::error::Result;
use crate::layout::oci_media::Rewriter;
use crate::layout::{full_name, refuse_schema1};
use crate::media;
use crate::plan::{Phase, Plan};
use crate::selection::Selection;
use crate::store::Store;

pub const LAYOUT_FILE: &str = "oci-layout";
pub const INDEX_FILE: &str = "index.json";
pub const LAYOUT_VERSION: &str = "1.0.0";
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const IMAGE_NAME: &str = "io.containerd.image.name";

/// `blobs/<algorithm>/<hex>`: where a layout keeps a blob.
pub fn blob_path(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm().name(), d.hex())
}

/// An `index.json` descriptor.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index<'a> {
    schema_version: u32,
    media_type: &'static str,
    manifests: &'a [Entry],
}

/// What an OCI export holds.
pub struct Export {
    pub plan: Plan,
    /// The `index.json` entries, in order.
    pub entries: Vec<Entry>,
    /// With OCI media types: every rewritten manifest, old digest → new.
    pub rewritten: BTreeMap<Digest, Digest>,
}

/// What `org.opencontainers.image.ref.name` holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RefName {
    /// The tag, as containerd, BuildKit and Docker write it.
    #[default]
    Tag,
    /// The full name, `[PREFIX/]repo:tag`: unique when several
    /// repositories share a tag, so `skopeo copy oci:OUT:repo:tag` finds each.
    Name,
}

/// How to write the layout.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// Put before every repository name (`harbor.local`).
    pub prefix: Option<&'a str>,
    /// Rewrite Docker manifests and lists into OCI ones.
    pub oci_media_types: bool,
    pub ref_name: RefName,
}

/// Plans the layout of a selection.
pub fn plan(sel: &Selection, store: &Store, opts: Options) -> Result<Export> {
    let mut plan = Plan::new();
    let mut entries = Vec::new();
    for img in &sel.images {
        refuse_schema1(img)?;
    }
    let mut rewriter = opts.oci_media_types.then(|| Rewriter::new(store));
    if let Some(rw) = rewriter.as_mut() {
        rw.rewrite_all(&sel.images)?;
    }
    for img in &sel.images {
        let mut top = Entry {
            media_type: img.kind().media_type().to_string(),
            digest: img.digest.clone(),
            size: img.manifests[0].node.size,
            annotations: BTreeMap::new(),
        };
        for m in &img.manifests {
            let new = match rewriter.as_mut() {
                Some(rw) => rw
                    .rewrite(img, &m.digest)
                    .map_err(|e| e.in_image(img.name()))?,
                None => None,
            };
            match new {
                Some(r) => {
                    if m.digest == img.digest {
                        top.media_type = r.media_type.to_string();
                        top.digest = r.digest.clone();
                        top.size = r.bytes.len() as u64;
                    }
                    plan.bytes(blob_path(&r.digest), r.bytes, Phase::Content)?;
                }
                None => {
                    plan.blob(blob_path(&m.digest), &m.digest, m.node.size, Phase::Content)?;
                }
            }
        }
        for b in &img.blobs {
            plan.blob(blob_path(&b.digest), &b.stored, b.size, Phase::Content)?;
        }
        let name = full_name(opts.prefix, img);
        if let Some(tag) = &img.tag {
            let r = match opts.ref_name {
                RefName::Tag => tag.clone(),
                RefName::Name => name.clone(),
            };
            top.annotations.insert(REF_NAME.into(), r);
        }
        top.annotations.insert(IMAGE_NAME.into(), name);
        entries.push(top);
    }
    let index = Index {
        schema_version: 2,
        media_type: media::OCI_INDEX,
        manifests: &entries,
    };
    let index = serde_json::to_vec(&index).expect("serializable");
    plan.bytes(INDEX_FILE, index, Phase::Name)?;
    let layout = format!("{{\"imageLayoutVersion\":\"{LAYOUT_VERSION}\"}}");
    plan.bytes(LAYOUT_FILE, layout.into_bytes(), Phase::Name)?;
    let rewritten = rewriter.map(Rewriter::into_map).unwrap_or_default();
    Ok(Export {
        plan,
        entries,
        rewritten,
    })
}
