//! What a push does for each image, in which order: blobs first, then the
//! manifests by digest, children before the index that lists them, then the
//! tag. Images that refer to another through `subject` (signatures, SBOMs)
//! go after the others.

use std::collections::{HashMap, HashSet};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::push::dest::{Naming, Target};
use crate::selection::{Image, ManifestItem, Selection};

/// One image to push.
#[derive(Debug, Clone)]
pub struct Job {
    pub image: Image,
    pub target: Target,
    /// Indices into `image.manifests`, children before parents.
    pub order: Vec<usize>,
    /// The manifest the tag (or the by-digest reference) names.
    pub top: usize,
}

impl Job {
    /// The manifests to push, in order.
    pub fn manifests(&self) -> impl Iterator<Item = &ManifestItem> {
        self.order.iter().map(|&i| &self.image.manifests[i])
    }

    pub fn top(&self) -> &ManifestItem {
        &self.image.manifests[self.top]
    }

    /// Bytes of blobs and manifests this image needs at the destination.
    pub fn bytes(&self) -> u64 {
        self.manifests().map(|m| m.node.size).sum::<u64>()
            + self.image.blobs.iter().map(|b| b.size).sum::<u64>()
    }
}

/// The jobs for a selection, and the images that cannot be pushed as named
/// (an invalid or clashing destination name).
pub fn jobs(sel: &Selection, naming: &Naming) -> (Vec<Job>, Vec<Error>) {
    let mut jobs = Vec::new();
    let mut failures = Vec::new();
    let mut claimed: HashMap<(String, String), (String, Digest)> = HashMap::new();
    for img in &sel.images {
        match job(img, naming) {
            Ok(j) => {
                if let Some(tag) = &j.target.tag {
                    let key = (j.target.repo.clone(), tag.clone());
                    let digest = j.top().digest.clone();
                    if let Some((other, d)) = claimed.get(&key) {
                        if *d != digest {
                            failures.push(
                                Error::invalid(format!(
                                    "{other} is also pushed to {}:{tag}; each destination tag can hold one image (see --map)",
                                    j.target.repo
                                ))
                                .in_image(img.name()),
                            );
                            continue;
                        }
                    }
                    claimed.insert(key, (img.name(), digest));
                }
                jobs.push(j);
            }
            Err(e) => failures.push(e.in_image(img.name())),
        }
    }
    // Referrers after what they refer to; otherwise the selection's order.
    jobs.sort_by_key(|j| j.manifests().any(|m| m.node.manifest.subject.is_some()));
    (jobs, failures)
}

fn job(img: &Image, naming: &Naming) -> Result<Job> {
    let target = naming.target(&img.repo, img.tag.as_deref())?;
    let present: HashSet<&Digest> = img.manifests.iter().map(|m| &m.digest).collect();
    let filtered = img.manifests.iter().any(|m| {
        m.node
            .manifest
            .children
            .iter()
            .any(|c| !present.contains(&c.digest))
    });
    let leaves: Vec<usize> = (0..img.manifests.len())
        .filter(|&i| !img.manifests[i].node.manifest.kind.is_index())
        .collect();
    if filtered && leaves.len() == 1 {
        // --platform kept one image of an index: push that image under the
        // tag, as `skopeo copy` does without --all.
        return Ok(Job {
            image: img.clone(),
            target,
            order: leaves.clone(),
            top: leaves[0],
        });
    }
    // The selection lists the top manifest first, then children depth
    // first: reversed, every child comes before the index listing it.
    Ok(Job {
        image: img.clone(),
        target,
        order: (0..img.manifests.len()).rev().collect(),
        top: 0,
    })
}
