//! `regkit pull`: arguments, and the summary it prints.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;

use crate::cli::diagnostic::{print_error, print_warning};
use crate::cli::push::{json_failure, print_failures, JsonFailure, RemoteArgs};
use crate::command::pull::{self, PullOptions, PullOutcome};
use crate::error::{Error, Result};
use crate::platform::Platform;
use crate::progress::human_bytes;
use crate::pull::image::ImageReport;
use crate::pull::source::{parse_wanted, Naming, Wanted};
use crate::push::dest::{Destination, RepoMap};
use crate::reference;
use crate::remote::creds::Credentials;
use crate::tags::TagFilter;

pub const AFTER_HELP: &str = "\
IMAGE is host[:port]/repo[:tag|@digest], or a name below --from as the seed
lists write it (calico/cni:v3.16.3; Docker Hub's official images are
library/NAME). A repository without a tag means every tag, filtered by
--tag-regex and --semver; `repo:tag1,tag2` names several. With no IMAGE and no
list, every repository the registry's _catalog lists below --from's namespace
(Harbor's own API where it refuses _catalog).

What lands in ROOT is what `regkit select` writes for the same images out of a
tree holding them, and what the registry writes after a push: blobs, _layers
links, revision links for every manifest and index child, the tag's current and
index links, every manifest's bytes as served. Each blob and manifest is checked
against its digest before anything links to it. A tag already naming the digest
upstream names costs one HEAD (which Docker Hub does not count against its rate
limit); a blob already in ROOT is never downloaded again, and one that several
images in flight share is downloaded once. A download goes to a temporary name
and is renamed into place once checked: an interrupted pull leaves ROOT valid,
and a rerun finishes it. A tag upstream moved is moved in ROOT too (its index
keeps the old digest), as the registry does when a tag is pushed again.

Names in ROOT: the path below --from's namespace; --scoped keeps the upstream
host as the first component (registry.k8s.io/pause), as `skopeo sync --scoped`;
--map renames (lines `SOURCE DEST`, each repo or repo:tag, SOURCE as it would be
stored without the map).

Credentials, TLS, retries and --timeout as for push; --creds is used for every
registry of the run. --dry-run resolves names, tags and digests (HEADs and tag
lists only) and writes nothing.

Examples:
  regkit pull calico/cni:v3.16.3 library/alpine /var/lib/registry
  regkit pull --list images.list /var/lib/registry --platform linux/amd64
  regkit pull harbor.example.com/proj/app /srv/mirror --tag-regex '^v' --semver '>=1.2, <2' --creds admin:secret
  regkit pull /srv/mirror --from harbor.example.com/proj --referrers -j 8
  regkit pull registry.k8s.io/pause:3.9 /srv/mirror --scoped

Exit codes: 0 ok, 1 an image failed (what finished is kept), 2 usage,
130 interrupted.";

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Images (host[:port]/repo[:tag|@digest], or names below --from), then ROOT: the storage
    /// tree to write (created if missing), a registry's rootdirectory or s3://BUCKET/ROOTDIRECTORY.
    #[arg(value_name = "IMAGE... ROOT", required = true, num_args = 1..)]
    pub args: Vec<String>,
    /// A file of images (one per line, # comments) or a folder of *.list files; repeatable.
    #[arg(long, short = 'l', value_name = "FILE|DIR")]
    pub list: Vec<PathBuf>,
    /// The registry (and namespace) names without a host are taken from.
    #[arg(
        long,
        value_name = "HOST[:PORT][/NAMESPACE]",
        default_value = "docker.io"
    )]
    pub from: Destination,
    /// Keep the upstream host as the first component of stored names.
    #[arg(long)]
    pub scoped: bool,
    /// Renames: lines of `SOURCE DEST`, each `repo` or `repo:tag`; # comments.
    #[arg(long, value_name = "FILE")]
    pub map: Option<PathBuf>,
    /// Keep only these platforms of multi-arch images; repeatable.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Vec<Platform>,
    /// Of a repository's tags, those this regular expression matches (anywhere: anchor with ^...$).
    #[arg(long, value_name = "RE")]
    pub tag_regex: Option<String>,
    /// Of a repository's tags, the versions in this range (`>=1.2, <2`, `~1.2`, `^1.2`, `1.x`).
    #[arg(long, value_name = "RANGE")]
    pub semver: Option<String>,
    /// Also each image's cosign tags (sha256-<hex>.sig, .att, .sbom) and OCI referrers.
    #[arg(long)]
    pub referrers: bool,
    /// Images pulled at once.
    #[arg(long, short = 'j', default_value_t = 4, value_name = "N")]
    pub jobs: usize,
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Skip names the registry does not have (with a warning) instead of failing.
    #[arg(long)]
    pub skip_missing: bool,
    /// Pull every image that can be pulled, then report those that failed (exit 1).
    #[arg(long)]
    pub keep_going: bool,
    /// Resolve names and digests; write nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

impl PullArgs {
    /// ROOT: the last argument.
    pub fn root(&self) -> PathBuf {
        PathBuf::from(self.args.last().expect("clap requires one"))
    }

    fn images(&self) -> &[String] {
        &self.args[..self.args.len() - 1]
    }

    fn wanted(&self) -> Result<Vec<Wanted>> {
        let mut out = Vec::new();
        for i in self.images() {
            out.extend(parse_wanted(i, &self.from)?);
        }
        let from = &self.from;
        let listed = reference::read_lists_with(&self.list, &|line, origin| {
            let mut v = parse_wanted(line, from)?;
            for w in &mut v {
                w.origin = Some(origin.clone());
            }
            Ok(v)
        })?;
        if listed.is_empty() && !self.list.is_empty() {
            return Err(Error::BadList {
                message: "the image lists name no image".into(),
                path: self.list.first().cloned(),
            });
        }
        out.extend(listed);
        Ok(out)
    }
}

pub fn run(args: &PullArgs, quiet: bool) -> Result<ExitCode> {
    let wanted = args.wanted()?;
    let map = match &args.map {
        Some(p) => RepoMap::read(p)?,
        None => RepoMap::default(),
    };
    let creds = args
        .remote
        .creds
        .as_deref()
        .map(Credentials::parse)
        .transpose()?;
    let opts = PullOptions {
        naming: Naming {
            from: args.from.clone(),
            scoped: args.scoped,
            map,
        },
        client: args.remote.client(None, pull::lookups(args.jobs)),
        creds,
        authfile: args.remote.authfile.clone(),
        platforms: args.platform.clone(),
        tags: TagFilter::new(args.tag_regex.as_deref(), args.semver.as_deref())?,
        referrers: args.referrers,
        jobs: args.jobs,
        keep_going: args.keep_going,
        skip_missing: args.skip_missing,
        dry_run: args.dry_run,
        quiet,
    };
    let outcome = pull::run(wanted, &args.root(), &opts)?;
    for e in &outcome.skipped {
        print_warning(e);
    }
    if args.json {
        print_json(&outcome, args)?;
    } else if !quiet || args.dry_run {
        print_text(&outcome, args);
    }
    let failures = outcome.all_failures();
    if failures.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let total = outcome.jobs.len() + outcome.failures.len();
    if outcome.jobs.iter().all(|(_, r)| r.is_none()) && !args.dry_run {
        // Names that could not be resolved stopped the run before anything
        // was written.
        for e in &failures {
            print_error(e);
        }
        eprintln!(
            "error: nothing was pulled: {} name(s) could not be resolved\n   = help: fix or remove them, or pass --skip-missing (skip names the registry lacks) or --keep-going (pull the rest)",
            failures.len()
        );
        return Ok(ExitCode::from(1));
    }
    print_failures(&failures, total, "pulled");
    Ok(ExitCode::from(1))
}

fn sum(o: &PullOutcome, f: impl Fn(&ImageReport) -> u64) -> u64 {
    o.jobs
        .iter()
        .filter_map(|(_, r)| r.as_ref()?.as_ref().ok())
        .map(f)
        .sum()
}

fn hosts(o: &PullOutcome) -> String {
    let v: Vec<&str> = o.upstreams.iter().map(|u| u.base.as_str()).collect();
    if v.is_empty() {
        "no registry".into()
    } else {
        v.join(", ")
    }
}

fn print_text(o: &PullOutcome, args: &PullArgs) {
    let mut out = crate::cli::stdout();
    if args.dry_run {
        for (job, _) in &o.jobs {
            let _ = writeln!(
                out,
                "{}  ->  {}  {}",
                job.source(),
                job.stored(),
                job.digest
            );
        }
        let _ = writeln!(
            out,
            "would pull {} image(s) from {} into {}; nothing was written",
            o.jobs.len(),
            hosts(o),
            args.root().display()
        );
        return;
    }
    let ok = o
        .jobs
        .iter()
        .filter(|(_, r)| matches!(r, Some(Ok(_))))
        .count();
    let _ = writeln!(
        out,
        "pulled {ok} of {} image(s) from {} into {} in {:.1} s: {} downloaded, {} image(s) already there",
        o.jobs.len(),
        hosts(o),
        o.root.display(),
        o.seconds,
        human_bytes(o.bytes_downloaded),
        sum(o, |r| u64::from(r.up_to_date)),
    );
    let _ = writeln!(
        out,
        "  blobs: {} downloaded, {} already there; {} file(s) written",
        sum(o, |r| r.blobs_downloaded as u64),
        sum(o, |r| r.blobs_present as u64),
        sum(o, |r| r.files_written),
    );
    for u in &o.upstreams {
        if let Some(l) = u.rate_limit {
            let _ = writeln!(
                out,
                "  {}: rate limit {} left{}",
                u.host,
                l.remaining,
                l.limit.map(|n| format!(" of {n}")).unwrap_or_default()
            );
        }
    }
}

#[derive(Serialize)]
struct JsonImage<'a> {
    source: String,
    name: String,
    digest: &'a crate::Digest,
    /// `pulled`, `up-to-date`, `failed`, or `planned` (dry run, or not tried).
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<&'a ImageReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize, Default)]
struct Totals {
    images: usize,
    pulled: usize,
    up_to_date: usize,
    failed: usize,
    blobs_downloaded: u64,
    blobs_present: u64,
    files_written: u64,
    bytes_downloaded: u64,
}

#[derive(Serialize)]
struct JsonOutcome<'a> {
    root: String,
    dry_run: bool,
    seconds: f64,
    registries: &'a [pull::Upstream],
    images: Vec<JsonImage<'a>>,
    totals: Totals,
    failures: Vec<JsonFailure>,
    skipped: Vec<JsonFailure>,
}

fn print_json(o: &PullOutcome, args: &PullArgs) -> Result<()> {
    let images: Vec<JsonImage> = o
        .jobs
        .iter()
        .map(|(job, r)| {
            let (status, report, error) = match r {
                None => ("planned", None, None),
                Some(Ok(rep)) if rep.up_to_date => ("up-to-date", Some(rep), None),
                Some(Ok(rep)) => ("pulled", Some(rep), None),
                Some(Err(e)) => ("failed", None, Some(e.root().to_string())),
            };
            JsonImage {
                source: job.source(),
                name: job.stored(),
                digest: &job.digest,
                status,
                report,
                error,
            }
        })
        .collect();
    let failures = o.all_failures();
    let totals = Totals {
        images: o.jobs.len(),
        pulled: images.iter().filter(|i| i.status == "pulled").count(),
        up_to_date: images.iter().filter(|i| i.status == "up-to-date").count(),
        failed: failures.len(),
        blobs_downloaded: sum(o, |r| r.blobs_downloaded as u64),
        blobs_present: sum(o, |r| r.blobs_present as u64),
        files_written: sum(o, |r| r.files_written),
        bytes_downloaded: o.bytes_downloaded,
    };
    let doc = JsonOutcome {
        root: o.root.display().to_string(),
        dry_run: args.dry_run,
        seconds: o.seconds,
        registries: &o.upstreams,
        images,
        totals,
        failures: failures.into_iter().map(json_failure).collect(),
        skipped: o.skipped.iter().map(json_failure).collect(),
    };
    let mut out = crate::cli::stdout();
    crate::cli::print_json(&mut out, &doc)
}
