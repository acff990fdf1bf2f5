//! The pull half of the Registry HTTP API V2 (and the OCI referrers API)
//! over a [`Store`]: it never knows whether the tree is a folder, a bucket
//! or a tarball.
//!
//! Behaviour follows distribution's handlers where the spec leaves room:
//! an OCI manifest or index is served only to a client whose `Accept` names
//! its type, a Docker manifest list asked for by tag without the list type
//! in `Accept` is answered with its linux/amd64 image, `ETag` is the quoted
//! digest and `If-None-Match` gives 304. Manifests are served as their exact
//! stored bytes once their sha256 was checked; blobs once their size was
//! checked, and their digest on the first read of each (a damaged blob's
//! body ends early: the client never takes it for good).

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use bytes::Bytes;
use serde_json::json;

use super::auth::{Htpasswd, REALM};
use super::body;
use super::index::Index;
use super::route::{self, NoRoute, Route};
use crate::digest::Digest;
use crate::manifest::Manifest;
use crate::media::ManifestKind;
use crate::paths::{self, Spec};
use crate::store::Store;

/// A manifest read, checked and parsed once.
pub struct Stored {
    pub bytes: Bytes,
    pub kind: ManifestKind,
    /// For a Docker manifest list: its linux/amd64 entry.
    pub amd64: Option<Digest>,
}

/// What a blob was found to be when first read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    Good,
    Damaged,
}

/// Manifests kept in memory (they are content-addressed, so never stale),
/// up to this many bytes.
const MANIFEST_CACHE_BYTES: usize = 8 << 20;

pub struct Registry {
    pub store: Store,
    pub index: Index,
    pub htpasswd: Option<Htpasswd>,
    manifests: Mutex<(HashMap<Digest, Arc<Stored>>, usize)>,
    blobs: Mutex<HashMap<Digest, Checked>>,
}

/// A registry error: status, code, message.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    fn manifest_unknown(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", m)
    }
    fn blob_unknown(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", m)
    }
    fn name_unknown(name: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            format!("repository name not known to registry: {name}"),
        )
    }
    fn digest_invalid(s: &str) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            format!("invalid digest: {s}"),
        )
    }
    /// Damage or a read failure in the tree: logged with its path, answered
    /// as distribution's `UNKNOWN`.
    fn internal(message: String) -> ApiError {
        eprintln!("error: {message}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", message)
    }

    pub fn response(self, head: bool) -> Response<Body> {
        let body = serde_json::to_vec(&json!({
            "errors": [{"code": self.code, "message": self.message}]
        }))
        .expect("serializable");
        let mut r = Response::builder()
            .status(self.status)
            .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
            .header(header::CONTENT_LENGTH, body.len());
        if self.status == StatusCode::UNAUTHORIZED {
            r = r.header(header::WWW_AUTHENTICATE, format!("Basic realm=\"{REALM}\""));
        }
        let body = if head {
            Body::empty()
        } else {
            Body::from(body)
        };
        r.body(body).expect("valid response")
    }
}

type ApiResult = Result<Response<Body>, ApiError>;

impl Registry {
    pub fn new(store: Store, index: Index, htpasswd: Option<Htpasswd>) -> Registry {
        Registry {
            store,
            index,
            htpasswd,
            manifests: Mutex::new((HashMap::new(), 0)),
            blobs: Mutex::new(HashMap::new()),
        }
    }

    /// Answers one request.
    pub async fn handle(self: Arc<Self>, req: Request<Body>) -> Response<Body> {
        let head = req.method() == Method::HEAD;
        let mut resp = match self.clone().answer(req).await {
            Ok(r) => r,
            Err(e) => e.response(head),
        };
        resp.headers_mut().insert(
            "Docker-Distribution-API-Version",
            HeaderValue::from_static("registry/2.0"),
        );
        resp
    }

    async fn answer(self: Arc<Self>, req: Request<Body>) -> ApiResult {
        if let Some(h) = &self.htpasswd {
            let auth = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let ok = h.known_good(auth.as_deref()) || {
                let me = self.clone();
                tokio::task::spawn_blocking(move || {
                    me.htpasswd
                        .as_ref()
                        .is_some_and(|h| h.allows(auth.as_deref()))
                })
                .await
                .unwrap_or(false)
            };
            if !ok {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHORIZED",
                    "authentication required",
                ));
            }
        }
        let route = match route::parse(req.uri().path()) {
            Ok(r) => r,
            Err(NoRoute::NameInvalid(n)) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "NAME_INVALID",
                    format!("invalid repository name: {n}"),
                ))
            }
            Err(NoRoute::NotFound) => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    "no such endpoint",
                ))
            }
        };
        let head = match *req.method() {
            Method::GET => false,
            Method::HEAD => true,
            _ => {
                return Err(ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "UNSUPPORTED",
                    "this registry is read-only: it serves pulls only",
                ))
            }
        };
        let query = req.uri().query().map(str::to_string);
        let headers = req.headers();
        match route {
            Route::Base => Ok(json_response(b"{}".to_vec(), "application/json", head)),
            Route::Catalog => self.catalog(query.as_deref(), head),
            Route::Tags(name) => self.tags(&name, query.as_deref(), head).await,
            Route::Manifest(name, reference) => {
                self.manifest(&name, &reference, headers, head).await
            }
            Route::Blob(name, digest) => self.blob(&name, &digest, headers, head).await,
            Route::Referrers(name, digest) => {
                self.referrers(&name, &digest, query.as_deref(), head)
            }
            Route::Upload => Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "UNSUPPORTED",
                "this registry is read-only: it takes no uploads",
            )),
        }
    }

    fn known(&self, name: &str) -> Result<(), ApiError> {
        match self
            .index
            .repositories
            .binary_search_by(|r| r.as_str().cmp(name))
        {
            Ok(_) => Ok(()),
            Err(_) => Err(ApiError::name_unknown(name)),
        }
    }

    /// Runs blocking store work off the async workers.
    async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Registry) -> T + Send + 'static,
    ) -> T {
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(&me))
            .await
            .expect("the store work does not panic")
    }

    fn catalog(&self, query: Option<&str>, head: bool) -> ApiResult {
        let (page, next) = paginate(&self.index.repositories, query)?;
        let body = serde_json::to_vec(&json!({ "repositories": page })).expect("json");
        let mut r = json_response(body, "application/json", head);
        if let Some((n, last)) = next {
            link_next(
                &mut r,
                &format!("/v2/_catalog?last={}&n={n}", escape(&last)),
            );
        }
        Ok(r)
    }

    async fn tags(self: &Arc<Self>, name: &str, query: Option<&str>, head: bool) -> ApiResult {
        self.known(name)?;
        let n = name.to_string();
        let listed = self
            .blocking(move |r| r.store.list(&Spec::TagsRoot(&n)))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let mut tags: Vec<String> = listed
            .into_iter()
            .filter(|e| e.is_dir && paths::is_valid_tag(&e.name))
            .map(|e| e.name)
            .collect();
        tags.sort();
        let (page, next) = paginate(&tags, query)?;
        let body = serde_json::to_vec(&json!({ "name": name, "tags": page })).expect("json");
        let mut r = json_response(body, "application/json", head);
        if let Some((n, last)) = next {
            link_next(
                &mut r,
                &format!("/v2/{name}/tags/list?last={}&n={n}", escape(&last)),
            );
        }
        Ok(r)
    }

    fn referrers(&self, name: &str, digest: &str, query: Option<&str>, head: bool) -> ApiResult {
        self.known(name)?;
        let subject = Digest::parse(digest).map_err(|_| ApiError::digest_invalid(digest))?;
        let filter = route::query_param(query, "artifactType");
        let all = self
            .index
            .referrers
            .get(&(name.to_string(), subject))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let manifests: Vec<_> = all
            .iter()
            .filter(|r| {
                filter
                    .as_ref()
                    .is_none_or(|f| r.artifact_type.as_deref() == Some(f.as_str()))
            })
            .collect();
        let body = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": crate::media::OCI_INDEX,
            "manifests": manifests,
        }))
        .expect("json");
        let mut r = json_response(body, crate::media::OCI_INDEX, head);
        if filter.is_some() {
            r.headers_mut().insert(
                "OCI-Filters-Applied",
                HeaderValue::from_static("artifactType"),
            );
        }
        Ok(r)
    }

    /// The manifest `digest`, served by `name`: its revision link must be
    /// there, and its bytes must have its digest.
    fn stored(&self, name: &str, digest: &Digest) -> Result<Arc<Stored>, ApiError> {
        match self.store.read_link(&Spec::RevisionLink(name, digest)) {
            Ok(Some(d)) if &d == digest => {}
            Ok(_) => {
                return Err(ApiError::manifest_unknown(format!(
                    "manifest unknown: {name}@{digest}"
                )))
            }
            Err(e) => return Err(ApiError::internal(e.to_string())),
        }
        if let Some(s) = self.manifests.lock().expect("not poisoned").0.get(digest) {
            return Ok(s.clone());
        }
        let bytes = match self.store.read_blob(digest, "manifest") {
            Ok(b) => b,
            Err(crate::Error::MissingBlob { .. }) => {
                return Err(ApiError::manifest_unknown(format!(
                    "manifest unknown: {name}@{digest} (its blob is missing)"
                )))
            }
            Err(e) => return Err(ApiError::internal(e.to_string())),
        };
        let path = self.store.display(&Spec::BlobData(digest));
        let actual = crate::digest::hash_reader(digest.algorithm(), &bytes[..])
            .map(|(d, _)| d)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        if &actual != digest {
            return Err(ApiError::internal(format!(
                "manifest {digest} is damaged: its bytes have the digest {actual} ({})",
                path.display()
            )));
        }
        let m = Manifest::parse(&bytes).map_err(|e| {
            ApiError::internal(format!(
                "manifest {digest} cannot be read: {e} ({})",
                path.display()
            ))
        })?;
        let amd64 = m
            .children
            .iter()
            .find(|c| {
                c.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
            })
            .map(|c| c.digest.clone());
        let stored = Arc::new(Stored {
            bytes: Bytes::from(bytes),
            kind: m.kind,
            amd64,
        });
        let mut cache = self.manifests.lock().expect("not poisoned");
        if cache.1 + stored.bytes.len() > MANIFEST_CACHE_BYTES {
            cache.0.clear();
            cache.1 = 0;
        }
        cache.1 += stored.bytes.len();
        cache.0.insert(digest.clone(), stored.clone());
        Ok(stored)
    }

    async fn manifest(
        self: &Arc<Self>,
        name: &str,
        reference: &str,
        headers: &HeaderMap,
        head: bool,
    ) -> ApiResult {
        self.known(name)?;
        let accept = Accepts::from(headers);
        let if_none_match = if_none_match(headers);
        let (n, r) = (name.to_string(), reference.to_string());
        self.blocking(move |reg| reg.manifest_now(&n, &r, accept, if_none_match, head))
            .await
    }

    fn manifest_now(
        &self,
        name: &str,
        reference: &str,
        accept: Accepts,
        if_none_match: Vec<String>,
        head: bool,
    ) -> ApiResult {
        let by_tag = !reference.contains(':');
        let mut digest = if by_tag {
            if !paths::is_valid_tag(reference) {
                return Err(ApiError::manifest_unknown(format!(
                    "invalid tag: {reference}"
                )));
            }
            match self.store.read_link(&Spec::TagCurrentLink(name, reference)) {
                Ok(Some(d)) => d,
                Ok(None) => {
                    return Err(ApiError::manifest_unknown(format!(
                        "manifest unknown: {name}:{reference}"
                    )))
                }
                Err(e) => return Err(ApiError::internal(e.to_string())),
            }
        } else {
            Digest::parse(reference).map_err(|_| ApiError::digest_invalid(reference))?
        };
        if etag_matches(&if_none_match, &digest) {
            return Ok(not_modified(&digest));
        }
        let mut stored = self.stored(name, &digest)?;
        match stored.kind {
            ManifestKind::OciManifest if !accept.oci_manifest => {
                return Err(ApiError::manifest_unknown(
                    "OCI manifest found, but accept header does not support OCI manifests",
                ))
            }
            ManifestKind::OciIndex if !accept.oci_index => {
                return Err(ApiError::manifest_unknown(
                    "OCI index found, but accept header does not support OCI indexes",
                ))
            }
            ManifestKind::DockerManifestList if by_tag && !accept.docker_list => {
                // An old client: the linux/amd64 image, as distribution does.
                let Some(child) = stored.amd64.clone() else {
                    return Err(ApiError::manifest_unknown(
                        "manifest list found, but accept header does not support manifest lists, and it has no linux/amd64 image",
                    ));
                };
                let c = self.stored(name, &child)?;
                if c.kind != ManifestKind::DockerManifest || !accept.docker_manifest {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "MANIFEST_INVALID",
                        "Schema 2 manifest not supported by client",
                    ));
                }
                digest = child;
                stored = c;
            }
            _ => {}
        }
        let mut r = Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, stored.kind.media_type())
            .header(header::CONTENT_LENGTH, stored.bytes.len())
            .header("Docker-Content-Digest", digest.as_str())
            .header(header::ETAG, format!("\"{digest}\""));
        if !by_tag {
            r = r.header(header::CACHE_CONTROL, "max-age=31536000");
        }
        let body = if head {
            Body::empty()
        } else {
            Body::from(stored.bytes.clone())
        };
        Ok(r.body(body).expect("valid response"))
    }

    fn checked(&self, digest: &Digest) -> Option<Checked> {
        self.blobs
            .lock()
            .expect("not poisoned")
            .get(digest)
            .copied()
    }

    /// Records what the first full read of a blob found.
    pub fn record(&self, digest: &Digest, c: Checked) {
        self.blobs
            .lock()
            .expect("not poisoned")
            .insert(digest.clone(), c);
    }

    async fn blob(
        self: &Arc<Self>,
        name: &str,
        digest: &str,
        headers: &HeaderMap,
        head: bool,
    ) -> ApiResult {
        self.known(name)?;
        let digest = Digest::parse(digest).map_err(|_| ApiError::digest_invalid(digest))?;
        let range = headers
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let if_none_match = if_none_match(headers);
        let (n, d) = (name.to_string(), digest.clone());
        let found = self.blocking(move |r| r.blob_source(&n, &d)).await?;
        if etag_matches(&if_none_match, &digest) {
            return Ok(not_modified(&digest));
        }
        let size = found.len;
        let (status, start, len) = match range.as_deref().map(|r| parse_range(r, size)) {
            None | Some(RangeSpec::Ignore) => (StatusCode::OK, 0, size),
            Some(RangeSpec::Unsatisfiable) => {
                return Ok(Response::builder()
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                    .header(header::CONTENT_LENGTH, 0)
                    .body(Body::empty())
                    .expect("valid response"))
            }
            Some(RangeSpec::Bytes(a, b)) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        };
        let mut r = Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, len)
            .header(header::ACCEPT_RANGES, "bytes")
            .header("Docker-Content-Digest", digest.as_str())
            .header(header::ETAG, format!("\"{digest}\""))
            .header(header::CACHE_CONTROL, "max-age=31536000");
        if status == StatusCode::PARTIAL_CONTENT {
            r = r.header(
                header::CONTENT_RANGE,
                format!("bytes {start}-{}/{size}", start + len - 1),
            );
        }
        if head {
            return Ok(r.body(Body::empty()).expect("valid response"));
        }
        let checked = self.checked(&digest);
        let hash = match checked {
            Some(Checked::Good) => false,
            Some(Checked::Damaged) => return Err(self.damaged(&digest)),
            // The first read of the whole blob checks it on the way.
            None if len == size => true,
            // A part of a blob not yet checked: check the whole first.
            None => {
                let (d, src) = (digest.clone(), found.clone());
                let c = self
                    .blocking(move |r| {
                        let c = body::check_whole(&src, &d);
                        r.record(&d, c);
                        c
                    })
                    .await;
                if c == Checked::Damaged {
                    return Err(self.damaged(&digest));
                }
                false
            }
        };
        let body = body::send(self.clone(), found, start, len, hash.then_some(digest));
        Ok(r.body(body).expect("valid response"))
    }

    fn damaged(&self, digest: &Digest) -> ApiError {
        let path = self.store.display(&Spec::BlobData(digest));
        ApiError::internal(format!(
            "blob {digest} is damaged: its bytes do not have its digest ({})",
            path.display()
        ))
    }

    /// Where the blob `digest` that `name` may serve lies, its size checked.
    fn blob_source(&self, name: &str, digest: &Digest) -> Result<body::Source, ApiError> {
        let linked = |spec: Spec| match self.store.read_link(&spec) {
            Ok(Some(d)) => Ok(&d == digest),
            Ok(None) => Ok(false),
            Err(e) => Err(ApiError::internal(e.to_string())),
        };
        if !linked(Spec::LayerLink(name, digest))? && !linked(Spec::RevisionLink(name, digest))? {
            return Err(ApiError::blob_unknown(format!(
                "blob unknown to registry: {name}@{digest}"
            )));
        }
        let source = body::Source::open(&self.store, digest).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => {
                ApiError::blob_unknown(format!("blob unknown to registry: {name}@{digest}"))
            }
            _ => ApiError::internal(format!(
                "cannot read blob {digest}: {e} ({})",
                self.store.display(&Spec::BlobData(digest)).display()
            )),
        })?;
        if let Some(want) = self.index.sizes.get(digest) {
            if *want != source.len {
                return Err(ApiError::internal(format!(
                    "blob {digest} is damaged: {} bytes where its manifests say {want} ({})",
                    source.len,
                    self.store.display(&Spec::BlobData(digest)).display()
                )));
            }
        }
        Ok(source)
    }

    /// Checks every blob the manifests name, up front (`--verify`); returns
    /// how many were checked and the damaged ones, each recorded.
    pub fn verify_all(&self) -> (usize, Vec<String>) {
        use rayon::prelude::*;
        let digests: Vec<&Digest> = self.index.sizes.keys().collect();
        let found: Vec<(Digest, Option<String>)> = digests
            .par_iter()
            .map(|d| {
                let problem = match body::Source::open(&self.store, d) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                    Err(e) => Some(format!("{d}: {e}")),
                    Ok(src) if Some(&src.len) != self.index.sizes.get(*d) => Some(format!(
                        "{d}: {} bytes where its manifests say {}",
                        src.len, self.index.sizes[*d]
                    )),
                    Ok(src) => match body::check_whole(&src, d) {
                        Checked::Good => None,
                        Checked::Damaged => Some(format!("{d}: its bytes do not have its digest")),
                    },
                };
                ((*d).clone(), problem)
            })
            .collect();
        let mut damaged = Vec::new();
        for (d, problem) in found {
            match problem {
                None => self.record(&d, Checked::Good),
                Some(p) => {
                    self.record(&d, Checked::Damaged);
                    damaged.push(format!(
                        "{p} ({})",
                        self.store.display(&Spec::BlobData(&d)).display()
                    ));
                }
            }
        }
        damaged.sort();
        (digests.len(), damaged)
    }
}

/// Which manifest types a client takes (distribution ignores `q=`).
#[derive(Debug, Clone, Copy, Default)]
struct Accepts {
    docker_manifest: bool,
    docker_list: bool,
    oci_manifest: bool,
    oci_index: bool,
}

impl Accepts {
    fn from(headers: &HeaderMap) -> Accepts {
        let mut a = Accepts::default();
        for v in headers.get_all(header::ACCEPT) {
            let Ok(v) = v.to_str() else { continue };
            for t in v.split(',') {
                let t = t
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                match t.as_str() {
                    crate::media::DOCKER_MANIFEST => a.docker_manifest = true,
                    crate::media::DOCKER_MANIFEST_LIST => a.docker_list = true,
                    crate::media::OCI_MANIFEST => a.oci_manifest = true,
                    crate::media::OCI_INDEX => a.oci_index = true,
                    _ => {}
                }
            }
        }
        a
    }
}

fn if_none_match(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().trim_start_matches("W/").to_string())
        .collect()
}

/// Quoted or not, as distribution compares them.
fn etag_matches(values: &[String], digest: &Digest) -> bool {
    values
        .iter()
        .any(|v| v == digest.as_str() || v.trim_matches('"') == digest.as_str() || v == "*")
}

fn not_modified(digest: &Digest) -> Response<Body> {
    Response::builder()
        .status(StatusCode::NOT_MODIFIED)
        .header(header::ETAG, format!("\"{digest}\""))
        .header("Docker-Content-Digest", digest.as_str())
        .body(Body::empty())
        .expect("valid response")
}

fn json_response(body: Vec<u8>, content_type: &str, head: bool) -> Response<Body> {
    let r = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, body.len());
    let body = if head {
        Body::empty()
    } else {
        Body::from(body)
    };
    r.body(body).expect("valid response")
}

fn link_next(r: &mut Response<Body>, url: &str) {
    if let Ok(v) = HeaderValue::from_str(&format!("<{url}>; rel=\"next\"")) {
        r.headers_mut().insert(header::LINK, v);
    }
}

/// Escapes a tag or name for a query string.
fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'_' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The page `n`/`last` ask for of a sorted list, and the `n` and last entry
/// for the next page's link when more follow.
#[allow(clippy::type_complexity)]
fn paginate<'a>(
    all: &'a [String],
    query: Option<&str>,
) -> Result<(&'a [String], Option<(usize, String)>), ApiError> {
    let n = match route::query_param(query, "n") {
        None => None,
        Some(v) if v.is_empty() => None,
        Some(v) => Some(v.parse::<usize>().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "PAGINATION_NUMBER_INVALID",
                format!("invalid number of results requested: {v}"),
            )
        })?),
    };
    let start = match route::query_param(query, "last") {
        Some(last) if !last.is_empty() => all.partition_point(|t| t.as_str() <= last.as_str()),
        _ => 0,
    };
    let rest = &all[start..];
    match n {
        Some(n) if n < rest.len() => {
            let page = &rest[..n];
            let next = page.last().map(|l| (n, l.clone()));
            Ok((page, next))
        }
        _ => Ok((rest, None)),
    }
}

/// A `Range` header against a blob of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
enum RangeSpec {
    /// Not one byte range we can answer: the whole blob (RFC 9110 lets a
    /// server ignore Range).
    Ignore,
    Unsatisfiable,
    /// First and last byte, inclusive.
    Bytes(u64, u64),
}

fn parse_range(value: &str, size: u64) -> RangeSpec {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeSpec::Ignore;
    };
    if spec.contains(',') {
        return RangeSpec::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeSpec::Ignore;
    };
    let num = |s: &str| s.trim().parse::<u64>().ok();
    match (a.trim().is_empty(), b.trim().is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match num(b) {
            Some(0) => RangeSpec::Unsatisfiable,
            Some(_) if size == 0 => RangeSpec::Unsatisfiable,
            Some(n) => RangeSpec::Bytes(size.saturating_sub(n), size - 1),
            None => RangeSpec::Ignore,
        },
        (false, _) => {
            let Some(first) = num(a) else {
                return RangeSpec::Ignore;
            };
            let last = if b.trim().is_empty() {
                None
            } else {
                match num(b) {
                    Some(l) if l >= first => Some(l),
                    _ => return RangeSpec::Ignore,
                }
            };
            if first >= size {
                return RangeSpec::Unsatisfiable;
            }
            RangeSpec::Bytes(first, last.unwrap_or(size - 1).min(size - 1))
        }
        (true, true) => RangeSpec::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        let cases = [
            ("bytes=0-9", RangeSpec::Bytes(0, 9)),
            ("bytes=5-", RangeSpec::Bytes(5, 99)),
            ("bytes=90-200", RangeSpec::Bytes(90, 99)),
            ("bytes=-10", RangeSpec::Bytes(90, 99)),
            ("bytes=-500", RangeSpec::Bytes(0, 99)),
            ("bytes=100-", RangeSpec::Unsatisfiable),
            ("bytes=100-120", RangeSpec::Unsatisfiable),
            ("bytes=-0", RangeSpec::Unsatisfiable),
            ("bytes=9-5", RangeSpec::Ignore),
            ("bytes=0-1,5-6", RangeSpec::Ignore),
            ("items=0-1", RangeSpec::Ignore),
            ("bytes=x-", RangeSpec::Ignore),
        ];
        for (v, want) in &cases {
            assert_eq!(&parse_range(v, 100), want, "{v}");
        }
        assert_eq!(cases.len(), 12);
    }

    #[test]
    fn pages_follow_last_and_n() {
        let all: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let page = |q: &str| {
            let (p, next) = paginate(&all, Some(q)).ok().unwrap();
            (p.to_vec(), next)
        };
        assert_eq!(
            page("n=2"),
            (vec!["a".into(), "b".into()], Some((2, "b".into())))
        );
        assert_eq!(page("n=2&last=b"), (vec!["c".into(), "d".into()], None));
        assert_eq!(page("last=bb"), (vec!["c".into(), "d".into()], None));
        assert_eq!(page("n=0"), (vec![], None));
        assert!(paginate(&all, Some("n=x")).is_err());
    }
}
