//! `serve`: a read-only Registry HTTP API V2 for pulls, over any ROOT (a
//! tree, a bundle, a bucket), so kubelet and containerd pull straight from
//! what was shipped.
//!
//! The server is axum on hyper and tokio: hyper is the HTTP/1.1 engine
//! (what trow and zarf's Rust injector build on), axum routes `/v2/{*rest}`
//! to one handler that parses repository names itself ([`route`]), and
//! tokio runs it, with the store's blocking reads in its blocking pool.
//! Connections are accepted here (plain or rustls, ring provider, as the
//! rest of regkit), served by hyper with graceful shutdown, and logged one
//! line a request.

pub mod api;
pub mod auth;
mod body;
pub mod index;
pub mod route;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, Response};
use axum::routing::any;
use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::store::Store;
use api::Registry;

/// How to serve.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `host:port` to listen on (`127.0.0.1:5000`; port 0 picks one).
    pub addr: String,
    /// Certificate chain and key (PEM): serve https.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Basic auth against this htpasswd file (bcrypt entries).
    pub htpasswd: Option<PathBuf>,
    /// Hash every blob before serving.
    pub verify: bool,
    /// No access log.
    pub quiet: bool,
}

/// What the server says when it starts.
#[derive(Debug, Clone, Serialize)]
pub struct Started {
    pub address: SocketAddr,
    pub url: String,
    pub tls: bool,
    pub auth: bool,
    pub root: String,
    pub repositories: usize,
    pub tags: usize,
    pub manifests: usize,
    /// With `--verify`: blobs checked, and those found damaged (never
    /// served).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<usize>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub damaged: Vec<String>,
}

/// How long connections in flight may take to finish after Ctrl-C.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `root` until Ctrl-C or SIGTERM; `started` is called once the
/// address is bound.
pub fn run(root: &Path, opts: &Options, started: impl FnOnce(&Started)) -> Result<()> {
    let store = Store::open(root)?;
    let index = index::Index::load(&store)?;
    let htpasswd = match &opts.htpasswd {
        Some(p) => Some(auth::Htpasswd::load(p)?),
        None => None,
    };
    let tls = match &opts.tls {
        Some((cert, key)) => Some(tls_config(cert, key)?),
        None => None,
    };
    let registry = Arc::new(Registry::new(store.clone(), index, htpasswd));
    let (verified, damaged) = if opts.verify {
        let (n, damaged) = registry.verify_all();
        (Some(n), damaged)
    } else {
        (None, Vec::new())
    };
    let listener = std::net::TcpListener::bind(&opts.addr).map_err(|e| Error::Invalid {
        message: format!("cannot listen on {}: {e}", opts.addr),
        path: None,
    })?;
    let address = listener
        .local_addr()
        .map_err(|e| Error::io("listen", &opts.addr, e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io("listen", &opts.addr, e))?;
    let info = Started {
        address,
        url: format!(
            "{}://{address}",
            if tls.is_some() { "https" } else { "http" }
        ),
        tls: tls.is_some(),
        auth: registry.htpasswd.is_some(),
        root: store.v2().display().to_string(),
        repositories: registry.index.repositories.len(),
        tags: registry.index.tags,
        manifests: registry.index.manifests,
        verified,
        damaged,
    };
    // Blob chunks are freed on other threads than allocated them: with one
    // malloc arena per thread, each arena keeps what it freed. Two arenas
    // keep memory small (manifests and chunks are short-lived).
    // SAFETY: mallopt only sets an allocator parameter.
    #[cfg(target_env = "gnu")]
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(64)
        .thread_name("regkit-serve")
        .build()
        .map_err(|e| Error::io("start the server", &opts.addr, e))?;
    started(&info);
    runtime.block_on(serve(listener, tls, registry, !opts.quiet))
}

fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect())
        .map_err(|e| Error::Invalid {
            message: format!("not a PEM certificate chain: {e}"),
            path: Some(cert.into()),
        })?;
    if certs.is_empty() {
        return Err(Error::Invalid {
            message: "no certificate in this file".into(),
            path: Some(cert.into()),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| Error::Invalid {
        message: format!("not a PEM private key: {e}"),
        path: Some(key.into()),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::invalid(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Invalid {
            message: format!("TLS: {e}"),
            path: Some(cert.into()),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn router(registry: Arc<Registry>) -> Router {
    async fn v2(State(r): State<Arc<Registry>>, req: Request<Body>) -> Response<Body> {
        r.handle(req).await
    }
    Router::new()
        .route("/v2", any(v2))
        .route("/v2/", any(v2))
        .route("/v2/{*rest}", any(v2))
        .fallback(v2)
        .with_state(registry)
}

/// Ends once an interrupt (SIGINT, SIGTERM: `crate::interrupt`) arrived.
async fn interrupted() {
    while !crate::interrupt::interrupted() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn serve(
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    registry: Arc<Registry>,
    log: bool,
) -> Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|e| Error::io("listen", "the server's address", e))?;
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let app = router(registry);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let http = hyper::server::conn::http1::Builder::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of descriptors and the like: wait, then go on.
                Err(e) => {
                    eprintln!("warning: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = interrupted() => break,
        };
        let _ = stream.set_nodelay(true);
        let service = logged(app.clone(), peer, log);
        match &acceptor {
            None => {
                let conn = http.serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let http = http.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
                    let stream = match handshake.await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            if log {
                                eprintln!("{peer} TLS handshake failed: {e}");
                            }
                            return;
                        }
                        Err(_) => return,
                    };
                    let conn = http.serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(conn).await;
                });
            }
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN) => {
            eprintln!("note: connections still open after {}s were closed", DRAIN.as_secs());
        }
    }
    Ok(())
}

/// The router as a hyper service that logs one line per request:
/// `peer "METHOD path" status bytes time`.
fn logged(
    app: Router,
    peer: SocketAddr,
    log: bool,
) -> impl hyper::service::Service<
    Request<hyper::body::Incoming>,
    Response = Response<Body>,
    Error = std::convert::Infallible,
    Future = impl std::future::Future<
        Output = std::result::Result<Response<Body>, std::convert::Infallible>,
    > + Send,
> + Clone {
    let inner = TowerToHyperService::new(app);
    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let start = Instant::now();
        let line = log.then(|| {
            format!(
                "{peer} \"{} {}\"",
                req.method(),
                req.uri().path_and_query().map_or("/", |p| p.as_str())
            )
        });
        let fut = hyper::service::Service::call(&inner, req);
        async move {
            let resp = fut.await?;
            if let Some(line) = line {
                let len = resp
                    .headers()
                    .get(axum::http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                eprintln!(
                    "{} {line} {} {len} {:.1}ms",
                    crate::gc::time::format_rfc3339(std::time::SystemTime::now()),
                    resp.status().as_u16(),
                    start.elapsed().as_secs_f64() * 1000.0
                );
            }
            Ok(resp)
        }
    })
}
