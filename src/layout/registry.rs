//! The registry storage layout: what distribution itself writes after a push.
//!
//! For each image: every manifest's blob (the top one and every kept child)
//! with a revision link in the repository, every config and layer blob with a
//! `_layers` link, the tag's `current` and `index` links, and the empty
//! `_uploads` folder the registry leaves.
//!
//! The pieces ([`manifest`], [`blob`], [`tag`], [`repository`]) take the
//! source of the bytes, so that `select` (blobs of a store) and `import`
//! (files of a `dir:` folder, an OCI layout or an archive) write the same
//! tree.

use crate::digest::Digest;
use crate::error::Result;
use crate::paths::Spec;
use crate::plan::{Phase, Plan, Source};
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
        let source = Source::Blob(m.digest.clone());
        manifest(plan, repo, &m.digest, m.node.size, source)?;
    }
    for b in &img.blobs {
        blob(
            plan,
            repo,
            &b.stored,
            b.size,
            Source::Blob(b.stored.clone()),
        )?;
        if b.digest != b.stored {
            alias(plan, repo, &b.digest, &b.stored)?;
        }
    }
    if let Some(t) = &img.tag {
        tag(plan, repo, t, &img.digest)?;
    }
    repository(plan, repo);
    Ok(())
}

/// A manifest: its blob and a revision link in `repo`.
pub fn manifest(
    plan: &mut Plan,
    repo: &str,
    digest: &Digest,
    size: u64,
    source: Source,
) -> Result<()> {
    plan.file(at(Spec::BlobData(digest)), source, size, Phase::Content)?;
    plan.bytes(
        at(Spec::RevisionLink(repo, digest)),
        digest.shared_bytes(),
        Phase::Link,
    )
}

/// A config or layer: its blob and a `_layers` link in `repo`.
pub fn blob(plan: &mut Plan, repo: &str, digest: &Digest, size: u64, source: Source) -> Result<()> {
    plan.file(at(Spec::BlobData(digest)), source, size, Phase::Content)?;
    plan.bytes(
        at(Spec::LayerLink(repo, digest)),
        digest.shared_bytes(),
        Phase::Link,
    )
}

/// Another name for a stored blob, as the registry writes one for a blob
/// pushed under another algorithm's digest: a `_layers` link for `name`
/// that holds the digest the blob is stored under.
pub fn alias(plan: &mut Plan, repo: &str, name: &Digest, stored: &Digest) -> Result<()> {
    plan.bytes(
        at(Spec::LayerLink(repo, name)),
        stored.shared_bytes(),
        Phase::Link,
    )
}

/// A tag: its `current` link and its `index` entry, both naming `digest`.
pub fn tag(plan: &mut Plan, repo: &str, tag: &str, digest: &Digest) -> Result<()> {
    let link = digest.shared_bytes();
    plan.bytes(
        at(Spec::TagIndexLink(repo, tag, digest)),
        link.clone(),
        Phase::Name,
    )?;
    plan.bytes(at(Spec::TagCurrentLink(repo, tag)), link, Phase::Name)
}

/// The empty `_uploads` folder the registry leaves in a repository it
/// received blobs in.
pub fn repository(plan: &mut Plan, repo: &str) {
    plan.dir(at(Spec::UploadsRoot(repo)));
}
