//! Manifest graphs: the one walk from a top manifest down through the
//! children an index names to every config and layer, with the one depth
//! limit.
//!
//! Every command that follows a graph walks it here — choosing images
//! (`selection`), `verify`, gc's mark, reading an import source — each with
//! a [`Visitor`] that says where manifests come from and what to do with
//! what the walk finds. The catalog reads ahead in parallel, level by
//! level, no deeper than the same limit. An index nested deeper than
//! [`MAX_DEPTH`] levels is an error naming the manifest past the limit
//! ([`Error::TooDeep`]) for every one of them: extract refuses it, verify
//! reports it, gc keeps its repository whole.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::{Descriptor, Manifest};

/// How many levels of indexes may nest below a top manifest (depth 0):
/// a manifest at depth `MAX_DEPTH + 1` is refused. Real multi-arch images
/// use one level, attestation indexes two.
pub const MAX_DEPTH: usize = 8;

/// A manifest as read from its blob.
#[derive(Debug)]
pub struct Node {
    pub manifest: Manifest,
    /// The length of the manifest's bytes.
    pub size: u64,
}

/// A manifest the walk reached.
pub struct Step<'a> {
    pub digest: &'a Digest,
    /// 0 for the top manifest.
    pub depth: usize,
    /// The index entry that named it (`None` for the top manifest).
    pub entry: Option<&'a Descriptor>,
    /// What it is to the image: `manifest`, `child manifest linux/arm64`.
    pub what: String,
}

/// A config or layer of a manifest.
pub struct BlobRef<'a> {
    pub descriptor: &'a Descriptor,
    /// What it is to its manifest: `config`, `layer 2 of 3`.
    pub what: String,
}

/// What a walk does with what it reaches.
pub trait Visitor {
    /// Reads the manifest at `step`; `None` leaves it (and all below it)
    /// out of the walk.
    fn manifest(&mut self, step: &Step) -> Result<Option<Arc<Node>>>;

    /// Whether to walk into the entry `child` of the index at `parent`
    /// (a platform filter); every child by default.
    fn follow(&mut self, parent: &Step, child: &Descriptor) -> bool {
        let _ = (parent, child);
        true
    }

    /// Each config and layer of a manifest, in manifest order.
    fn blob(&mut self, step: &Step, blob: &BlobRef) -> Result<()>;

    /// After the children of the index at `step`: `kept` is the number of
    /// image manifests kept below it.
    fn index_done(&mut self, step: &Step, kept: usize) -> Result<()> {
        let _ = (step, kept);
        Ok(())
    }

    /// Where a manifest is, to name it in errors.
    fn path(&self, digest: &Digest) -> Option<PathBuf> {
        let _ = digest;
        None
    }
}

/// Walks the graph below `top` depth first, each manifest once; returns
/// how many image manifests (leaves) were kept. A manifest deeper than
/// [`MAX_DEPTH`] stops the walk with [`Error::TooDeep`].
pub fn walk(top: &Digest, visitor: &mut dyn Visitor) -> Result<usize> {
    let mut seen = HashMap::new();
    let step = Step {
        digest: top,
        depth: 0,
        entry: None,
        what: "manifest".into(),
    };
    visit(&step, visitor, &mut seen)
}

fn visit(step: &Step, v: &mut dyn Visitor, seen: &mut HashMap<Digest, usize>) -> Result<usize> {
    if step.depth > MAX_DEPTH {
        return Err(Error::TooDeep {
            digest: step.digest.clone(),
            path: v.path(step.digest),
            limit: MAX_DEPTH,
        });
    }
    if let Some(kept) = seen.get(step.digest) {
        return Ok(*kept);
    }
    let Some(node) = v.manifest(step)? else {
        seen.insert(step.digest.clone(), 0);
        return Ok(0);
    };
    let m = &node.manifest;
    let n = m.layers.len();
    for b in m.blobs() {
        let what = if m.config.as_ref().is_some_and(|c| c.digest == b.digest) {
            "config".to_string()
        } else {
            let pos = m.layers.iter().position(|l| l.digest == b.digest);
            format!("layer {} of {n}", pos.map_or(0, |p| p + 1))
        };
        v.blob(
            step,
            &BlobRef {
                descriptor: b,
                what,
            },
        )?;
    }
    if !m.kind.is_index() {
        seen.insert(step.digest.clone(), 1);
        return Ok(1);
    }
    let mut kept = 0;
    for child in &m.children {
        if !v.follow(step, child) {
            continue;
        }
        let what = match &child.platform {
            Some(p) => format!("child manifest {p}"),
            None => "child manifest".to_string(),
        };
        let s = Step {
            digest: &child.digest,
            depth: step.depth + 1,
            entry: Some(child),
            what,
        };
        kept += visit(&s, v, seen)?;
    }
    v.index_done(step, kept)?;
    seen.insert(step.digest.clone(), kept);
    Ok(kept)
}

/// What a blob is to a manifest: `config`, or `layer 2 of 3`.
pub fn role(m: &Manifest, digest: &Digest) -> Option<String> {
    if m.config.as_ref().is_some_and(|c| &c.digest == digest) {
        return Some("config".into());
    }
    let pos = m.layers.iter().position(|l| &l.digest == digest)?;
    Some(format!("layer {} of {}", pos + 1, m.layers.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain of `levels` indexes above one image manifest, by digest.
    fn chain(levels: usize) -> (Digest, HashMap<Digest, Arc<Node>>) {
        let mut nodes = HashMap::new();
        let config = Digest::sha256_of(b"config");
        let leaf = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":6}},"layers":[]}}"#
        );
        let mut top = Digest::sha256_of(leaf.as_bytes());
        nodes.insert(
            top.clone(),
            Arc::new(Node {
                manifest: Manifest::parse(leaf.as_bytes()).unwrap(),
                size: leaf.len() as u64,
            }),
        );
        for _ in 0..levels {
            let index = format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"{top}","size":1}}]}}"#
            );
            top = Digest::sha256_of(index.as_bytes());
            nodes.insert(
                top.clone(),
                Arc::new(Node {
                    manifest: Manifest::parse(index.as_bytes()).unwrap(),
                    size: index.len() as u64,
                }),
            );
        }
        (top, nodes)
    }

    struct Collect {
        nodes: HashMap<Digest, Arc<Node>>,
        blobs: Vec<String>,
    }

    impl Visitor for Collect {
        fn manifest(&mut self, step: &Step) -> Result<Option<Arc<Node>>> {
            Ok(self.nodes.get(step.digest).cloned())
        }
        fn blob(&mut self, _: &Step, blob: &BlobRef) -> Result<()> {
            self.blobs.push(blob.what.clone());
            Ok(())
        }
    }

    #[test]
    fn walks_to_the_limit_and_refuses_past_it() {
        let (top, nodes) = chain(MAX_DEPTH);
        let mut v = Collect {
            nodes,
            blobs: vec![],
        };
        assert_eq!(walk(&top, &mut v).unwrap(), 1);
        assert_eq!(v.blobs, ["config"]);
        let (top, nodes) = chain(MAX_DEPTH + 1);
        let mut v = Collect {
            nodes,
            blobs: vec![],
        };
        let e = walk(&top, &mut v).unwrap_err();
        assert!(
            matches!(
                e,
                Error::TooDeep {
                    limit: MAX_DEPTH,
                    ..
                }
            ),
            "{e}"
        );
        assert!(v.blobs.is_empty());
    }
}
