//! `push`: images from storage to a live registry, in parallel, resumable:
//! what the destination already holds is skipped.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rayon::prelude::*;

use crate::command::open_and_select;
use crate::error::{Error, Result};
use crate::progress::{human_bytes, Progress};
use crate::push::dest::Naming;
use crate::push::harbor::Projects;
use crate::push::image::{self, Context, ImageReport};
use crate::push::plan::{self, Job};
use crate::remote::client::{Client, ClientOptions};
use crate::selection::{Request, Selection};

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    pub naming: Naming,
    pub client: ClientOptions,
    /// Images (and blobs) in flight at once.
    pub jobs: usize,
    /// Blobs larger than this go in PATCH chunks of this size.
    pub chunk_size: u64,
    pub dry_run: bool,
    pub quiet: bool,
}

/// What a push did.
pub struct PushOutcome {
    pub selection: Selection,
    /// One per image, with what happened to it (`None`: dry run).
    pub jobs: Vec<(Job, Option<Result<ImageReport>>)>,
    /// Images that could not be planned (destination names).
    pub failures: Vec<Error>,
    /// `scheme://host` as connected, `None` for a dry run.
    pub base: Option<String>,
    pub auth: Option<&'static str>,
    pub bytes_sent: u64,
    pub seconds: f64,
}

impl PushOutcome {
    /// Every failure: selection, planning, pushing.
    pub fn all_failures(&self) -> Vec<&Error> {
        self.selection
            .failures
            .iter()
            .chain(self.failures.iter())
            .chain(
                self.jobs
                    .iter()
                    .filter_map(|(_, r)| r.as_ref()?.as_ref().err()),
            )
            .collect()
    }
}

/// Pushes the requested images.
pub fn run(root: &Path, req: &Request, opts: &PushOptions) -> Result<PushOutcome> {
    let started = Instant::now();
    let (store, selection) = open_and_select(root, req)?;
    let (jobs, failures) = plan::jobs(&selection, &opts.naming);
    if opts.dry_run {
        return Ok(PushOutcome {
            selection,
            jobs: jobs.into_iter().map(|j| (j, None)).collect(),
            failures,
            base: None,
            auth: None,
            bytes_sent: 0,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    let dest = &opts.naming.dest;
    let client = Client::connect(&dest.host, dest.scheme, &opts.client)?;
    let total: u64 = jobs.iter().map(Job::bytes).sum();
    let progress = Progress::bytes(total, &format!("0/{} images", jobs.len()), opts.quiet);
    let ctx = Context {
        client: &client,
        store: &store,
        chunk_size: opts.chunk_size,
        progress: &progress,
        blobs: Default::default(),
        manifests: Default::default(),
    };
    let projects = Projects::default();
    let done = AtomicUsize::new(0);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.max(1))
        .build()
        .map_err(|e| Error::invalid(format!("cannot start {} threads: {e}", opts.jobs)))?;
    let one = |job: &Job| {
        let r = image::push(&ctx, job)
            .map_err(|e| projects.explain(&client, e.in_image(job.image.name())));
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        progress.set_message(&format!(
            "{n}/{} images, {} sent",
            jobs.len(),
            human_bytes(client.bytes_sent())
        ));
        r
    };
    // Referrers (signatures, SBOMs) go after the images they refer to.
    let split = jobs
        .iter()
        .position(|j| j.manifests().any(|m| m.node.manifest.subject.is_some()))
        .unwrap_or(jobs.len());
    let results: Vec<Result<ImageReport>> = pool.install(|| {
        let mut r: Vec<_> = jobs[..split].par_iter().map(one).collect();
        r.extend(jobs[split..].par_iter().map(one).collect::<Vec<_>>());
        r
    });
    progress.finish();
    crate::interrupt::check()?;
    Ok(PushOutcome {
        selection,
        jobs: jobs
            .into_iter()
            .zip(results.into_iter().map(Some))
            .collect(),
        failures,
        base: Some(client.base.clone()),
        auth: Some(client.auth_mode()),
        bytes_sent: client.bytes_sent(),
        seconds: started.elapsed().as_secs_f64(),
    })
}
