//! The S3 REST calls regkit needs, over the same blocking HTTP client as
//! the registry transport (ureq, rustls): flat and folder listings with
//! paging and start-after, ranged GETs as streams, HEAD, PUT, multipart
//! uploads (also listing and aborting other clients' pending ones),
//! server-side copy, batched deletes. Every request is signed (SigV4) and
//! counted; 5xx, 429 and dropped connections are retried with backoff.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use ureq::http;

use super::sigv4::{self, Credentials};
use super::xml;

/// Where the bucket is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http` or `https`.
    pub scheme: String,
    /// `host[:port]`.
    pub host: String,
    /// `/bucket/key` addressing (MinIO, Ceph, moto, any explicit endpoint)
    /// rather than `bucket.host/key`.
    pub path_style: bool,
}

/// An S3 error answer (or a transport failure, `status` 0).
#[derive(Debug, Clone)]
pub struct S3Error {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub url: String,
}

impl std::fmt::Display for S3Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            0 => write!(f, "{} unreachable: {}", self.url, self.message),
            s => write!(f, "{} {}: {} ({s})", self.url, self.code, self.message),
        }
    }
}

impl std::error::Error for S3Error {}

impl S3Error {
    pub fn not_found(&self) -> bool {
        self.status == 404
    }

    fn retryable(&self) -> bool {
        matches!(self.status, 0 | 429 | 500 | 502 | 503 | 504)
            || self.code == "SlowDown"
            || self.code == "InternalError"
    }
}

impl From<S3Error> for io::Error {
    fn from(e: S3Error) -> io::Error {
        // A request ended by Ctrl-C (the agent shut down) is an interrupt.
        if crate::interrupt::interrupted() {
            return crate::interrupt::io_error();
        }
        let kind = match e.status {
            404 => io::ErrorKind::NotFound,
            403 => io::ErrorKind::PermissionDenied,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

pub type Result<T> = std::result::Result<T, S3Error>;

/// An object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub key: String,
    pub size: u64,
    pub modified: Option<SystemTime>,
}

/// One page of a listing.
#[derive(Debug, Default)]
pub struct Page {
    pub objects: Vec<Object>,
    /// Common prefixes (folders) when listed with a delimiter.
    pub prefixes: Vec<String>,
    pub next: Option<String>,
}

/// A multipart upload another client left pending.
#[derive(Debug, Clone)]
pub struct PendingUpload {
    pub key: String,
    pub upload_id: String,
    pub initiated: Option<SystemTime>,
}

pub struct Client {
    agent: ureq::Agent,
    /// Ends requests in flight on Ctrl-C.
    _watch: crate::interrupt::Watch,
    pub endpoint: Endpoint,
    pub bucket: String,
    pub region: String,
    creds: Option<Credentials>,
    requests: AtomicU64,
    retries: u32,
}

enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
    Stream(&'a mut dyn Read, u64),
}

impl Client {
    pub fn new(
        agent: ureq::Agent,
        watch: crate::interrupt::Watch,
        endpoint: Endpoint,
        bucket: String,
        region: String,
        creds: Option<Credentials>,
    ) -> Client {
        Client {
            agent,
            _watch: watch,
            endpoint,
            bucket,
            region,
            creds,
            requests: AtomicU64::new(0),
            retries: 4,
        }
    }

    /// Requests sent so far (retries included).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// `s3://bucket/key`, for messages.
    pub fn display(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// (URL, Host header, encoded path) of a key (or the bucket).
    fn locate(&self, key: &str, query: &[(String, String)]) -> (String, String, String) {
        let e = &self.endpoint;
        let key = sigv4::uri_encode(key, true);
        let (host, path) = if e.path_style {
            (e.host.clone(), format!("/{}/{key}", self.bucket))
        } else {
            (format!("{}.{}", self.bucket, e.host), format!("/{key}"))
        };
        let q = sigv4::canonical_query(query);
        let url = if q.is_empty() {
            format!("{}://{host}{path}", e.scheme)
        } else {
            format!("{}://{host}{path}?{q}", e.scheme)
        };
        (url, host, path)
    }

    /// Sends one signed request, retrying what may be retried; returns the
    /// response with its body unread.
    fn send(
        &self,
        method: &str,
        key: &str,
        query: &[(String, String)],
        headers: &[(String, String)],
        mut payload: Payload<'_>,
    ) -> Result<http::Response<ureq::Body>> {
        let mut attempt = 0;
        loop {
            let replayable = !matches!(payload, Payload::Stream(..));
            let r = self.send_once(method, key, query, headers, &mut payload);
            match r {
                Err(e) if e.retryable() && replayable && attempt < self.retries => {
                    attempt += 1;
                    if crate::interrupt::interrupted() {
                        return Err(e);
                    }
                    std::thread::sleep(Duration::from_millis(100 << attempt));
                }
                r => return r,
            }
        }
    }

    fn send_once(
        &self,
        method: &str,
        key: &str,
        query: &[(String, String)],
        headers: &[(String, String)],
        payload: &mut Payload<'_>,
    ) -> Result<http::Response<ureq::Body>> {
        let (url, host, path) = self.locate(key, query);
        self.requests.fetch_add(1, Ordering::Relaxed);
        let hash = match payload {
            Payload::Empty => sigv4::EMPTY_SHA256.to_string(),
            Payload::Bytes(b) => sigv4::sha256_hex(b),
            Payload::Stream(..) => sigv4::UNSIGNED.to_string(),
        };
        let mut b = http::Request::builder().method(method).uri(&url);
        for (k, v) in headers {
            b = b.header(k.as_str(), v.as_str());
        }
        if let Some(creds) = &self.creds {
            let req = sigv4::Request {
                method,
                path: &path,
                query,
                headers,
                host: &host,
                payload: &hash,
            };
            for (k, v) in sigv4::sign(
                &req,
                creds,
                &self.region,
                &sigv4::amz_date(SystemTime::now()),
            ) {
                b = b.header(k, v);
            }
        }
        let fail = |message: String| S3Error {
            status: 0,
            code: String::new(),
            message,
            url: url.clone(),
        };
        let sent = match payload {
            Payload::Empty if method == "GET" || method == "HEAD" => {
                self.agent.run(b.body(()).map_err(|e| fail(e.to_string()))?)
            }
            Payload::Empty => self
                .agent
                .run(b.body(&[][..]).map_err(|e| fail(e.to_string()))?),
            Payload::Bytes(bytes) => self
                .agent
                .run(b.body(*bytes).map_err(|e| fail(e.to_string()))?),
            Payload::Stream(reader, len) => self.agent.run(
                b.header("content-length", len.to_string())
                    .body(ureq::SendBody::from_reader(reader))
                    .map_err(|e| fail(e.to_string()))?,
            ),
        };
        let mut resp = sent.map_err(|e| fail(e.to_string()))?;
        let status = resp.status().as_u16();
        if status < 300 {
            return Ok(resp);
        }
        let body = if method == "HEAD" {
            String::new()
        } else {
            resp.body_mut()
                .with_config()
                .limit(1 << 20)
                .read_to_string()
                .unwrap_or_default()
        };
        let doc = xml::parse(&body).ok();
        let text = |name: &str| {
            doc.as_ref()
                .and_then(|d| d.text_of(name))
                .unwrap_or("")
                .to_string()
        };
        Err(S3Error {
            status,
            code: match text("Code") {
                c if c.is_empty() => http::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("")
                    .to_string(),
                c => c,
            },
            message: text("Message"),
            url,
        })
    }

    fn read_doc(&self, mut resp: http::Response<ureq::Body>, key: &str) -> Result<xml::Element> {
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| self.broken(key, e.to_string()))?;
        let doc =
            xml::parse(&body).map_err(|e| self.broken(key, format!("unreadable answer: {e}")))?;
        // Some calls answer 200 with an error document.
        if doc.name == "Error" {
            return Err(S3Error {
                status: 500,
                code: doc.text_of("Code").unwrap_or("").to_string(),
                message: doc.text_of("Message").unwrap_or("").to_string(),
                url: self.display(key),
            });
        }
        Ok(doc)
    }

    fn broken(&self, key: &str, message: String) -> S3Error {
        S3Error {
            status: 0,
            code: String::new(),
            message,
            url: self.display(key),
        }
    }

    /// One page of ListObjectsV2 below `prefix`: flat, or by folder with a
    /// `delimiter`; from after `start_after`, or on from `token`.
    pub fn list_page(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        start_after: Option<&str>,
        token: Option<&str>,
    ) -> Result<Page> {
        let mut q = vec![
            ("list-type".to_string(), "2".to_string()),
            ("prefix".to_string(), prefix.to_string()),
        ];
        if let Some(d) = delimiter {
            q.push(("delimiter".into(), d.into()));
        }
        if let Some(s) = start_after {
            q.push(("start-after".into(), s.into()));
        }
        if let Some(t) = token {
            q.push(("continuation-token".into(), t.into()));
        }
        let resp = self.send("GET", "", &q, &[], Payload::Empty)?;
        let doc = self.read_doc(resp, prefix)?;
        let mut page = Page::default();
        for c in doc.all("Contents") {
            page.objects.push(Object {
                key: c.text_of("Key").unwrap_or("").to_string(),
                size: c.text_of("Size").and_then(|s| s.parse().ok()).unwrap_or(0),
                modified: c
                    .text_of("LastModified")
                    .and_then(crate::gc::time::parse_rfc3339),
            });
        }
        for p in doc.all("CommonPrefixes") {
            if let Some(p) = p.text_of("Prefix") {
                page.prefixes.push(p.to_string());
            }
        }
        if doc.text_of("IsTruncated") == Some("true") {
            page.next = doc.text_of("NextContinuationToken").map(str::to_string);
        }
        Ok(page)
    }

    /// Every page of a listing, handed to `f` in order.
    pub fn list(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        f: &mut dyn FnMut(Page) -> Result<()>,
    ) -> Result<()> {
        let mut token: Option<String> = None;
        loop {
            let mut page = self.list_page(prefix, delimiter, None, token.as_deref())?;
            let next = page.next.take();
            f(page)?;
            match next {
                Some(t) => token = Some(t),
                None => return Ok(()),
            }
        }
    }

    /// An object's size and modification time; `None` if there is none.
    pub fn head(&self, key: &str) -> Result<Option<Object>> {
        match self.send("HEAD", key, &[], &[], Payload::Empty) {
            Ok(resp) => {
                let h = |n: &str| resp.headers().get(n).and_then(|v| v.to_str().ok());
                Ok(Some(Object {
                    key: key.to_string(),
                    size: h("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0),
                    modified: h("last-modified").and_then(parse_http_date),
                }))
            }
            Err(e) if e.not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// An object as a stream, from `offset` (`None` if there is none).
    pub fn get(&self, key: &str, offset: u64) -> Result<Option<(Box<dyn Read + Send>, u64)>> {
        let headers = if offset > 0 {
            vec![("range".to_string(), format!("bytes={offset}-"))]
        } else {
            Vec::new()
        };
        match self.send("GET", key, &[], &headers, Payload::Empty) {
            Ok(resp) => {
                let len = resp
                    .headers()
                    .get("content-length")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                Ok(Some((Box::new(resp.into_body().into_reader()), len)))
            }
            Err(e) if e.not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Puts small bytes in one request.
    pub fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.send("PUT", key, &[], &[], Payload::Bytes(bytes))
            .map(drop)
    }

    /// Puts small bytes only if the key does not exist (`If-None-Match: *`):
    /// `Ok(false)` if it does. `Ok(None)` where the server does not do
    /// conditional writes (older MinIO and Ceph answer 501).
    pub fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<Option<bool>> {
        let h = [("if-none-match".to_string(), "*".to_string())];
        match self.send("PUT", key, &[], &h, Payload::Bytes(bytes)) {
            Ok(_) => Ok(Some(true)),
            Err(e) if e.status == 412 || e.code == "ConditionalRequestConflict" => Ok(Some(false)),
            Err(e) if e.status == 501 || e.code == "NotImplemented" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Puts exactly `len` bytes of `reader` in one request (up to 5 GiB).
    pub fn put_stream(&self, key: &str, reader: &mut dyn Read, len: u64) -> Result<()> {
        self.send("PUT", key, &[], &[], Payload::Stream(reader, len))
            .map(drop)
    }

    /// Starts a multipart upload; returns its id.
    pub fn create_multipart(&self, key: &str) -> Result<String> {
        let q = [("uploads".to_string(), String::new())];
        let resp = self.send("POST", key, &q, &[], Payload::Empty)?;
        let doc = self.read_doc(resp, key)?;
        doc.text_of("UploadId")
            .map(str::to_string)
            .ok_or_else(|| self.broken(key, "no UploadId in the answer".into()))
    }

    /// Uploads part `n` (from 1); returns its ETag.
    pub fn upload_part(&self, key: &str, upload: &str, n: u32, bytes: &[u8]) -> Result<String> {
        let q = [
            ("partNumber".to_string(), n.to_string()),
            ("uploadId".to_string(), upload.to_string()),
        ];
        let resp = self.send("PUT", key, &q, &[], Payload::Bytes(bytes))?;
        resp.headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| self.broken(key, "no ETag for the part".into()))
    }

    /// Completes a multipart upload: the object appears whole, now.
    pub fn complete_multipart(&self, key: &str, upload: &str, etags: &[String]) -> Result<()> {
        let mut body = String::from("<CompleteMultipartUpload>");
        for (i, e) in etags.iter().enumerate() {
            body.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                i + 1,
                xml::escape(e)
            ));
        }
        body.push_str("</CompleteMultipartUpload>");
        let q = [("uploadId".to_string(), upload.to_string())];
        let resp = self.send("POST", key, &q, &[], Payload::Bytes(body.as_bytes()))?;
        self.read_doc(resp, key).map(drop)
    }

    pub fn abort_multipart(&self, key: &str, upload: &str) -> Result<()> {
        let q = [("uploadId".to_string(), upload.to_string())];
        match self.send("DELETE", key, &q, &[], Payload::Empty) {
            Err(e) if e.not_found() => Ok(()),
            r => r.map(drop),
        }
    }

    /// Multipart uploads pending below `prefix` (the registry's unfinished
    /// blob uploads keep theirs at `_uploads/<id>/data`).
    pub fn pending_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>> {
        let mut out = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut q = vec![
                ("uploads".to_string(), String::new()),
                ("prefix".to_string(), prefix.to_string()),
            ];
            if let Some((k, u)) = &markers {
                q.push(("key-marker".into(), k.clone()));
                q.push(("upload-id-marker".into(), u.clone()));
            }
            let resp = self.send("GET", "", &q, &[], Payload::Empty)?;
            let doc = self.read_doc(resp, prefix)?;
            for u in doc.all("Upload") {
                out.push(PendingUpload {
                    key: u.text_of("Key").unwrap_or("").to_string(),
                    upload_id: u.text_of("UploadId").unwrap_or("").to_string(),
                    initiated: u
                        .text_of("Initiated")
                        .and_then(crate::gc::time::parse_rfc3339),
                });
            }
            if doc.text_of("IsTruncated") != Some("true") {
                return Ok(out);
            }
            markers = Some((
                doc.text_of("NextKeyMarker").unwrap_or("").to_string(),
                doc.text_of("NextUploadIdMarker").unwrap_or("").to_string(),
            ));
        }
    }

    /// Whether `other` reaches the same server with the same keys, so that
    /// objects can be copied between the two without leaving it.
    pub fn same_server(&self, other: &Client) -> bool {
        self.endpoint == other.endpoint && self.creds == other.creds && self.region == other.region
    }

    /// Copies an object (of this or another bucket of the same server) to a
    /// key of this bucket, on the server (up to 5 GiB in one request; larger
    /// ones in parts).
    pub fn copy(&self, from_bucket: &str, from_key: &str, to_key: &str, size: u64) -> Result<()> {
        let source = format!("/{from_bucket}/{}", sigv4::uri_encode(from_key, true));
        const ONE_COPY: u64 = 5 << 30;
        if size <= ONE_COPY {
            let h = [("x-amz-copy-source".to_string(), source)];
            let resp = self.send("PUT", to_key, &[], &h, Payload::Empty)?;
            return self.read_doc(resp, to_key).map(drop);
        }
        const PART: u64 = 1 << 30;
        let upload = self.create_multipart(to_key)?;
        let result = (|| {
            let mut etags = Vec::new();
            let mut start = 0;
            while start < size {
                let end = (start + PART).min(size) - 1;
                let q = [
                    ("partNumber".to_string(), (etags.len() + 1).to_string()),
                    ("uploadId".to_string(), upload.clone()),
                ];
                let h = [
                    ("x-amz-copy-source".to_string(), source.clone()),
                    (
                        "x-amz-copy-source-range".to_string(),
                        format!("bytes={start}-{end}"),
                    ),
                ];
                let resp = self.send("PUT", to_key, &q, &h, Payload::Empty)?;
                let doc = self.read_doc(resp, to_key)?;
                etags.push(doc.text_of("ETag").unwrap_or("").to_string());
                start = end + 1;
            }
            self.complete_multipart(to_key, &upload, &etags)
        })();
        if result.is_err() {
            let _ = self.abort_multipart(to_key, &upload);
        }
        result
    }

    pub fn delete(&self, key: &str) -> Result<()> {
        match self.send("DELETE", key, &[], &[], Payload::Empty) {
            Err(e) if e.not_found() => Ok(()),
            r => r.map(drop),
        }
    }

    /// Deletes up to 1000 keys in one request (DeleteObjects); returns the
    /// keys that could not be deleted, with why.
    pub fn delete_batch(&self, keys: &[String]) -> Result<Vec<(String, String)>> {
        use base64::Engine as _;
        use md5::Digest as _;
        let mut body = String::from("<Delete><Quiet>true</Quiet>");
        for k in keys {
            body.push_str(&format!("<Object><Key>{}</Key></Object>", xml::escape(k)));
        }
        body.push_str("</Delete>");
        let md5 =
            base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body.as_bytes()));
        let q = [("delete".to_string(), String::new())];
        let h = [("content-md5".to_string(), md5)];
        let resp = self.send("POST", "", &q, &h, Payload::Bytes(body.as_bytes()))?;
        let doc = self.read_doc(resp, "")?;
        Ok(doc
            .all("Error")
            .map(|e| {
                (
                    e.text_of("Key").unwrap_or("").to_string(),
                    format!(
                        "{}: {}",
                        e.text_of("Code").unwrap_or(""),
                        e.text_of("Message").unwrap_or("")
                    ),
                )
            })
            .collect())
    }
}

/// Parses an HTTP date (`Wed, 12 Oct 2009 17:50:00 GMT`).
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, time, _] = parts.as_slice() else {
        return None;
    };
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = months.iter().position(|x| x == month)? + 1;
    crate::gc::time::parse_rfc3339(&format!("{year}-{m:02}-{:0>2}T{time}Z", day))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_http_dates() {
        let t = parse_http_date("Fri, 24 May 2013 00:00:00 GMT").unwrap();
        assert_eq!(sigv4::amz_date(t), "20130524T000000Z");
        assert!(parse_http_date("yesterday").is_none());
    }
}
