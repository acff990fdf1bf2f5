//! One transport for the Registry HTTP API V2, for every command that talks
//! to a live registry (`push`, `pull`), modelled on
//! go-containerregistry's `pkg/v1/remote/transport`:
//!
//! - [`client`]: HTTP (ureq, rustls), the `/v2/` ping with the https → http
//!   fallback, authorization on every request, bodies streamed both ways,
//!   a stall timeout, Ctrl-C ending requests in flight.
//! - [`api`]: the requests themselves: manifests, blobs, listings,
//!   referrers.
//! - [`retry`]: what is tried again, after how long (`Retry-After`).
//! - [`auth`]: anonymous, Basic, and Bearer tokens per scope (pull, push).
//! - [`creds`]: credentials from `--creds`, auth files and credential helpers.
//! - [`tls`]: roots, `certs.d` folders, client certificates.
//! - [`error`]: what a registry can answer that stops the work.

pub mod api;
pub mod auth;
pub mod client;
pub mod creds;
pub mod error;
pub mod retry;
pub mod tls;

pub use error::RemoteError;

/// `http` or `https`, when the user names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}
