//! Output layouts: each turns a selection into a [`Plan`](crate::plan::Plan)
//! and knows nothing of where the plan is written.

pub mod dir;
pub mod docker_archive;
pub mod oci;
pub mod oci_media;
pub mod registry;

use crate::error::{Error, Result};
use crate::selection::Image;

/// The name an exported image is known by: `[PREFIX/]repo:tag`, or
/// `[PREFIX/]repo@digest` for an image selected by digest.
pub fn full_name(prefix: Option<&str>, img: &Image) -> String {
    match prefix {
        Some(p) => format!("{p}/{}", img.name()),
        None => img.name(),
    }
}

/// Refuses schema1 images, which neither an OCI layout nor a docker archive
/// can hold (they have no config blob).
pub fn refuse_schema1(img: &Image) -> Result<()> {
    if img.manifests.iter().any(|m| {
        matches!(
            m.node.manifest.kind,
            crate::media::ManifestKind::DockerSchema1 { .. }
        )
    }) {
        return Err(Error::invalid(
            "a schema1 manifest has no config blob and cannot be exported; leave this image out (or copy it with skopeo, which converts it and changes its digest)",
        )
        .in_image(img.name()));
    }
    Ok(())
}
