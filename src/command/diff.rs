//! `diff`: what changed between two bundles (or descriptions, or trees),
//! and the blob bytes a delta from the first to the second needs.

use std::path::Path;

use serde::Serialize;

use crate::bundle::Contents;
use crate::digest::Digest;
use crate::error::Result;

#[derive(Debug, Serialize)]
pub struct Changed {
    pub name: String,
    pub old: Digest,
    pub new: Digest,
}

#[derive(Debug, Serialize)]
pub struct Diff {
    pub added: Vec<(String, Digest)>,
    pub removed: Vec<(String, Digest)>,
    pub changed: Vec<Changed>,
    /// Blobs of NEW that OLD does not have: what a delta bundle carries.
    pub delta_blobs: usize,
    pub delta_bytes: u64,
}

pub fn run(old: &Path, new: &Path) -> Result<Diff> {
    let (old, new) = (Contents::load(old)?, Contents::load(new)?);
    let mut d = Diff {
        added: vec![],
        removed: vec![],
        changed: vec![],
        delta_blobs: 0,
        delta_bytes: 0,
    };
    for (name, digest) in &new.images {
        match old.images.get(name) {
            None => d.added.push((name.clone(), digest.clone())),
            Some(o) if o != digest => d.changed.push(Changed {
                name: name.clone(),
                old: o.clone(),
                new: digest.clone(),
            }),
            Some(_) => {}
        }
    }
    for (name, digest) in &old.images {
        if !new.images.contains_key(name) {
            d.removed.push((name.clone(), digest.clone()));
        }
    }
    for (digest, size) in &new.blobs {
        if !old.blobs.contains_key(digest) {
            d.delta_blobs += 1;
            d.delta_bytes += size;
        }
    }
    Ok(d)
}
