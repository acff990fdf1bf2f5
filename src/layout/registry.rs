//! The registry storage layout: what distribution itself writes after a push.
//!
//! For each image: every manifest's blob (the top one and every kept child)
//! with a revision link in the repository, every config and layer blob with a
//! `_layers` link, the tag's `current` and `index` links, and the empty
//! `_uploads` folder the registry leaves.

use crate::error::Result;
use crate::paths::{self, Spec};
use crate::plan::{Phase, Plan};
use crate::selection::{Image, Selection};

/// Plans the registry tree for a selection, with paths starting at
/// `docker/registry/v2/`.
pub fn plan(sel: &Selection) -> Result<Plan> {
    let mut plan = Plan::new();
    for img in &sel.images {
        add_image(&mut plan, img)?;
    }
    Ok(plan)
}

fn at(spec: Spec) -> String {
    spec.rooted()
}

fn add_image(plan: &mut Plan, img: &Image) -> Result<()> {
    let repo = img.repo.as_str();
    for m in &img.manifests {
        plan.blob(
            at(Spec::BlobData(&m.digest)),
            &m.digest,
            m.node.size,
            Phase::Content,
        )?;
        plan.bytes(
            at(Spec::RevisionLink(repo, &m.digest)),
            paths::link_bytes(&m.digest),
            Phase::Link,
        )?;
    }
    for b in &img.blobs {
        plan.blob(
            at(Spec::BlobData(&b.digest)),
            &b.digest,
            b.size,
            Phase::Content,
        )?;
        plan.bytes(
            at(Spec::LayerLink(repo, &b.digest)),
            paths::link_bytes(&b.digest),
            Phase::Link,
        )?;
    }
    if let Some(tag) = &img.tag {
        let link = paths::link_bytes(&img.digest);
        plan.bytes(
            at(Spec::TagIndexLink(repo, tag, &img.digest)),
            link.clone(),
            Phase::Name,
        )?;
        plan.bytes(at(Spec::TagCurrentLink(repo, tag)), link, Phase::Name)?;
    }
    plan.dir(at(Spec::UploadsRoot(repo)));
    Ok(())
}
