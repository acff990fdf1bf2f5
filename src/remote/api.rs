//! The requests of the Registry HTTP API V2 that push and pull make over a
//! [`Client`]: manifests (HEAD, GET with their exact bytes), blobs streamed
//! out, tag and repository listings (paged with `n`/`last` and `Link`), and
//! the OCI referrers API. Each answers what the registry said, typed: a
//! `404` is "not there" (`None`), anything unexpected an error naming the
//! request.

use crate::digest::Digest;
use crate::error::Result;
use crate::manifest::Descriptor;
use crate::remote::auth::Scope;
use crate::remote::client::{Body, BodyReader, Client, Reply};
use crate::remote::error::RemoteError;

/// Every manifest media type regkit reads, for `Accept`.
pub const ACCEPT: &str = concat!(
    "application/vnd.oci.image.manifest.v1+json, ",
    "application/vnd.oci.image.index.v1+json, ",
    "application/vnd.docker.distribution.manifest.v2+json, ",
    "application/vnd.docker.distribution.manifest.list.v2+json, ",
    "application/vnd.docker.distribution.manifest.v1+prettyjws, ",
    "application/vnd.docker.distribution.manifest.v1+json"
);

/// What a `HEAD` of a manifest says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    /// `Docker-Content-Digest`, when the registry sent one.
    pub digest: Option<Digest>,
    pub media_type: Option<String>,
    pub size: Option<u64>,
}

/// `HEAD /v2/<repo>/manifests/<reference>`: `None` if there is none. A
/// Docker Hub rate limit in the answer is noted on the client (HEADs do not
/// count against it, GETs do).
pub fn head_manifest(
    client: &Client,
    repo: &str,
    reference: &str,
    scope: &Scope,
) -> Result<Option<ManifestHead>> {
    let url = client.url(&format!("/v2/{repo}/manifests/{reference}"));
    let r = client.send("HEAD", &url, scope, &[("accept", ACCEPT)], Body::Empty)?;
    client.note_rate_limit(&r);
    match r.status {
        200 => Ok(Some(ManifestHead {
            digest: r
                .header("docker-content-digest")
                .and_then(|d| Digest::parse(d.trim()).ok()),
            media_type: r.header("content-type").map(media_type_of),
            size: r
                .header("content-length")
                .and_then(|n| n.trim().parse().ok()),
        })),
        404 => Ok(None),
        _ => Err(client.unexpected("HEAD", &url, scope, &r)),
    }
}

/// A manifest as served: its exact bytes and the headers that describe it.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub url: String,
    pub bytes: Vec<u8>,
    pub media_type: Option<String>,
    /// `Docker-Content-Digest`.
    pub digest: Option<Digest>,
}

/// `GET /v2/<repo>/manifests/<reference>` (at most 4 MiB, as the registry
/// caps manifests): `None` if there is none.
pub fn get_manifest(
    client: &Client,
    repo: &str,
    reference: &str,
    scope: &Scope,
) -> Result<Option<Fetched>> {
    let url = client.url(&format!("/v2/{repo}/manifests/{reference}"));
    let r = client.send("GET", &url, scope, &[("accept", ACCEPT)], Body::Empty)?;
    client.note_rate_limit(&r);
    match r.status {
        200 => Ok(Some(Fetched {
            digest: r
                .header("docker-content-digest")
                .and_then(|d| Digest::parse(d.trim()).ok()),
            media_type: r.header("content-type").map(media_type_of),
            bytes: r.body,
            url,
        })),
        404 => Ok(None),
        _ => Err(client.unexpected("GET", &url, scope, &r)),
    }
}

/// `HEAD /v2/<repo>/blobs/<digest>`: its size, or `None` if the registry
/// has no such blob.
pub fn blob_size(
    client: &Client,
    repo: &str,
    digest: &Digest,
    scope: &Scope,
) -> Result<Option<u64>> {
    let url = client.url(&format!("/v2/{repo}/blobs/{digest}"));
    let r = client.send("HEAD", &url, scope, &[], Body::Empty)?;
    match r.status {
        200 => Ok(r
            .header("content-length")
            .and_then(|n| n.trim().parse().ok())),
        404 => Ok(None),
        _ => Err(client.unexpected("HEAD", &url, scope, &r)),
    }
}

/// A blob's body on the wire, and its length when the registry said.
pub struct BlobBody {
    pub reader: BodyReader,
    pub len: Option<u64>,
    pub url: String,
}

/// `GET /v2/<repo>/blobs/<digest>`, its body left to be streamed (a
/// redirect to storage is followed, without the registry's credentials):
/// `None` if the registry has no such blob.
pub fn open_blob(
    client: &Client,
    repo: &str,
    digest: &Digest,
    scope: &Scope,
) -> Result<Option<BlobBody>> {
    let url = client.url(&format!("/v2/{repo}/blobs/{digest}"));
    let r = client.open("GET", &url, scope, &[])?;
    match r.status {
        200 => {
            let len = r
                .header("content-length")
                .and_then(|n| n.trim().parse().ok());
            Ok(Some(BlobBody {
                reader: r.into_reader(),
                len,
                url,
            }))
        }
        s => {
            let reply = r.into_reply("GET")?;
            if s == 404 {
                Ok(None)
            } else {
                Err(client.unexpected("GET", &url, scope, &reply))
            }
        }
    }
}

/// `n` for paged listings (`REGKIT_TEST_PAGE_SIZE` makes pages small, for
/// tests of paging).
pub fn page_size() -> usize {
    std::env::var("REGKIT_TEST_PAGE_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1000)
}

/// The `rel="next"` target of a `Link` header, if any.
fn next_link(r: &Reply) -> Option<String> {
    let link = r.header("link")?;
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| {
                target
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
    })
}

/// Reads every page of a listing that starts at `path`: `Ok(None)` if the
/// first page is a 404. `field` is the JSON array each page holds.
fn paged(client: &Client, path: &str, field: &str, scope: &Scope) -> Result<Option<Vec<String>>> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut url = client.url(&format!("{path}{sep}n={}", page_size()));
    let mut out: Vec<String> = Vec::new();
    for _ in 0..100_000 {
        let r = client.retrying(|| {
            let r = client.send("GET", &url, scope, &[], Body::Empty)?;
            match r.status {
                200 | 404 => Ok(r),
                _ => Err(client.unexpected("GET", &url, scope, &r)),
            }
        })?;
        if r.status == 404 {
            return if out.is_empty() {
                Ok(None)
            } else {
                Ok(Some(out))
            };
        }
        let doc: serde_json::Value = serde_json::from_slice(&r.body).map_err(|e| {
            RemoteError::Protocol {
                url: url.clone(),
                message: format!("the listing is not JSON: {e}"),
            }
            .into_error()
        })?;
        let page: Vec<String> = doc
            .get(field)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let last = page.last().cloned();
        out.extend(page);
        match next_link(&r) {
            Some(next) => url = client.resolve(&next),
            None => break,
        }
        if last.is_none() {
            break;
        }
    }
    Ok(Some(out))
}

/// Every tag of `repo` (`GET /v2/<repo>/tags/list`, paged): `None` if the
/// registry does not know the repository.
pub fn tags(client: &Client, repo: &str) -> Result<Option<Vec<String>>> {
    paged(
        client,
        &format!("/v2/{repo}/tags/list"),
        "tags",
        &Scope::pull(repo),
    )
}

/// What `GET /v2/_catalog` answered.
pub enum Catalog {
    Repositories(Vec<String>),
    /// The registry does not list its repositories to this account (Harbor
    /// and Docker Hub refuse `_catalog`): its status and message.
    Refused {
        status: u16,
        message: String,
    },
}

/// Every repository `GET /v2/_catalog` lists (paged).
pub fn catalog(client: &Client) -> Result<Catalog> {
    let scope = Scope::catalog();
    let first = client.url(&format!("/v2/_catalog?n={}", page_size()));
    let probe = client.retrying(|| {
        let r = client.send("GET", &first, &scope, &[], Body::Empty)?;
        match r.status {
            s if s >= 500 || s == 429 => Err(client.unexpected("GET", &first, &scope, &r)),
            _ => Ok(r),
        }
    });
    let probe = match probe {
        Ok(r) => r,
        Err(e) => match e.root() {
            crate::Error::Remote(
                r @ (RemoteError::Denied { .. }
                | RemoteError::NoCredentials { .. }
                | RemoteError::BadCredentials { .. }),
            ) => {
                return Ok(Catalog::Refused {
                    status: 401,
                    message: r.to_string(),
                })
            }
            _ => return Err(e),
        },
    };
    if probe.status != 200 {
        return Ok(Catalog::Refused {
            status: probe.status,
            message: probe.message(),
        });
    }
    let all = paged(client, "/v2/_catalog", "repositories", &scope)?;
    Ok(Catalog::Repositories(all.unwrap_or_default()))
}

/// `GET /v2/<repo>/referrers/<digest>` (OCI distribution 1.1): the
/// descriptors of the manifests whose `subject` is `digest`, or `None` when
/// the registry does not serve the API.
pub fn referrers(client: &Client, repo: &str, digest: &Digest) -> Result<Option<Vec<Descriptor>>> {
    let url = client.url(&format!("/v2/{repo}/referrers/{digest}"));
    let scope = Scope::pull(repo);
    let r = client.retrying(|| {
        let r = client.send(
            "GET",
            &url,
            &scope,
            &[("accept", "application/vnd.oci.image.index.v1+json")],
            Body::Empty,
        )?;
        match r.status {
            s if s >= 500 || s == 429 => Err(client.unexpected("GET", &url, &scope, &r)),
            _ => Ok(r),
        }
    })?;
    let is_index = r
        .header("content-type")
        .is_some_and(|t| media_type_of(t) == crate::media::OCI_INDEX);
    if r.status != 200 || !is_index {
        return Ok(None);
    }
    #[derive(serde::Deserialize)]
    struct Index {
        #[serde(default)]
        manifests: Vec<Descriptor>,
    }
    let index: Index = serde_json::from_slice(&r.body).map_err(|e| {
        RemoteError::Protocol {
            url: url.clone(),
            message: format!("the referrers answer is not an OCI index: {e}"),
        }
        .into_error()
    })?;
    Ok(Some(index.manifests))
}

/// A `Content-Type` without its parameters.
fn media_type_of(v: &str) -> String {
    v.split(';').next().unwrap_or("").trim().to_string()
}

/// Docker Hub's `RateLimit-Remaining: 76;w=21600` (and `RateLimit-Limit`):
/// manifest GETs left in the window, and the window in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RateLimit {
    pub remaining: u64,
    pub limit: Option<u64>,
    pub window_seconds: Option<u64>,
}

impl RateLimit {
    /// The rate limit a reply names, if any.
    pub fn of(r: &Reply) -> Option<RateLimit> {
        let (remaining, w1) = parse_rate(r.header("ratelimit-remaining")?)?;
        let (limit, w2) = match r.header("ratelimit-limit").and_then(parse_rate) {
            Some((l, w)) => (Some(l), w),
            None => (None, None),
        };
        Some(RateLimit {
            remaining,
            limit,
            window_seconds: w1.or(w2),
        })
    }
}

/// `76;w=21600` → (76, Some(21600)).
fn parse_rate(v: &str) -> Option<(u64, Option<u64>)> {
    let mut parts = v.split(';');
    let n = parts.next()?.trim().parse().ok()?;
    let w = parts.find_map(|p| {
        p.trim()
            .strip_prefix("w=")
            .and_then(|w| w.trim().parse().ok())
    });
    Some((n, w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(headers: &[(&'static str, &str)]) -> Reply {
        let mut h = ureq::http::HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, v.parse().unwrap());
        }
        Reply {
            status: 200,
            headers: h,
            body: Vec::new(),
        }
    }

    #[test]
    fn reads_docker_hub_rate_limits() {
        let r = reply(&[
            ("ratelimit-limit", "100;w=21600"),
            ("ratelimit-remaining", "76;w=21600"),
        ]);
        assert_eq!(
            RateLimit::of(&r),
            Some(RateLimit {
                remaining: 76,
                limit: Some(100),
                window_seconds: Some(21600)
            })
        );
        assert_eq!(
            RateLimit::of(&reply(&[("ratelimit-remaining", "0")])).map(|l| l.remaining),
            Some(0)
        );
        assert_eq!(RateLimit::of(&reply(&[])), None);
        assert_eq!(RateLimit::of(&reply(&[("ratelimit-remaining", "x")])), None);
    }

    #[test]
    fn follows_link_headers() {
        let r = reply(&[("link", r#"</v2/_catalog?last=b&n=2>; rel="next""#)]);
        assert_eq!(next_link(&r).as_deref(), Some("/v2/_catalog?last=b&n=2"));
        let r = reply(&[("link", r#"<https://h/x?p=2>; rel="prev""#)]);
        assert_eq!(next_link(&r), None);
    }
}
