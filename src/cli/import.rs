//! `regkit import`: parsing and printing.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;

use crate::cli::ls::human_size;
use crate::cli::write::{note_copies, report_line};
use crate::command::import::{self, ImportOptions, Imported};
use crate::digest::Digest;
use crate::error::Result;
use crate::import::Found;
use crate::sink::fs::Report;

pub const AFTER_HELP: &str = "\
Sources are recognised by their content:
  a dir: image folder         version + manifest.json (skopeo copy ... dir:); needs --repo
  a folder of dir: images     <repo>:<tag> folders, namespaces as folders
                              (regkit extract, skopeo sync --dest dir)
  an OCI layout               folder or tar (oci-archive); names from io.containerd.image.name,
                              else the tag in org.opencontainers.image.ref.name with --repo
  a docker save archive       tar with manifest.json (Config, RepoTags, Layers); Docker 25+
                              archives, which are OCI layouts too, are read as OCI

ROOT gets what the registry writes after a push: blobs (hardlinked from source
folders, checked against their digests), _layers links, a revision link for every
manifest and index child, and the tags. ROOT may be an existing tree: a file that
differs is refused, naming both, and nothing is written. Every digest is kept; a
docker save archive, which has no manifest, gets a Docker schema2 manifest of its
config and layers as they are (the image ID stays the same).

Examples:
  regkit import ./out /var/lib/registry                  # a tree regkit extract wrote
  regkit import images.tar /var/lib/registry             # oci-archive or docker save tar
  regkit import ./alpine-dir /var/lib/registry --repo library/alpine:3.19
  regkit import a.tar b.tar ./layout /srv/registry --dry-run";

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Image sources: dir: folders or trees of them, OCI layouts, oci-archive or docker save tars.
    #[arg(required = true, num_args = 1.., value_name = "SRC")]
    pub sources: Vec<PathBuf>,
    /// The registry's rootdirectory (holding docker/registry/v2); created if missing.
    #[arg(value_name = "ROOT")]
    pub root: PathBuf,
    /// The repository (and tag) for images whose source names none.
    #[arg(long, value_name = "NAME[:TAG]")]
    pub repo: Option<String>,
    /// Read and check the sources, print what would be imported; write nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &ImportArgs, quiet: bool) -> Result<ExitCode> {
    let opts = ImportOptions {
        repo: args.repo.clone(),
        dry_run: args.dry_run,
        quiet,
    };
    let done = import::run(&args.sources, &args.root, &opts)?;
    for s in &done.sources {
        for n in &s.notes {
            eprintln!("note: {n}");
        }
    }
    for f in done.images() {
        if !f.missing_children.is_empty() {
            eprintln!(
                "note: {}: {} child manifest(s) of the index are not in {} (left out, as --platform leaves them); the index keeps its bytes",
                f.name(),
                f.missing_children.len(),
                f.source.display()
            );
        }
    }
    if args.json {
        print_json(&done, args)?;
    } else if !quiet || args.dry_run {
        print_text(&done, args);
    }
    if let Some(r) = &done.report {
        note_copies(r, "the sources and ROOT");
    }
    Ok(ExitCode::SUCCESS)
}

fn print_text(done: &Imported, args: &ImportArgs) {
    let mut out = crate::cli::stdout();
    if args.dry_run {
        for f in done.images() {
            let _ = writeln!(
                out,
                "{}  {}  {}  {}",
                f.name(),
                f.digest,
                f.kind.short_name(),
                human_size(f.size())
            );
        }
    }
    let (blobs, bytes) = done.plan.blob_totals();
    let _ = writeln!(
        out,
        "{} {} image(s) from {} source(s) into {}: {} files, {blobs} from blobs ({})",
        if args.dry_run {
            "would import"
        } else {
            "imported"
        },
        done.images().count(),
        done.sources.len(),
        args.root.display(),
        done.plan.files.len(),
        human_size(bytes),
    );
    if let Some(r) = &done.report {
        let _ = writeln!(out, "{}", report_line(r));
    }
}

#[derive(Serialize)]
struct JsonImage<'a> {
    name: String,
    repository: &'a str,
    tag: Option<&'a str>,
    digest: &'a Digest,
    media_type: &'static str,
    manifests: usize,
    blobs: usize,
    size: u64,
    missing_children: &'a [Digest],
}

#[derive(Serialize)]
struct JsonSource<'a> {
    path: String,
    kind: &'static str,
    images: Vec<JsonImage<'a>>,
    notes: &'a [String],
}

#[derive(Serialize)]
struct JsonImport<'a> {
    root: String,
    dry_run: bool,
    sources: Vec<JsonSource<'a>>,
    files: usize,
    blob_files: usize,
    blob_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<&'a Report>,
}

fn json_image(f: &Found) -> JsonImage<'_> {
    JsonImage {
        name: f.name(),
        repository: &f.repo,
        tag: f.tag.as_deref(),
        digest: &f.digest,
        media_type: f.kind.media_type(),
        manifests: f.manifests.len(),
        blobs: f.blobs.len(),
        size: f.size(),
        missing_children: &f.missing_children,
    }
}

fn print_json(done: &Imported, args: &ImportArgs) -> Result<()> {
    let (blob_files, blob_bytes) = done.plan.blob_totals();
    let doc = JsonImport {
        root: args.root.display().to_string(),
        dry_run: args.dry_run,
        sources: done
            .sources
            .iter()
            .map(|s| JsonSource {
                path: s.path.display().to_string(),
                kind: s.kind.describe(s.archive),
                images: s.images.iter().map(json_image).collect(),
                notes: &s.notes,
            })
            .collect(),
        files: done.plan.files.len(),
        blob_files,
        blob_bytes,
        report: done.report.as_ref(),
    };
    let mut out = crate::cli::stdout();
    crate::cli::print_json(&mut out, &doc)
}
