//! Running and printing the commands that write a folder (extract, select).

use std::io::Write;
use std::process::ExitCode;

use serde::Serialize;

use crate::cli::diagnostic::{print_error, print_warning, render};
use crate::cli::ls::human_size;
use crate::cli::WriteArgs;
use crate::command::{self, Outcome};
use crate::error::{Error, Result};
use crate::plan::Source;
use crate::selection::{Image, Selection};
use crate::sink::fs::Report;

#[derive(Clone, Copy)]
pub enum Kind {
    Extract,
    Select,
}

pub fn run(kind: Kind, args: &WriteArgs, quiet: bool) -> Result<ExitCode> {
    let req = args.select.request()?;
    let opts = args.output.write_options(quiet);
    let outcome = match kind {
        Kind::Extract => command::extract::run(&args.root, &args.out, &req, &opts)?,
        Kind::Select => command::select::run(&args.root, &args.out, &req, &opts)?,
    };
    let sel = &outcome.selection;
    warn_skipped(sel);
    if args.output.json {
        print_json(&outcome, args)?;
    } else if !quiet || args.output.dry_run {
        print_text(kind, &outcome, args);
    }
    // Between a bucket and a disk every file is a copy: no surprise to
    // explain, only the count (and not with -q).
    let in_bucket = |p: &std::path::Path| p.to_string_lossy().starts_with("s3://");
    if let Some(r) = &outcome.report {
        if !in_bucket(&args.root) && !in_bucket(&args.out) {
            note_copies(r, "ROOT and OUT");
        } else if !quiet && r.counts.copies > 0 {
            eprintln!(
                "note: {} files copied with their digests checked (between the bucket and the disk)",
                r.counts.copies
            );
        }
    }
    Ok(exit_code(sel))
}

/// Says when files could not be hardlinked (`between`: which two places).
pub fn note_copies(r: &Report, between: &str) {
    if r.counts.reflinks + r.counts.copies > 0 {
        eprintln!(
            "note: {between} are on different filesystems (or hardlinks are not allowed): {} hardlinked, {} reflinked, {} copied with their digests checked",
            r.counts.hardlinks, r.counts.reflinks, r.counts.copies
        );
    }
}

/// What writing did, on one line.
pub fn report_line(r: &Report) -> String {
    format!(
        "  {} hardlinked, {} reflinked, {} copied, {} written{}",
        r.counts.hardlinks,
        r.counts.reflinks,
        r.counts.copies,
        r.counts.written,
        if r.existing > 0 {
            format!(", {} already present", r.existing)
        } else {
            String::new()
        }
    )
}

/// Warns about skipped images and foreign layers left out.
pub fn warn_skipped(sel: &Selection) {
    for e in &sel.skipped {
        print_warning(e);
    }
    for img in &sel.images {
        for f in &img.foreign {
            eprintln!(
                "note: {}: foreign layer {f} is not in storage (clients fetch it from its urls); skipped",
                img.name()
            );
        }
    }
}

/// Prints the images that failed (with --keep-going); 1 if any did.
pub fn exit_code(sel: &Selection) -> ExitCode {
    if sel.failures.is_empty() {
        return ExitCode::SUCCESS;
    }
    for e in &sel.failures {
        print_error(e);
    }
    print_error(&Error::SomeFailed {
        failed: sel.failures.len(),
        total: sel.failures.len() + sel.images.len(),
    });
    ExitCode::from(1)
}

fn print_text(kind: Kind, o: &Outcome, args: &WriteArgs) {
    let mut out = crate::cli::stdout();
    let (blobs, bytes) = o.plan.blob_totals();
    let verb = match (kind, o.report.is_some()) {
        (Kind::Extract, true) => "extracted",
        (Kind::Extract, false) => "would extract",
        (Kind::Select, true) => "selected",
        (Kind::Select, false) => "would select",
    };
    if o.report.is_none() {
        for img in &o.selection.images {
            let _ = writeln!(
                out,
                "{}  {}  {}",
                img.name(),
                img.digest,
                human_size(img.size())
            );
        }
    }
    let _ = writeln!(
        out,
        "{verb} {} image(s) to {}: {} files, {blobs} from blobs ({})",
        o.selection.images.len(),
        args.out.display(),
        o.plan.files.len(),
        human_size(bytes),
    );
    if let Some(r) = &o.report {
        let _ = writeln!(out, "{}", report_line(r));
    }
}

#[derive(Serialize)]
pub struct JsonImage<'a> {
    name: String,
    repository: &'a str,
    tag: Option<&'a str>,
    digest: &'a crate::Digest,
    media_type: &'static str,
    platforms: Vec<String>,
    manifests: usize,
    blobs: usize,
    size: u64,
}

#[derive(Serialize)]
pub struct JsonFailure {
    image: Option<String>,
    error: String,
    path: Option<String>,
    diagnostic: String,
}

#[derive(Serialize)]
struct JsonOutcome<'a> {
    output: String,
    dry_run: bool,
    images: Vec<JsonImage<'a>>,
    files: usize,
    blob_files: usize,
    blob_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<&'a Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    planned_files: Option<Vec<PlannedFile>>,
    failures: Vec<JsonFailure>,
    skipped: Vec<JsonFailure>,
}

#[derive(Serialize)]
struct PlannedFile {
    path: String,
    /// The blob digest the file's bytes come from, or `bytes`.
    source: String,
    /// For `bytes`: the content, when it is short text (link files, `version`).
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
}

pub fn json_image(img: &Image) -> JsonImage<'_> {
    JsonImage {
        name: img.name(),
        repository: &img.repo,
        tag: img.tag.as_deref(),
        digest: &img.digest,
        media_type: img.kind().media_type(),
        platforms: img.platforms().iter().map(|p| p.to_string()).collect(),
        manifests: img.manifests.len(),
        blobs: img.blobs.len(),
        size: img.size(),
    }
}

pub fn json_failure(e: &Error) -> JsonFailure {
    JsonFailure {
        image: e.image().map(str::to_string),
        error: e.root().to_string(),
        path: e.path().map(|p| p.display().to_string()),
        diagnostic: render("error", e),
    }
}

fn print_json(o: &Outcome, args: &WriteArgs) -> Result<()> {
    let (blob_files, blob_bytes) = o.plan.blob_totals();
    let planned_files = o.report.is_none().then(|| {
        o.plan
            .files
            .iter()
            .map(|(p, f)| PlannedFile {
                path: p.clone(),
                source: match &f.source {
                    Source::Blob(d) | Source::File { digest: d, .. } => d.to_string(),
                    Source::Bytes(_) => "bytes".into(),
                },
                content: match &f.source {
                    Source::Bytes(b) if b.len() <= 1024 => {
                        std::str::from_utf8(b).ok().map(str::to_string)
                    }
                    _ => None,
                },
            })
            .collect()
    });
    let doc = JsonOutcome {
        output: args.out.display().to_string(),
        dry_run: o.report.is_none(),
        images: o.selection.images.iter().map(json_image).collect(),
        files: o.plan.files.len(),
        blob_files,
        blob_bytes,
        report: o.report.as_ref(),
        planned_files,
        failures: o.selection.failures.iter().map(json_failure).collect(),
        skipped: o.selection.skipped.iter().map(json_failure).collect(),
    };
    let mut out = crate::cli::stdout();
    crate::cli::print_json(&mut out, &doc)
}
