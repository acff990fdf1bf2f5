//! The Registry HTTP API V2 paths a read-only registry answers, parsed from
//! the raw request path with the repository grammar: nothing but a name the
//! grammar accepts reaches the store, so `..`, percent-encoded slashes or
//! empty components never become a path in the tree.

use crate::paths::is_valid_repository_name;

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /v2/`: the API version check.
    Base,
    /// `GET /v2/_catalog`
    Catalog,
    /// `GET /v2/<name>/tags/list`
    Tags(String),
    /// `GET /v2/<name>/manifests/<reference>`
    Manifest(String, String),
    /// `GET /v2/<name>/blobs/<digest>`
    Blob(String, String),
    /// `GET /v2/<name>/referrers/<digest>`
    Referrers(String, String),
    /// `/v2/<name>/blobs/uploads/...`: only writers go there.
    Upload,
}

/// Why a path is not a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRoute {
    /// A repository name the grammar refuses (or written with escapes).
    NameInvalid(String),
    /// No such endpoint.
    NotFound,
}

/// Parses a request path (as sent, not decoded).
pub fn parse(path: &str) -> Result<Route, NoRoute> {
    let rest = match path.strip_prefix("/v2") {
        Some("") | Some("/") => return Ok(Route::Base),
        Some(r) => r.strip_prefix('/').ok_or(NoRoute::NotFound)?,
        None => return Err(NoRoute::NotFound),
    };
    if rest == "_catalog" {
        return Ok(Route::Catalog);
    }
    let name_ok = |name: &str| -> Result<String, NoRoute> {
        // Names hold no escapes: `%2F` is no slash and `%2E` no dot here.
        if is_valid_repository_name(name) {
            Ok(name.to_string())
        } else {
            Err(NoRoute::NameInvalid(name.to_string()))
        }
    };
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Ok(Route::Tags(name_ok(name)?));
    }
    if let Some(i) = rest.find("/blobs/uploads") {
        let after = &rest[i + "/blobs/uploads".len()..];
        if after.is_empty() || after.starts_with('/') {
            name_ok(&rest[..i])?;
            return Ok(Route::Upload);
        }
    }
    for (marker, make) in [
        (
            "/manifests/",
            Route::Manifest as fn(String, String) -> Route,
        ),
        ("/blobs/", Route::Blob),
        ("/referrers/", Route::Referrers),
    ] {
        if let Some(i) = rest.rfind(marker) {
            let (name, reference) = (&rest[..i], &rest[i + marker.len()..]);
            if reference.is_empty() || reference.contains('/') {
                return Err(NoRoute::NotFound);
            }
            return Ok(make(name_ok(name)?, reference.to_string()));
        }
    }
    Err(NoRoute::NotFound)
}

/// The value of `key` in a query string (`n=10&last=b`), percent-decoded.
pub fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = match b.get(i..i + 3) {
            Some([b'%', h, l]) => hex(*h).zip(hex(*l)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match (escaped, b[i]) {
            (Some(v), _) => {
                out.push(v);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, c) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_pull_endpoints_with_nested_names() {
        let s = |v: &str| v.to_string();
        let cases = [
            ("/v2/", Ok(Route::Base)),
            ("/v2", Ok(Route::Base)),
            ("/v2/_catalog", Ok(Route::Catalog)),
            ("/v2/a/b/c/tags/list", Ok(Route::Tags(s("a/b/c")))),
            (
                "/v2/tools/current/manifests/latest",
                Ok(Route::Manifest(s("tools/current"), s("latest"))),
            ),
            // A repository literally named `.../manifests` still parses.
            (
                "/v2/x/manifests/manifests/v1",
                Ok(Route::Manifest(s("x/manifests"), s("v1"))),
            ),
            (
                "/v2/a/blobs/sha256:abc",
                Ok(Route::Blob(s("a"), s("sha256:abc"))),
            ),
            (
                "/v2/a/referrers/sha256:abc",
                Ok(Route::Referrers(s("a"), s("sha256:abc"))),
            ),
            ("/v2/a/blobs/uploads/", Ok(Route::Upload)),
            ("/v2/a/blobs/uploads/123", Ok(Route::Upload)),
            (
                "/v2/../etc/manifests/x",
                Err(NoRoute::NameInvalid(s("../etc"))),
            ),
            (
                "/v2/a%2F..%2F..%2Fb/manifests/x",
                Err(NoRoute::NameInvalid(s("a%2F..%2F..%2Fb"))),
            ),
            ("/v2/a//b/tags/list", Err(NoRoute::NameInvalid(s("a//b")))),
            ("/v2/A/tags/list", Err(NoRoute::NameInvalid(s("A")))),
            ("/v2/a/manifests/", Err(NoRoute::NotFound)),
            ("/v2/a/manifests/x/y", Err(NoRoute::NotFound)),
            ("/v2/a/whatever", Err(NoRoute::NotFound)),
            ("/v3/", Err(NoRoute::NotFound)),
            ("/v2x", Err(NoRoute::NotFound)),
        ];
        for (path, want) in &cases {
            assert_eq!(&parse(path), want, "{path}");
        }
        assert_eq!(cases.len(), 19);
    }

    #[test]
    fn reads_query_parameters() {
        assert_eq!(
            query_param(Some("n=2&last=a%2Fb"), "last").as_deref(),
            Some("a/b")
        );
        assert_eq!(query_param(Some("n=2&last=a"), "n").as_deref(), Some("2"));
        assert_eq!(query_param(Some("n=2"), "last"), None);
        assert_eq!(query_param(None, "n"), None);
        assert_eq!(query_param(Some("x=%zz%"), "x").as_deref(), Some("%zz%"));
    }
}
