//! Pulling images from registries into a storage tree, as the registry
//! itself would store them after a push: the other half of
//! [`crate::push`], over the same transport ([`crate::remote`]).
//!
//! - [`source`]: IMAGE names, `--from`, Docker Hub's names, stored names.
//! - [`resolve`]: repositories and tags listed, digests by HEAD: the jobs.
//! - [`harbor`]: Harbor's API, where `_catalog` is refused.
//! - [`fetch`]: manifests fetched and checked, an image closed over them.
//! - [`blobs`]: blobs streamed into the store, each once.
//! - [`image`]: one image: the registry layout merged into ROOT.

pub mod blobs;
pub mod fetch;
pub mod harbor;
pub mod image;
pub mod resolve;
pub mod source;
