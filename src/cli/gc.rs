//! Running and printing `gc`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde::Serialize;

use crate::cli::diagnostic::{print_error, print_warning, render};
use crate::cli::ls::human_size;
use crate::command::gc::{self, Outcome};
use crate::error::Error;
use crate::error::Result;
use crate::gc::time::{format_rfc3339, parse_duration};
use crate::gc::{Options, Plan};

#[derive(Args, Debug)]
pub struct GcArgs {
    #[arg(help = super::ROOT_HELP)]
    pub root: PathBuf,
    /// Print what would be removed; remove nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Also remove manifests no tag reaches (never a child of a kept index, never a referrer of a kept manifest).
    #[arg(long, short = 'm')]
    pub delete_untagged: bool,
    /// Remove unfinished uploads not written to for this long (e.g. 168h, 7d).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub uploads_older_than: Option<Duration>,
    /// Run even though uploads were written to in the last minutes (a registry may be running).
    #[arg(long)]
    pub force: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &GcArgs, quiet: bool) -> Result<ExitCode> {
    let opts = Options {
        dry_run: args.dry_run,
        delete_untagged: args.delete_untagged,
        uploads_older_than: args.uploads_older_than,
        force: args.force,
        quiet: quiet || args.json,
    };
    let o = gc::run(&args.root, &opts)?;
    for w in &o.warnings {
        print_warning(w);
    }
    if args.json {
        let mut out = crate::cli::stdout();
        crate::cli::print_json(&mut out, &json(&o))?;
    } else if !quiet || args.dry_run {
        let mut out = crate::cli::stdout();
        write!(out, "{}", text(&o)).map_err(|e| Error::io("write to standard output", "-", e))?;
    }
    if o.left_fresh > 0 {
        eprintln!(
            "note: left {} file(s) written since gc started (a registry or another tool is writing to this tree)",
            o.left_fresh
        );
    }
    if o.kept_whole.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for k in &o.kept_whole {
        for e in &k.reasons {
            print_error(e);
        }
    }
    eprintln!(
        "error: {}\n   = help: restore what cannot be read, or remove it (regkit delete ROOT IMAGE, with --manifest for a manifest), then run gc again",
        kept_whole_summary(&o)
    );
    Ok(ExitCode::from(1))
}

/// `gc did its work but kept 1 repository whole: a (2 tags or manifests
/// cannot be read)`.
fn kept_whole_summary(o: &Outcome) -> String {
    let repos: Vec<String> = o
        .kept_whole
        .iter()
        .map(|k| match k.reasons.len() {
            1 => format!("{} (1 tag or manifest cannot be read)", k.repository),
            n => format!("{} ({n} tags or manifests cannot be read)", k.repository),
        })
        .collect();
    format!(
        "gc {} its work but kept {} repositor{} whole, since what {} cannot be known: {}",
        if o.dry_run { "would do" } else { "did" },
        repos.len(),
        if repos.len() == 1 { "y" } else { "ies" },
        if repos.len() == 1 {
            "it needs"
        } else {
            "they need"
        },
        repos.join(", ")
    )
}

fn text(o: &Outcome) -> String {
    let p = &o.plan;
    let verb = if o.dry_run { "would remove" } else { "removed" };
    let mut s = String::new();
    for m in &p.manifests {
        let tags = if m.tags.is_empty() {
            String::new()
        } else {
            format!(", tag history of {}", m.tags.join(", "))
        };
        s.push_str(&format!(
            "{verb} manifest {}@{} (revision link{tags})\n",
            m.repository, m.digest
        ));
    }
    for l in &p.layer_links {
        s.push_str(&format!(
            "{verb} layer link {}: {}\n",
            l.repository, l.digest
        ));
    }
    for b in &p.blobs {
        s.push_str(&format!(
            "{verb} blob {} ({})\n",
            b.digest,
            human_size(b.size)
        ));
    }
    for u in &p.uploads {
        s.push_str(&format!(
            "{verb} upload {}/_uploads/{} (started {}, {})\n",
            u.repository,
            u.id,
            format_rfc3339(u.started),
            human_size(u.bytes)
        ));
    }
    for l in &p.leftovers {
        s.push_str(&format!(
            "{verb} regkit temporary {} ({}), left by a run that ended\n",
            l.path.display(),
            human_size(l.bytes)
        ));
    }
    s.push_str(&summary(o));
    s
}

fn summary(o: &Outcome) -> String {
    let p = &o.plan;
    format!(
        "{} {} blob(s), {}; {} {} untagged manifest(s), {} layer link(s), {} upload(s) ({}), {} regkit temporaries ({}); kept {} manifest(s) and {} blob(s)\n",
        if o.dry_run { "would free" } else { "freed" },
        p.blobs.len(),
        human_size(p.blob_bytes()),
        if o.dry_run { "would remove" } else { "removed" },
        p.manifests.len(),
        p.layer_links.len(),
        p.uploads.len(),
        human_size(p.upload_bytes()),
        p.leftovers.len(),
        human_size(p.leftover_bytes()),
        o.kept_manifests,
        o.marked_blobs,
    )
}

#[derive(Serialize)]
struct JsonOutcome<'a> {
    ok: bool,
    dry_run: bool,
    freed_blobs: usize,
    freed_bytes: u64,
    upload_bytes: u64,
    kept_manifests: usize,
    marked_blobs: usize,
    #[serde(flatten)]
    plan: &'a Plan,
    warnings: Vec<String>,
    errors: Vec<String>,
    kept_whole: Vec<JsonKeptWhole>,
    left_fresh: usize,
    /// Requests sent to the object store (0 on disk).
    requests: u64,
}

#[derive(Serialize)]
struct JsonKeptWhole {
    repository: String,
    reasons: Vec<String>,
}

fn json(o: &Outcome) -> JsonOutcome<'_> {
    JsonOutcome {
        ok: o.kept_whole.is_empty(),
        dry_run: o.dry_run,
        freed_blobs: o.plan.blobs.len(),
        freed_bytes: o.plan.blob_bytes(),
        upload_bytes: o.plan.upload_bytes(),
        kept_manifests: o.kept_manifests,
        marked_blobs: o.marked_blobs,
        plan: &o.plan,
        warnings: o.warnings.iter().map(|e| render("warning", e)).collect(),
        errors: o
            .kept_whole
            .iter()
            .flat_map(|k| &k.reasons)
            .map(|e| render("error", e))
            .collect(),
        kept_whole: o
            .kept_whole
            .iter()
            .map(|k| JsonKeptWhole {
                repository: k.repository.clone(),
                reasons: k.reasons.iter().map(|e| e.root().to_string()).collect(),
            })
            .collect(),
        left_fresh: o.left_fresh,
        requests: o.requests,
    }
}
