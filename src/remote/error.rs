//! What a destination registry can answer that stops a push, each with what
//! to do about it.

/// A failure talking to the destination registry.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RemoteError {
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },

    #[error("TLS with {host} failed: {reason}")]
    Tls { host: String, reason: String },

    #[error("{host} refused the credentials{}: {detail}", user_part(user))]
    BadCredentials {
        host: String,
        user: Option<String>,
        detail: String,
    },

    #[error("{host} asks for credentials and none were found")]
    NoCredentials { host: String },

    #[error("{host} denied push to `{repo}`: {message}")]
    Denied {
        host: String,
        repo: String,
        /// The first path component of the repository (Harbor's project).
        project: Option<String>,
        message: String,
    },

    #[error("project `{project}` does not exist on {host}: {message}")]
    ProjectMissing {
        host: String,
        project: String,
        message: String,
    },

    #[error("{method} {url} answered {status}: {message}")]
    Status {
        method: String,
        url: String,
        status: u16,
        message: String,
    },

    #[error("{url}: {message}")]
    Protocol { url: String, message: String },

    /// The destination stopped answering earlier in this run; this image
    /// was not tried.
    #[error("skipped: {host} stopped answering earlier in this run")]
    NotTried { host: String },
}

fn user_part(user: &Option<String>) -> String {
    match user {
        Some(u) => format!(" of user `{u}`"),
        None => String::new(),
    }
}

impl RemoteError {
    /// As a crate error (no `From`, which would make `?` ambiguous in
    /// closures elsewhere).
    pub fn into_error(self) -> crate::Error {
        crate::Error::Remote(self)
    }

    /// Worth trying again after a pause: connection failures, 5xx and 429.
    pub fn is_transient(&self) -> bool {
        match self {
            RemoteError::Unreachable { .. } => true,
            // A 401 reaches here only for a streamed body, which cannot be
            // sent again with a renewed token inside one try.
            RemoteError::Status { status, .. } => {
                *status >= 500 || *status == 429 || *status == 401
            }
            _ => false,
        }
    }

    /// The destination is down (as opposed to refusing one request).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            RemoteError::Unreachable { .. } | RemoteError::NotTried { .. }
        )
    }

    /// A hint on what to do about it.
    pub fn help(&self) -> Option<String> {
        Some(match self {
            RemoteError::Unreachable { .. } => "check that the registry is running at that address; a registry without TLS needs --tls-verify=false (or DEST written http://HOST); run again to resume, what is already there is skipped".into(),
            RemoteError::Tls { host, .. } => format!(
                "trust its certificate with --cert-dir DIR (a folder of *.crt files, like /etc/containers/certs.d/{host}), or skip verification with --tls-verify=false; a registry speaking plain http is written http://{host}"
            ),
            RemoteError::BadCredentials { .. } => "check the user and password given with --creds or --authfile, or stored by `skopeo login` / `docker login`".into(),
            RemoteError::NoCredentials { host } => format!(
                "give --creds USER:PASS or --authfile FILE, or log in first with `skopeo login {host}`"
            ),
            RemoteError::Denied { project: Some(p), .. } => format!(
                "the account needs push rights on this repository; on Harbor, the project `{p}` must exist and the account be at least a Developer in it (create the project `{p}` in Harbor first, or choose another with --dest-prefix / --map)"
            ),
            RemoteError::Denied { .. } => "the account needs push rights on this repository; on Harbor, push into a project: use --dest-prefix PROJECT/".into(),
            RemoteError::ProjectMissing { project, .. } => format!(
                "create the project `{project}` in Harbor first (Projects → New Project), or push into an existing one with --dest-prefix PROJECT/ or --map"
            ),
            RemoteError::NotTried { .. } => "run again once the registry answers: what is already there is skipped".into(),
            RemoteError::Status { status, .. } if *status >= 500 => {
                "the registry failed; its log says why. Run again to resume".into()
            }
            _ => return None,
        })
    }
}
