//! `serve`: arguments, and the line printed once the server listens.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::error::{Error, Result};
use crate::serve::{Options, Started};

pub const AFTER_HELP: &str = "\
A read-only Registry HTTP API V2 for pulls (docker, podman, skopeo, containerd,
kubelet), straight from a storage tree, a bundle (.tar read in place; .tar.gz and
.tar.zst decompressed once to a temporary file) or a bucket. Manifests are served
as their exact stored bytes, blobs with their digest checked on first read (or all
up front with --verify). The referrers API (OCI 1.1) is served from the `subject`
fields found at start. Writes are answered 405 UNSUPPORTED.

One access log line per request goes to standard error (-q: none). Ctrl-C or
SIGTERM stops accepting and lets requests in flight finish (up to 10 s).

Examples:
  regkit serve /var/lib/registry
  regkit serve release-1.0.tar --addr 0.0.0.0:5000
  regkit serve release-1.0.tar --addr 0.0.0.0:443 --tls-cert reg.crt --tls-key reg.key --htpasswd users
  ctr images pull --plain-http 127.0.0.1:5000/library/alpine:3.19";

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[arg(help = super::ROOT_HELP)]
    pub root: PathBuf,
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:5000", value_name = "HOST:PORT")]
    pub addr: String,
    /// Serve https with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require Basic auth against this htpasswd file (bcrypt entries, `htpasswd -B`).
    #[arg(long, value_name = "FILE")]
    pub htpasswd: Option<PathBuf>,
    /// Hash every blob before serving (damaged ones are listed and never served).
    #[arg(long)]
    pub verify: bool,
    /// Print the start-up line as JSON, for scripts.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &ServeArgs, quiet: bool) -> Result<ExitCode> {
    let opts = Options {
        addr: args.addr.clone(),
        tls: args.tls_cert.clone().zip(args.tls_key.clone()),
        htpasswd: args.htpasswd.clone(),
        verify: args.verify,
        quiet,
    };
    let json = args.json;
    crate::command::serve::run(&args.root, &opts, |s: &Started| {
        for d in &s.damaged {
            eprintln!("warning: damaged blob, not served: {d}");
        }
        let mut out = crate::cli::stdout();
        let printed = if json {
            serde_json::to_writer(&mut out, s)
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(out))
        } else {
            let verified = s
                .verified
                .map(|n| format!(", {n} blobs verified ({} damaged)", s.damaged.len()))
                .unwrap_or_default();
            writeln!(
                out,
                "serving {} ({} repositories, {} tags{verified}) at {}{}",
                s.root,
                s.repositories,
                s.tags,
                s.url,
                if s.auth { " (htpasswd)" } else { "" }
            )
        };
        let _ = printed
            .and_then(|()| out.flush())
            .map_err(|e| Error::io("write to standard output", "-", e));
    })?;
    Ok(ExitCode::SUCCESS)
}
