//! Pushing images from storage to a live registry over the Registry HTTP
//! API V2 (what Harbor 2.x needs: its database learns of images only
//! through pushes).
//!
//! - [`dest`]: DEST, `--dest-prefix` and the map file: where each image goes.
//! - [`narrow`]: a store showing only the named repositories (a quick walk).
//! - [`plan`]: the jobs, one per image, and their order.
//! - [`client`]: HTTP (ureq, rustls), retries with backoff; [`tls`], [`auth`]
//!   (Basic, Bearer tokens), [`creds`] (credential files).
//! - [`upload`]: one blob into one repository (HEAD, mount, PUT, PATCH).
//! - [`image`]: one image: blobs, manifests children first, then the tag.
//! - [`harbor`]: "create the project" instead of "denied".

pub mod auth;
pub mod claims;
pub mod client;
pub mod creds;
pub mod dest;
pub mod error;
pub mod harbor;
pub mod image;
pub mod narrow;
pub mod plan;
pub mod tls;
pub mod upload;

pub use error::RemoteError;
