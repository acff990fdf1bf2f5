//! What a registry can answer that stops the work, each with what to do
//! about it.

use std::time::Duration;

use crate::remote::auth::Access;

/// A failure talking to the destination registry.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RemoteError {
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },

    /// No byte came (or could be sent) for the stall timeout.
    #[error("{method} {url}: the registry {} for {} s", if *sending { "took no byte" } else { "sent nothing" }, seconds(after))]
    Stalled {
        method: String,
        url: String,
        /// Stuck sending the request (the registry read nothing), rather
        /// than waiting for its answer.
        sending: bool,
        after: Duration,
    },

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

    #[error("{host} denied {} `{repo}`: {message}", access.denied())]
    Denied {
        host: String,
        access: Access,
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

    #[error("{method} {url} answered {status}: {message}{}", retry_after.map(|d| format!(" (it asked to wait {} s)", d.as_secs())).unwrap_or_default())]
    Status {
        method: String,
        url: String,
        status: u16,
        message: String,
        /// The `Retry-After` of a 429 or 503.
        retry_after: Option<Duration>,
    },

    #[error("{url}: {message}")]
    Protocol { url: String, message: String },

    /// A repository, tag or manifest the registry does not have.
    #[error("{}{what} `{name}` is not on {host}", origin.as_ref().map(|o| format!("{o}: ")).unwrap_or_default())]
    NotFound {
        /// `repository`, `tag`, `manifest`.
        what: &'static str,
        name: String,
        host: String,
        /// What it has instead, nearest first (tags of the repository).
        nearest: Vec<String>,
        /// The list line that named it.
        origin: Option<crate::reference::Origin>,
    },

    /// The registry's pull rate limit is used up (Docker Hub's
    /// `RateLimit-Remaining: 0`).
    #[error(
        "{host}'s pull rate limit is used up (RateLimit-Remaining: 0{})",
        rate_part(limit, window_seconds)
    )]
    RateLimited {
        host: String,
        limit: Option<u64>,
        window_seconds: Option<u64>,
    },

    /// The destination stopped answering earlier in this run; this image
    /// was not tried.
    #[error("skipped: {host} stopped answering earlier in this run")]
    NotTried { host: String },
}

fn seconds(d: &Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s:.1}")
    }
}

fn rate_part(limit: &Option<u64>, window: &Option<u64>) -> String {
    match (limit, window) {
        (Some(l), Some(w)) => format!(
            " of {l} per {} h",
            (*w as f64 / 3600.0 * 10.0).round() / 10.0
        ),
        (Some(l), None) => format!(" of {l}"),
        _ => String::new(),
    }
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

    /// `method url` answered `reply`, which was not what was asked for.
    pub fn status(method: &str, url: &str, reply: &crate::remote::client::Reply) -> RemoteError {
        RemoteError::Status {
            method: method.into(),
            url: url.into(),
            status: reply.status,
            message: reply.message(),
            retry_after: crate::remote::retry::retry_after(reply),
        }
    }

    /// Worth trying again after a pause: connection failures, stalls, 5xx
    /// and 429.
    pub fn is_transient(&self) -> bool {
        match self {
            RemoteError::Unreachable { .. } | RemoteError::Stalled { .. } => true,
            // A 401 reaches here only for a streamed body, which cannot be
            // sent again with a renewed token inside one try.
            RemoteError::Status { status, .. } => {
                *status >= 500 || *status == 429 || *status == 401
            }
            _ => false,
        }
    }

    /// The registry is down or stuck (as opposed to refusing one request):
    /// once every retry found it so, the rest of the run is not tried.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            RemoteError::Unreachable { .. }
                | RemoteError::Stalled { .. }
                | RemoteError::NotTried { .. }
        )
    }

    /// How long the registry asked to wait before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            RemoteError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
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
            RemoteError::Stalled { after, .. } => format!(
                "the registry (or a proxy in front of it) stopped moving data for {} s; --timeout gives it longer; run again to resume, what is already there is skipped",
                seconds(after)
            ),
            RemoteError::Denied { access: Access::Pull, .. } => "the account needs pull rights on this repository".into(),
            RemoteError::Denied { project: Some(p), .. } => format!(
                "the account needs push rights on this repository; on Harbor, the project `{p}` must exist and the account be at least a Developer in it (create the project `{p}` in Harbor first, or choose another with --dest-prefix / --map)"
            ),
            RemoteError::Denied { .. } => "the account needs push rights on this repository; on Harbor, push into a project: use --dest-prefix PROJECT/".into(),
            RemoteError::ProjectMissing { project, .. } => format!(
                "create the project `{project}` in Harbor first (Projects → New Project), or push into an existing one with --dest-prefix PROJECT/ or --map"
            ),
            RemoteError::NotFound { nearest, .. } if !nearest.is_empty() => {
                format!("did you mean: {}", nearest.join(", "))
            }
            RemoteError::NotFound { what: "repository", .. } => "check the name (Docker Hub's official images are library/NAME); `--from HOST/NAMESPACE` names images below a namespace".into(),
            RemoteError::RateLimited { .. } => "manifest GETs count against the limit (HEADs do not, so a rerun with nothing new costs none); log in with --creds or --authfile for an account's higher limit, or run again once the window has passed: what is already pulled is skipped".into(),
            RemoteError::NotTried { .. } => "run again once the registry answers: what is already there is skipped".into(),
            RemoteError::Status { status, .. } if *status >= 500 => {
                "the registry failed; its log says why. Run again to resume".into()
            }
            _ => return None,
        })
    }
}

/// Harbor says `project <name> not found` when pushing into a project that
/// does not exist (in registry errors and token service answers).
pub fn missing_project(message: &str) -> Option<String> {
    let lower = message.to_ascii_lowercase();
    let start = lower.find("project ")? + "project ".len();
    let rest = &message[start..];
    let name = rest.split_whitespace().next()?;
    let after = lower[start + name.len()..].trim_start();
    if !(after.starts_with("not found") || after.starts_with("does not exist")) {
        return None;
    }
    let name = name.trim_matches(|c: char| matches!(c, '\'' | '"' | '`'));
    (!name.is_empty()).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_harbor_missing_projects() {
        assert_eq!(
            missing_project("NOT_FOUND: project migr not found").as_deref(),
            Some("migr")
        );
        assert_eq!(
            missing_project("unknown: project 'team' not found: project team not found").as_deref(),
            Some("team")
        );
        assert_eq!(
            missing_project("NAME_UNKNOWN: repository name not known"),
            None
        );
        assert_eq!(missing_project("project quota exceeded"), None);
    }
}
