//! TLS settings as containers' `certs.d` has them: Mozilla's roots plus the
//! `*.crt` files of a folder (`--cert-dir`, else
//! `/etc/containers/certs.d/HOST[:PORT]` and `/etc/docker/certs.d/HOST[:PORT]`),
//! a client certificate from a `*.cert` + `*.key` pair, or no verification
//! at all with `--tls-verify=false`.

use std::path::{Path, PathBuf};

use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};

use crate::error::{Error, Result};

/// The folders searched for certificates of `host` when `--cert-dir` is not
/// given.
pub fn default_cert_dirs(host: &str) -> Vec<PathBuf> {
    ["/etc/containers/certs.d", "/etc/docker/certs.d"]
        .iter()
        .map(|d| Path::new(d).join(host))
        .filter(|d| d.is_dir())
        .collect()
}

/// Builds the TLS configuration.
pub fn config(verify: bool, dirs: &[PathBuf]) -> Result<TlsConfig> {
    let mut builder = TlsConfig::builder();
    if !verify {
        builder = builder.disable_verification(true);
    }
    let mut extra: Vec<Certificate<'static>> = Vec::new();
    let mut client: Option<ClientCert> = None;
    for dir in dirs {
        let rd =
            std::fs::read_dir(dir).map_err(|e| Error::io("read certificate folder", dir, e))?;
        let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in &files {
            match f.extension().and_then(|x| x.to_str()) {
                Some("crt") => extra.extend(read_certs(f)?),
                Some("cert") => {
                    let key = f.with_extension("key");
                    let pem =
                        std::fs::read(&key).map_err(|e| Error::io("read client key", &key, e))?;
                    let key = PrivateKey::from_pem(&pem).map_err(|e| bad_pem(&key, e))?;
                    client = Some(ClientCert::new_with_certs(&read_certs(f)?, key));
                }
                _ => {}
            }
        }
    }
    if !extra.is_empty() {
        let mut roots: Vec<Certificate<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()).to_owned())
            .collect();
        roots.extend(extra);
        builder = builder.root_certs(RootCerts::new_with_certs(&roots));
    }
    if client.is_some() {
        builder = builder.client_cert(client);
    }
    Ok(builder.build())
}

fn read_certs(path: &Path) -> Result<Vec<Certificate<'static>>> {
    let pem = std::fs::read(path).map_err(|e| Error::io("read certificate", path, e))?;
    let mut out = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let ureq::tls::PemItem::Certificate(c) = item.map_err(|e| bad_pem(path, e))? {
            out.push(c);
        }
    }
    if out.is_empty() {
        return Err(Error::Invalid {
            message: "no PEM certificate in this file".into(),
            path: Some(path.into()),
        });
    }
    Ok(out)
}

fn bad_pem(path: &Path, e: ureq::Error) -> Error {
    Error::Invalid {
        message: format!("cannot read PEM: {e}"),
        path: Some(path.into()),
    }
}
