//! regkit: offline tools for Docker Distribution registry storage folders.
//!
//! The model: a [`store::Store`] (the tree behind a small backend
//! interface, with paths spelled only by [`paths`]), walked once into a
//! [`catalog::Catalog`] (repositories, tags and the manifest graph, parsed
//! from exact bytes by [`manifest`]). A [`selection`] closes the images a
//! user names over their children and blobs; a [`layout`] turns it into a
//! [`plan::Plan`]; a [`sink`] writes the plan. The [`command`] modules are
//! those pipelines, one per command; `main.rs` and [`cli`] only parse and
//! print.

pub mod archive;
pub mod atomic;
pub mod blobs;
pub mod bundle;
pub mod catalog;
pub mod claims;
pub mod cli;
pub mod command;
pub mod compress;
pub mod digest;
pub mod error;
pub mod gc;
pub mod graph;
pub mod import;
pub mod interrupt;
pub mod layout;
pub mod lock;
pub mod manifest;
pub mod media;
pub mod overlap;
pub mod paths;
pub mod plan;
pub mod platform;
pub mod progress;
pub mod pull;
pub mod push;
pub mod reference;
pub mod remote;
pub mod selection;
pub mod serve;
pub mod sink;
pub mod store;
pub mod tags;
pub mod usage;
pub mod verify;

pub use digest::Digest;
pub use error::{Error, Result};
