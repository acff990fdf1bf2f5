//! Pushing images from storage to a live registry over the Registry HTTP
//! API V2 (what Harbor 2.x needs: its database learns of images only
//! through pushes), over the transport of [`crate::remote`].
//!
//! - [`dest`]: DEST, `--dest-prefix` and the map file: where each image goes.
//! - [`plan`]: the jobs, one per image, and their order.
//! - [`upload`]: one blob into one repository (HEAD, mount, PUT, PATCH).
//! - [`image`]: one image: blobs, manifests children first, then the tag.
//! - [`harbor`]: "create the project" instead of "denied".

pub mod dest;
pub mod harbor;
pub mod image;
pub mod plan;
pub mod upload;
