//! `regkit push`: arguments, and the summary it prints.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, Args};
use serde::Serialize;

use crate::cli::diagnostic::{print_error, print_warning, render};
use crate::cli::SelectArgs;
use crate::command::push::{self, PushOptions, PushOutcome};
use crate::error::{Error, Result};
use crate::progress::human_bytes;
use crate::push::dest::{Destination, Naming, RepoMap};
use crate::push::image::ImageReport;
use crate::remote::client::ClientOptions;
use crate::remote::creds::{self, Credentials};
use crate::remote::error::RemoteError;

pub const AFTER_HELP: &str = "\
Each repo:tag goes to DEST/[PREFIX/]repo:tag (renamed first by --map). Blobs and
manifests already at the destination are skipped (HEAD), blobs pushed to another
repository in this run are mounted, small blobs go in one PUT and large ones in
PATCH chunks; manifests go by digest, children before their index, then the tag,
with the exact stored bytes. An image whose tag already names the same digest is
skipped whole, so a second run is quick and an interrupted run resumes.

Credentials: --creds, --authfile, else $REGISTRY_AUTH_FILE,
$XDG_RUNTIME_DIR/containers/auth.json, ~/.config/containers/auth.json,
~/.docker/config.json (as `skopeo login` / `docker login` write them; the
credHelpers and credsStore helpers a docker config names are run, as
`docker-credential-<name> get`).
TLS: Mozilla's roots plus the *.crt files of --cert-dir (default
/etc/containers/certs.d/HOST and /etc/docker/certs.d/HOST). With
--tls-verify=false any certificate is accepted, and plain http is tried when
https fails (write DEST as http://HOST to go straight to http).

Connection errors, stalls (no byte moved for --timeout), 5xx and 429 are tried
again --retries times, after the Retry-After the registry names (at most 60 s)
or 0.5 s, 1 s, 2 s... Ctrl-C stops at once: requests in flight are ended.

Examples:
  regkit push /var/lib/registry harbor.example.com --dest-prefix migrated/ --creds admin:Harbor12345
  regkit push /var/lib/registry 127.0.0.1:5000 team/app:v1 --tls-verify=false
  regkit push /var/lib/registry harbor.example.com/proj --list release.list -j 8 --json

Exit codes: 0 ok, 1 an image failed (all the others are still pushed), 2 usage,
130 interrupted.";

#[derive(Args, Debug)]
pub struct PushArgs {
    #[arg(help = super::ROOT_HELP)]
    pub root: PathBuf,
    /// The registry: host[:port][/namespace] (http:// or https:// to force one).
    pub dest: Destination,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Images pushed at once.
    #[arg(long, short = 'j', default_value_t = 4, value_name = "N")]
    pub jobs: usize,
    /// Put every repository under this path (a Harbor project: `proj/`).
    #[arg(long, value_name = "PROJECT/")]
    pub dest_prefix: Option<String>,
    /// Renames: lines of `SOURCE DEST`, each `repo` or `repo:tag`; # comments.
    #[arg(long, value_name = "FILE")]
    pub map: Option<PathBuf>,
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Blobs larger than this are sent in PATCH chunks of this size.
    #[arg(long, default_value = "16MiB", value_name = "SIZE", value_parser = parse_size)]
    pub chunk_size: u64,
    /// Print where each image would go; contact nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// How to talk to a registry: credentials, TLS, retries, the stall timeout
/// (push and pull).
#[derive(Args, Debug, Clone)]
pub struct RemoteArgs {
    /// Credentials for the registry.
    #[arg(long, value_name = "USER:PASS", conflicts_with = "authfile")]
    pub creds: Option<String>,
    /// A containers auth.json or docker config.json to read credentials from.
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Verify the registry's certificate (false: accept any, and try http).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub tls_verify: bool,
    /// A folder of *.crt CA files (and a client *.cert/*.key pair) for the registry.
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// Tries again after a connection error, a stall, a 5xx or a 429, up to N times.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub retries: u32,
    /// A transfer that moves no byte for this long fails (and is retried): 60s, 2m, 90.
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = parse_timeout)]
    pub timeout: std::time::Duration,
}

impl RemoteArgs {
    /// The client options, with `creds` and `connections`.
    pub fn client(&self, creds: Option<Credentials>, connections: usize) -> ClientOptions {
        ClientOptions {
            tls_verify: self.tls_verify,
            cert_dir: self.cert_dir.clone(),
            creds,
            retries: self.retries,
            connections,
            timeout: self.timeout,
        }
    }
}

/// `60s`, `2m`, `1m30s`, or seconds: `90`.
pub fn parse_timeout(s: &str) -> std::result::Result<std::time::Duration, String> {
    let t = s.trim();
    let d = if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        t.parse()
            .map(std::time::Duration::from_secs)
            .map_err(|_| format!("`{s}` is not a duration"))?
    } else {
        crate::gc::time::parse_duration(t)?
    };
    if d.is_zero() {
        return Err("the timeout must be at least 1s".into());
    }
    Ok(d)
}

/// `16MiB`, `8M`, `512k`, `40000`.
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a size"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        u => return Err(format!("unknown size unit `{u}` (use KiB, MiB, GiB)")),
    };
    match n.checked_mul(mult) {
        Some(v) if v > 0 => Ok(v),
        _ => Err(format!("`{s}` is not a usable size")),
    }
}

pub fn run(args: &PushArgs, quiet: bool) -> Result<ExitCode> {
    let req = args.select.request()?;
    let map = match &args.map {
        Some(p) => RepoMap::read(p)?,
        None => RepoMap::default(),
    };
    let naming = Naming::new(args.dest.clone(), args.dest_prefix.as_deref(), map)?;
    let creds = match &args.remote.creds {
        Some(c) => Some(Credentials::parse(c)?),
        None if args.dry_run => None,
        None => creds::lookup(
            &args.dest.host,
            &args.dest.namespace,
            args.remote.authfile.as_deref(),
        )?,
    };
    let opts = PushOptions {
        naming,
        client: args.remote.client(creds, args.jobs),
        jobs: args.jobs,
        chunk_size: args.chunk_size,
        dry_run: args.dry_run,
        quiet,
    };
    let outcome = push::run(&args.root, &req, &opts)?;
    for e in &outcome.selection.skipped {
        print_warning(e);
    }
    if args.json {
        print_json(&outcome, &opts)?;
    } else if !quiet || args.dry_run {
        print_text(&outcome, &opts);
    }
    let failures = outcome.all_failures();
    if failures.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let total = outcome.jobs.len() + outcome.failures.len() + outcome.selection.failures.len();
    print_failures(&failures, total, "pushed");
    Ok(ExitCode::from(1))
}

/// Prints the failures of a run over `total` images: one diagnostic each,
/// but the images not tried because the registry went away in one line.
pub fn print_failures(failures: &[&Error], total: usize, verb: &str) {
    let (skipped, failed): (Vec<&Error>, Vec<&Error>) = failures
        .iter()
        .partition(|e| matches!(e.root(), Error::Remote(RemoteError::NotTried { .. })));
    for e in &failed {
        print_error(e);
    }
    if let Some(first) = skipped.first() {
        let names: Vec<&str> = skipped.iter().filter_map(|e| e.image()).take(3).collect();
        eprintln!(
            "error: {} more image(s) not {verb} ({}{}): {}\n   = help: run the same command again once the registry answers: what is already there is skipped",
            skipped.len(),
            names.join(", "),
            if skipped.len() > names.len() { ", ..." } else { "" },
            first.root(),
        );
    }
    print_error(&Error::SomeFailed {
        failed: failures.len(),
        total,
    });
}

fn sum(o: &PushOutcome, f: impl Fn(&ImageReport) -> usize) -> usize {
    o.jobs
        .iter()
        .filter_map(|(_, r)| r.as_ref()?.as_ref().ok())
        .map(f)
        .sum()
}

fn print_text(o: &PushOutcome, opts: &PushOptions) {
    let mut out = crate::cli::stdout();
    let dest = &opts.naming.dest;
    if o.base.is_none() {
        let mut bytes = 0;
        for (job, _) in &o.jobs {
            bytes += job.bytes();
            let _ = writeln!(
                out,
                "{}  ->  {}  {}",
                job.image.name(),
                opts.naming.display(&job.target, &job.top().digest),
                human_bytes(job.bytes())
            );
        }
        let _ = writeln!(
            out,
            "would push {} image(s) to {dest} ({}); the registry was not contacted",
            o.jobs.len(),
            human_bytes(bytes)
        );
        return;
    }
    let ok = o
        .jobs
        .iter()
        .filter(|(_, r)| matches!(r, Some(Ok(_))))
        .count();
    let up_to_date = sum(o, |r| usize::from(r.up_to_date));
    let _ = writeln!(
        out,
        "pushed {ok} of {} image(s) to {} in {:.1} s: {} sent, {} image(s) already there",
        o.jobs.len(),
        o.base.as_deref().unwrap_or(""),
        o.seconds,
        human_bytes(o.bytes_sent),
        up_to_date,
    );
    let _ = writeln!(
        out,
        "  blobs: {} uploaded ({} in chunks), {} mounted, {} already there; manifests: {} pushed, {} already there",
        sum(o, |r| r.blobs_uploaded),
        sum(o, |r| r.blobs_chunked),
        sum(o, |r| r.blobs_mounted),
        sum(o, |r| r.blobs_present),
        sum(o, |r| r.manifests_pushed),
        sum(o, |r| r.manifests_present),
    );
}

#[derive(Serialize)]
struct JsonImage<'a> {
    source: String,
    destination: String,
    digest: &'a crate::Digest,
    media_type: &'static str,
    bytes: u64,
    /// `pushed`, `up-to-date`, `failed`, or `planned` (dry run).
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<&'a ImageReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize, Default)]
struct Totals {
    images: usize,
    pushed: usize,
    up_to_date: usize,
    failed: usize,
    blobs_uploaded: usize,
    blobs_chunked: usize,
    blobs_mounted: usize,
    blobs_present: usize,
    manifests_pushed: usize,
    manifests_present: usize,
    bytes_sent: u64,
}

/// A failure, for `--json`.
#[derive(Serialize)]
pub struct JsonFailure {
    image: Option<String>,
    error: String,
    diagnostic: String,
}

#[derive(Serialize)]
struct JsonOutcome<'a> {
    destination: String,
    registry: Option<&'a str>,
    auth: Option<&'static str>,
    dry_run: bool,
    seconds: f64,
    images: Vec<JsonImage<'a>>,
    totals: Totals,
    failures: Vec<JsonFailure>,
    skipped: Vec<JsonFailure>,
}

pub fn json_failure(e: &Error) -> JsonFailure {
    JsonFailure {
        image: e.image().map(str::to_string),
        error: e.root().to_string(),
        diagnostic: render("error", e),
    }
}

fn print_json(o: &PushOutcome, opts: &PushOptions) -> Result<()> {
    let images: Vec<JsonImage> = o
        .jobs
        .iter()
        .map(|(job, r)| {
            let (status, report, error) = match r {
                None => ("planned", None, None),
                Some(Ok(rep)) if rep.up_to_date => ("up-to-date", Some(rep), None),
                Some(Ok(rep)) => ("pushed", Some(rep), None),
                Some(Err(e)) => ("failed", None, Some(e.root().to_string())),
            };
            JsonImage {
                source: job.image.name(),
                destination: opts.naming.display(&job.target, &job.top().digest),
                digest: &job.top().digest,
                media_type: job.top().node.manifest.media_type(),
                bytes: job.bytes(),
                status,
                report,
                error,
            }
        })
        .collect();
    let failures = o.all_failures();
    let totals = Totals {
        images: o.jobs.len(),
        pushed: images.iter().filter(|i| i.status == "pushed").count(),
        up_to_date: images.iter().filter(|i| i.status == "up-to-date").count(),
        failed: failures.len(),
        blobs_uploaded: sum(o, |r| r.blobs_uploaded),
        blobs_chunked: sum(o, |r| r.blobs_chunked),
        blobs_mounted: sum(o, |r| r.blobs_mounted),
        blobs_present: sum(o, |r| r.blobs_present),
        manifests_pushed: sum(o, |r| r.manifests_pushed),
        manifests_present: sum(o, |r| r.manifests_present),
        bytes_sent: o.bytes_sent,
    };
    let doc = JsonOutcome {
        destination: opts.naming.dest.to_string(),
        registry: o.base.as_deref(),
        auth: o.auth,
        dry_run: o.base.is_none(),
        seconds: o.seconds,
        images,
        totals,
        failures: failures.into_iter().map(json_failure).collect(),
        skipped: o.selection.skipped.iter().map(json_failure).collect(),
    };
    let mut out = crate::cli::stdout();
    crate::cli::print_json(&mut out, &doc)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("8M"), Ok(8 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("40000"), Ok(40000));
        assert!(parse_size("0").is_err());
        assert!(parse_size("x").is_err());
        assert!(parse_size("3 parsecs").is_err());
    }

    #[test]
    fn parses_timeouts() {
        use super::parse_timeout;
        use std::time::Duration;
        assert_eq!(parse_timeout("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_timeout("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_timeout("90"), Ok(Duration::from_secs(90)));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("0s").is_err());
        assert!(parse_timeout("soon").is_err());
    }
}
