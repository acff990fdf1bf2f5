//! Errors, each carrying the path it concerns and, once known, the image.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::manifest::ManifestError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no registry storage tree here (looked for docker/registry/v2 with blobs/ or repositories/)")]
    NotAStorageTree { path: PathBuf },

    #[error("cannot {action}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("malformed link: expected `sha256:<64 hex>` with no newline, found {found:?}")]
    BadLink { path: PathBuf, found: String },

    #[error("link points at {digest}, whose blob is missing")]
    DanglingLink { path: PathBuf, digest: Digest },

    #[error("blob {digest} ({what}) is missing")]
    MissingBlob {
        digest: Digest,
        what: String,
        path: PathBuf,
    },

    #[error("manifest {digest} cannot be read: {reason}")]
    BadManifest {
        digest: Digest,
        path: PathBuf,
        reason: ManifestError,
    },

    #[error("blob has the wrong content: expected {expected}, found {actual}")]
    DigestMismatch {
        path: PathBuf,
        expected: Digest,
        actual: Digest,
    },

    #[error("{what} {digest} has no {kind} link here, so the registry cannot serve it")]
    MissingLink {
        path: PathBuf,
        digest: Digest,
        what: String,
        /// `revision` or `_layers`.
        kind: &'static str,
    },

    #[error("link in the folder of {folder} points at {target}")]
    LinkMismatch {
        path: PathBuf,
        folder: Digest,
        target: Digest,
    },

    #[error("{message}")]
    Refused {
        message: String,
        path: PathBuf,
        help: String,
    },

    #[error("blob {digest} has {actual} bytes but its descriptor says {expected}")]
    SizeMismatch {
        path: PathBuf,
        digest: Digest,
        expected: u64,
        actual: u64,
    },

    #[error("manifest {digest} is nested deeper than {limit} levels of indexes")]
    TooDeep {
        digest: Digest,
        path: Option<PathBuf>,
        limit: usize,
    },

    #[error("{}image `{name}` is not in the storage tree", origin.as_ref().map(|o| format!("{o}: ")).unwrap_or_default())]
    UnknownImage {
        name: String,
        nearest: Vec<String>,
        /// The list line that named it.
        origin: Option<crate::reference::Origin>,
    },

    #[error("`{input}` is not an image reference: {reason}")]
    BadReference { input: String, reason: String },

    #[error("{message}")]
    BadList {
        message: String,
        path: Option<PathBuf>,
    },

    #[error("the output already exists (use --force to replace it)")]
    OutputExists { path: PathBuf },

    #[error("the output appeared while regkit was writing it; it was left as it is and nothing was written there (use --force to replace it)")]
    OutputAppeared { path: PathBuf },

    #[error("{what} {relation} the storage tree {}; refusing, whatever --force says", tree.display())]
    Overlap {
        path: PathBuf,
        /// `the output`, `the bundle`, `the source`.
        what: &'static str,
        /// `is`, `contains`, `lies inside`.
        relation: &'static str,
        tree: PathBuf,
    },

    #[error("refusing to overwrite a file that differs: it holds {existing}, the selection needs {wanted}")]
    Conflict {
        path: PathBuf,
        existing: String,
        wanted: String,
    },

    #[error("interrupted; nothing was left half-written")]
    Interrupted,

    #[error("{failed} of {total} images failed")]
    SomeFailed { failed: usize, total: usize },

    #[error("{message}")]
    Invalid {
        message: String,
        path: Option<PathBuf>,
    },

    /// The destination registry of a push refused or failed.
    #[error(transparent)]
    Remote(crate::remote::error::RemoteError),

    /// An error kept in the catalog and reported for every image it breaks.
    #[error(transparent)]
    Shared(std::sync::Arc<Error>),

    /// Any of the above, while working on one image.
    #[error("{source}")]
    InImage {
        image: String,
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// An I/O error while doing `action` to `path`; a read or write that
    /// stopped for Ctrl-C ([`crate::interrupt::io_error`]) is
    /// [`Error::Interrupted`].
    pub fn io(action: &'static str, path: impl AsRef<Path>, source: io::Error) -> Error {
        if crate::interrupt::is_io_error(&source) {
            return Error::Interrupted;
        }
        Error::Io {
            action,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Error {
        Error::Invalid {
            message: message.into(),
            path: None,
        }
    }

    /// Attaches the image being worked on (once; the innermost wins).
    pub fn in_image(self, image: impl fmt::Display) -> Error {
        match self {
            e @ Error::InImage { .. } => e,
            e => Error::InImage {
                image: image.to_string(),
                source: Box::new(e),
            },
        }
    }

    /// The error without its image context, shared (for several images).
    pub fn root_shared(self) -> std::sync::Arc<Error> {
        match self {
            Error::InImage { source, .. } => source.root_shared(),
            Error::Shared(inner) => inner,
            e => std::sync::Arc::new(e),
        }
    }

    /// The error without its image context.
    pub fn root(&self) -> &Error {
        match self {
            Error::InImage { source, .. } => source.root(),
            Error::Shared(inner) => inner.root(),
            e => e,
        }
    }

    /// The image this error concerns, if known.
    pub fn image(&self) -> Option<&str> {
        match self {
            Error::InImage { image, .. } => Some(image),
            Error::Shared(inner) => inner.image(),
            Error::UnknownImage { name, .. } => Some(name),
            _ => None,
        }
    }

    /// The file or folder this error concerns, if any.
    pub fn path(&self) -> Option<&Path> {
        match self.root() {
            Error::NotAStorageTree { path }
            | Error::Io { path, .. }
            | Error::BadLink { path, .. }
            | Error::DanglingLink { path, .. }
            | Error::MissingBlob { path, .. }
            | Error::BadManifest { path, .. }
            | Error::DigestMismatch { path, .. }
            | Error::SizeMismatch { path, .. }
            | Error::MissingLink { path, .. }
            | Error::LinkMismatch { path, .. }
            | Error::Refused { path, .. }
            | Error::OutputExists { path }
            | Error::OutputAppeared { path }
            | Error::Overlap { path, .. }
            | Error::Conflict { path, .. } => Some(path),
            Error::Invalid { path, .. }
            | Error::BadList { path, .. }
            | Error::TooDeep { path, .. } => path.as_deref(),
            _ => None,
        }
    }

    /// A hint on what to do about it.
    pub fn help(&self) -> Option<String> {
        match self.root() {
            Error::UnknownImage { nearest, .. } if !nearest.is_empty() => {
                Some(format!("did you mean: {}", nearest.join(", ")))
            }
            Error::UnknownImage { .. } => {
                Some("run `regkit ls ROOT` to see the images present".into())
            }
            Error::NotAStorageTree { .. } => Some(
                "point ROOT at the registry's rootdirectory (e.g. /var/lib/registry), its docker/registry/v2 folder, or a parent"
                    .into(),
            ),
            Error::Refused { help, .. } => Some(help.clone()),
            Error::Io { source, .. } if source.raw_os_error() == Some(nix::libc::ENOSPC) => {
                Some("the disk is full: the file being written was removed and nothing half-written is left; free space and run again".into())
            }
            Error::Remote(r) => r.help(),
            _ => None,
        }
    }
}
