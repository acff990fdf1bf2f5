//! Printing `verify`: each finding rustc-style with every image it breaks,
//! then the counts.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;

use crate::cli::diagnostic::render;
use crate::cli::ls::human_size;
use crate::command;
use crate::error::{Error, Result};
use crate::reference::{self, ImageRef};
use crate::verify::{Class, Finding, Options, Orphan, Report};

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[arg(help = super::ROOT_HELP)]
    pub root: PathBuf,
    /// Images as name:tag, name@sha256:<hex>, or name (every tag); none means every tag.
    pub images: Vec<String>,
    /// A file of images (one per line, # comments) or a folder of *.list files; repeatable.
    #[arg(long, short = 'l', value_name = "FILE|DIR")]
    pub list: Vec<PathBuf>,
    /// Check sizes only; do not hash.
    #[arg(long)]
    pub fast: bool,
    /// Also hash every blob no tag references (orphans), and list them.
    #[arg(long)]
    pub all_blobs: bool,
    /// Print the findings as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &VerifyArgs, quiet: bool) -> Result<ExitCode> {
    let mut refs = args
        .images
        .iter()
        .map(|s| ImageRef::parse(s))
        .collect::<Result<Vec<_>>>()?;
    refs.extend(reference::read_lists(&args.list)?);
    if refs.is_empty() && !args.list.is_empty() {
        return Err(Error::BadList {
            message: "the image lists name no image".into(),
            path: args.list.first().cloned(),
        });
    }
    let opts = Options {
        hash: !args.fast,
        all_blobs: args.all_blobs,
        quiet: quiet || args.json,
    };
    let report = command::verify::run(&args.root, &refs, opts)?;
    let mut out = crate::cli::stdout();
    let written = if args.json {
        serde_json::to_writer_pretty(&mut out, &json(&report))
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
    } else if quiet
        && report.findings.is_empty()
        && report.orphans.is_none()
        && report.leftovers.is_empty()
    {
        Ok(())
    } else {
        write!(out, "{}", text(&report, opts))
    };
    written.map_err(|e| Error::io("write to standard output", "-", e))?;
    Ok(if report.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One finding as rustc prints an error, with every image it breaks.
pub fn render_finding(f: &Finding) -> String {
    let mut s = render("error", &f.error);
    match f.images.len() {
        0 => {}
        1 => s.push_str(&format!("   = image: {}\n", f.images[0])),
        n => s.push_str(&format!("   = images ({n}): {}\n", f.images.join(", "))),
    }
    s
}

fn text(r: &Report, opts: Options) -> String {
    let mut s = String::new();
    for f in &r.findings {
        s.push_str(&render_finding(f));
    }
    if let Some(orphans) = &r.orphans {
        for o in orphans {
            s.push_str(&format!(
                "orphan: {} ({}) is used by no tag\n  --> {}\n",
                o.digest,
                human_size(o.size),
                o.path.display()
            ));
        }
        let bytes: u64 = orphans.iter().map(|o| o.size).sum();
        s.push_str(&format!(
            "{} orphan blob(s), {}, that no tag references\n",
            orphans.len(),
            human_size(bytes)
        ));
    }
    for l in &r.leftovers {
        s.push_str(&format!(
            "note: regkit temporary {} ({}): {}\n",
            l.path.display(),
            human_size(l.bytes),
            match (l.stale, l.owner_gone) {
                (true, _) => "left by a run that ended; `regkit gc` removes it",
                (false, true) => {
                    "left by a run that ended; `regkit gc` removes it once it is 10 minutes old"
                }
                (false, false) => "a regkit run may be writing it now",
            }
        ));
    }
    let hashed = if opts.hash {
        format!("{} hashed", human_size(r.hashed_bytes))
    } else {
        "sizes only, --fast".to_string()
    };
    s.push_str(&format!(
        "verified {} image(s): {} manifest(s), {} blob(s) ({hashed}), {} link(s): ",
        r.images, r.manifests, r.blobs, r.links
    ));
    if r.findings.is_empty() {
        s.push_str("all good\n");
    } else {
        s.push_str(&format!(
            "{} broken blob(s), {} broken link(s)\n",
            r.count(Class::Blob),
            r.count(Class::Link)
        ));
    }
    s
}

#[derive(Serialize)]
struct JsonFinding<'a> {
    kind: &'static str,
    class: Class,
    message: String,
    path: Option<String>,
    images: &'a [String],
    diagnostic: String,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    ok: bool,
    images: usize,
    manifests: usize,
    blobs: usize,
    hashed_blobs: usize,
    hashed_bytes: u64,
    links: usize,
    broken_blobs: usize,
    broken_links: usize,
    findings: Vec<JsonFinding<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    orphans: Option<&'a [Orphan]>,
    leftovers: &'a [crate::store::Leftover],
    /// Requests sent to the object store (0 on disk).
    requests: u64,
}

fn json(r: &Report) -> JsonReport<'_> {
    JsonReport {
        ok: r.findings.is_empty(),
        images: r.images,
        manifests: r.manifests,
        blobs: r.blobs,
        hashed_blobs: r.hashed_blobs,
        hashed_bytes: r.hashed_bytes,
        links: r.links,
        broken_blobs: r.count(Class::Blob),
        broken_links: r.count(Class::Link),
        findings: r
            .findings
            .iter()
            .map(|f| JsonFinding {
                kind: f.kind(),
                class: f.class(),
                message: f.error.root().to_string(),
                path: f.error.path().map(|p| p.display().to_string()),
                images: &f.images,
                diagnostic: render_finding(f),
            })
            .collect(),
        orphans: r.orphans.as_deref(),
        leftovers: &r.leftovers,
        requests: r.requests,
    }
}
