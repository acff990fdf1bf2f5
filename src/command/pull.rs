//! `pull`: images from registries into a storage tree, in parallel,
//! resumable: what ROOT has is skipped, an interrupted run leaves ROOT valid
//! and the next one finishes it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rayon::prelude::*;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::platform::Platform;
use crate::progress::{human_bytes, Progress};
use crate::pull::blobs::Downloads;
use crate::pull::fetch::Manifests;
use crate::pull::image::{self, Context, ImageReport};
use crate::pull::resolve::{fatal, Clients, Job, Resolver};
use crate::pull::source::{Naming, Wanted};
use crate::remote::api::{self, RateLimit};
use crate::remote::client::ClientOptions;
use crate::remote::creds::Credentials;
use crate::remote::error::RemoteError;
use crate::store::Store;
use crate::tags::TagFilter;

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    pub naming: Naming,
    pub client: ClientOptions,
    /// `--creds`, for every registry of the run.
    pub creds: Option<Credentials>,
    pub authfile: Option<PathBuf>,
    pub platforms: Vec<Platform>,
    pub tags: TagFilter,
    /// Also each image's cosign tags and OCI referrers.
    pub referrers: bool,
    /// Images (and blobs) in flight at once.
    pub jobs: usize,
    /// Pull what can be pulled when some names cannot be resolved.
    pub keep_going: bool,
    /// Names the registry lacks are skipped with a warning.
    pub skip_missing: bool,
    /// Resolve names and digests; write nothing.
    pub dry_run: bool,
    pub quiet: bool,
}

/// A registry the run talked to.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Upstream {
    pub host: String,
    /// `scheme://host` as connected.
    pub base: String,
    pub auth: &'static str,
    pub rate_limit: Option<RateLimit>,
    pub bytes_downloaded: u64,
}

/// What a pull did.
pub struct PullOutcome {
    /// One per image, with what happened to it (`None`: not tried, a dry
    /// run or a run stopped by names that could not be resolved).
    pub jobs: Vec<(Job, Option<Result<ImageReport>>)>,
    /// Names that could not be resolved.
    pub failures: Vec<Error>,
    /// Names skipped with `--skip-missing`.
    pub skipped: Vec<Error>,
    pub upstreams: Vec<Upstream>,
    pub bytes_downloaded: u64,
    pub seconds: f64,
    /// ROOT as opened.
    pub root: PathBuf,
}

impl PullOutcome {
    /// Every failure: resolving and pulling.
    pub fn all_failures(&self) -> Vec<&Error> {
        self.failures
            .iter()
            .chain(
                self.jobs
                    .iter()
                    .filter_map(|(_, r)| r.as_ref()?.as_ref().err()),
            )
            .collect()
    }
}

/// How many rounds of referrers of referrers are followed.
const REFERRER_ROUNDS: usize = 8;

/// Pulls `wanted` (every repository below `--from` when empty) into `root`.
pub fn run(wanted: Vec<Wanted>, root: &Path, opts: &PullOptions) -> Result<PullOutcome> {
    let started = Instant::now();
    // A ROOT that cannot be written is refused before the registry is asked.
    Store::can_create(root)?;
    let clients = Clients::new(
        opts.client.clone(),
        opts.creds.clone(),
        opts.authfile.clone(),
        opts.naming.from.clone(),
    );
    let manifests = Manifests::default();
    let resolver = Resolver {
        clients: &clients,
        naming: &opts.naming,
        tags: &opts.tags,
        manifests: &manifests,
        listed: Default::default(),
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.max(1))
        .build()
        .map_err(|e| Error::invalid(format!("cannot start {} threads: {e}", opts.jobs)))?;
    // Resolving is HEADs and tag lists, each waiting on the network and
    // tiny (a rerun with nothing new is only that): more of them in flight
    // than images.
    let lookups = rayon::ThreadPoolBuilder::new()
        .num_threads(lookups(opts.jobs))
        .build()
        .map_err(|e| Error::invalid(format!("cannot start threads: {e}")))?;
    let resolved = lookups.install(|| resolver.resolve(wanted))?;
    drop(lookups);
    let (skipped, failures): (Vec<Error>, Vec<Error>) = resolved
        .failures
        .into_iter()
        .partition(|e| opts.skip_missing && is_not_found(e));
    let mut outcome = PullOutcome {
        jobs: Vec::new(),
        failures,
        skipped,
        upstreams: Vec::new(),
        bytes_downloaded: 0,
        seconds: 0.0,
        root: root.to_path_buf(),
    };
    let stop = !outcome.failures.is_empty() && !opts.keep_going;
    if opts.dry_run || stop {
        // Nothing is written: a dry run, or names that could not be
        // resolved (without --keep-going).
        outcome.jobs = resolved.jobs.into_iter().map(|j| (j, None)).collect();
        outcome.upstreams = upstreams(&clients);
        outcome.seconds = started.elapsed().as_secs_f64();
        return Ok(outcome);
    }
    let dst = Store::create(root)?;
    // Held while anything is written: no gc runs while blobs are in place
    // and their links not yet.
    let _lock = crate::lock::Lock::shared(&dst)?;
    outcome.root = dst.v2().to_path_buf();
    let progress = Progress::bytes(0, &format!("0/{} images", resolved.jobs.len()), opts.quiet);
    let downloads = Downloads::default();
    let ctx = Context {
        clients: &clients,
        dst: &dst,
        manifests: &manifests,
        downloads: &downloads,
        platforms: &opts.platforms,
        progress: &progress,
        referrers: opts.referrers,
    };
    let done = AtomicUsize::new(0);
    let total = AtomicUsize::new(resolved.jobs.len());
    let one = |job: &Job| {
        let r = image::pull(&ctx, job).map_err(|e| e.in_image(job.source()));
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        progress.set_message(&format!(
            "{n}/{} images, {} downloaded",
            total.load(Ordering::Relaxed),
            human_bytes(received(&clients))
        ));
        r
    };
    let mut round = resolved.jobs;
    let mut seen: std::collections::HashSet<(String, Option<String>, Digest)> = round
        .iter()
        .map(|j| (j.name.clone(), j.stored_tag.clone(), j.digest.clone()))
        .collect();
    for _ in 0..=REFERRER_ROUNDS {
        if round.is_empty() {
            break;
        }
        let results: Vec<Result<ImageReport>> =
            pool.install(|| round.par_iter().map(one).collect());
        crate::interrupt::check()?;
        let mut next = Vec::new();
        if opts.referrers {
            let found: Vec<Result<Vec<Job>>> = pool.install(|| {
                round
                    .par_iter()
                    .zip(&results)
                    .filter_map(|(j, r)| r.as_ref().ok().map(|r| (j, r)))
                    .map(|(j, r)| referrers(&resolver, j, &r.digests))
                    .collect()
            });
            for f in found {
                match f {
                    Ok(jobs) => {
                        for j in jobs {
                            let key = (j.name.clone(), j.stored_tag.clone(), j.digest.clone());
                            if seen.insert(key) {
                                next.push(j);
                            }
                        }
                    }
                    Err(e) if fatal(&e) && !is_unreachable(&e) => return Err(e),
                    Err(e) => outcome.failures.push(e),
                }
            }
        }
        total.fetch_add(next.len(), Ordering::Relaxed);
        outcome
            .jobs
            .extend(round.into_iter().zip(results.into_iter().map(Some)));
        round = next;
    }
    progress.finish();
    outcome.upstreams = upstreams(&clients);
    outcome.bytes_downloaded = received(&clients);
    outcome.seconds = started.elapsed().as_secs_f64();
    Ok(outcome)
}

/// How many tag look-ups (HEADs, tag lists) are in flight for `jobs`
/// images in flight.
pub fn lookups(jobs: usize) -> usize {
    (jobs.max(1) * 4).min(32)
}

/// The cosign tags (`sha256-<hex>.sig`, `.att`, `.sbom`, and the OCI
/// referrers tag `sha256-<hex>`) and the OCI referrers of each manifest of
/// a pulled image, as jobs into the same repository of ROOT.
fn referrers(resolver: &Resolver, job: &Job, digests: &[Digest]) -> Result<Vec<Job>> {
    let client = resolver.clients.get(&job.host)?;
    let tags = resolver.tags_of(&job.host, &job.repo)?.unwrap_or_default();
    let mut out = Vec::new();
    for d in digests {
        let base = format!("{}-{}", d.algorithm().name(), d.hex());
        for t in tags.iter().filter(|t| {
            t.strip_prefix(&base)
                .is_some_and(|rest| matches!(rest, "" | ".sig" | ".att" | ".sbom"))
        }) {
            out.push(Wanted {
                host: job.host.clone(),
                repo: job.repo.clone(),
                tag: Some(t.clone()),
                digest: None,
                origin: None,
            });
        }
        for r in api::referrers(&client, &job.repo, d)?.unwrap_or_default() {
            out.push(Wanted {
                host: job.host.clone(),
                repo: job.repo.clone(),
                tag: None,
                digest: Some(r.digest),
                origin: None,
            });
        }
    }
    out.iter()
        .map(|w| resolver.job(w).map_err(|e| e.in_image(job.source())))
        .collect()
}

fn is_not_found(e: &Error) -> bool {
    matches!(e.root(), Error::Remote(RemoteError::NotFound { .. }))
}

fn is_unreachable(e: &Error) -> bool {
    matches!(e.root(), Error::Remote(r) if r.is_unreachable())
}

fn received(clients: &Clients) -> u64 {
    clients.all().iter().map(|(_, c)| c.bytes_received()).sum()
}

fn upstreams(clients: &Clients) -> Vec<Upstream> {
    clients
        .all()
        .into_iter()
        .map(|(host, c)| Upstream {
            host,
            base: c.base.clone(),
            auth: c.auth_mode(),
            rate_limit: c.rate_limit(),
            bytes_downloaded: c.bytes_received(),
        })
        .collect()
}
