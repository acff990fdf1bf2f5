//! `regkit export`: parsing and printing.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;

use crate::cli::ls::human_size;
use crate::cli::write::{
    exit_code, json_failure, note_copies, report_line, warn_skipped, JsonFailure,
};
use crate::cli::OutputArgs;
use crate::cli::{SelectArgs, ROOT_HELP};
use crate::command::export::{self, ExportOptions, Exported, Format};
use crate::digest::Digest;
use crate::error::Result;
use crate::layout::oci::RefName;
use crate::reference;
use crate::sink::fs::Report;

pub const AFTER_HELP: &str = "\
Formats:
  oci             an OCI image layout folder, blobs hardlinked from ROOT
  oci-archive     the same layout as one tar (ctr images import, skopeo oci-archive:)
  docker-archive  a `docker save` tar (docker load, skopeo docker-archive:, ctr images import);
                  one platform per image: a multi-arch image needs --platform

Manifests keep their exact bytes and media types, so every digest and signature
stays valid. Each index.json entry has the tag in org.opencontainers.image.ref.name
and the full name ([PREFIX/]repo:tag) in io.containerd.image.name.

--ref-name name puts the full name in the ref name too, so that skopeo's
oci:OUT:NAME finds each image when several repositories share a tag.

--oci-media-types rewrites Docker manifests and lists into OCI ones for tools that
read nothing else (skopeo 1.9's oci: transport, umoci). Config and layer bytes are
unchanged, but THE DIGESTS OF THE REWRITTEN MANIFESTS CHANGE (signatures on them no
longer apply); the old -> new digests are printed. A referrer exported with its
subject (an SBOM, a signature manifest) is rewritten to name the subject's new
digest, so its own digest changes too.

Examples:
  regkit export /var/lib/registry ./layout --format oci team/app:v1
  regkit export /var/lib/registry images.tar --format oci-archive --list release.list
  regkit export /var/lib/registry k8s.tar --format oci-archive --name-prefix harbor.local/k8s
  regkit export /var/lib/registry app.tar --format docker-archive multi/app:1 --platform linux/amd64
  regkit export /var/lib/registry ./layout --format oci --oci-media-types multi/app:1";

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[arg(help = ROOT_HELP)]
    pub root: PathBuf,
    /// The output: a folder (oci) or a tar file (oci-archive, docker-archive).
    pub out: PathBuf,
    /// What to write.
    #[arg(long, value_enum)]
    pub format: Format,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Put HOST[/NS] before every repository name in the names the output gives.
    #[arg(long, value_name = "HOST[/NS]")]
    pub name_prefix: Option<String>,
    /// Rewrite Docker manifests and lists with OCI media types (their digests change).
    #[arg(long)]
    pub oci_media_types: bool,
    /// What org.opencontainers.image.ref.name holds: the tag, or the full name.
    #[arg(long, value_enum, default_value = "tag")]
    pub ref_name: RefName,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn run(args: &ExportArgs, quiet: bool) -> Result<ExitCode> {
    let req = args.select.request()?;
    let name_prefix = args
        .name_prefix
        .as_deref()
        .map(reference::parse_name_prefix)
        .transpose()?;
    let opts = ExportOptions {
        format: args.format,
        name_prefix,
        oci_media_types: args.oci_media_types,
        ref_name: args.ref_name,
        write: args.output.write_options(quiet),
    };
    let done = export::run(&args.root, &args.out, &req, &opts)?;
    warn_skipped(&done.selection);
    if args.format != Format::DockerArchive && args.ref_name == RefName::Tag {
        note_shared_tags(&done);
    }
    if args.output.json {
        print_json(&done, args)?;
    } else {
        print_text(&done, args, quiet);
    }
    if let Some(r) = &done.report {
        note_copies(r, "ROOT and OUT");
    }
    Ok(exit_code(&done.selection))
}

/// Several repositories with one tag give several entries one ref name,
/// of which skopeo's `oci:OUT:TAG` finds only the first: say so.
fn note_shared_tags(done: &Exported) {
    let mut repos: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for img in &done.selection.images {
        if let Some(t) = &img.tag {
            repos.entry(t).or_default().push(&img.repo);
        }
    }
    let shared: Vec<String> = repos
        .iter()
        .filter(|(_, r)| r.len() > 1)
        .map(|(t, r)| format!("`{t}` ({})", r.join(", ")))
        .collect();
    if !shared.is_empty() {
        eprintln!(
            "note: {} tag(s) are in several repositories: {}; containerd tells them apart by io.containerd.image.name, but skopeo's oci:OUT:TAG finds only the first (--ref-name name makes ref names unique)",
            shared.len(),
            shared.join(", ")
        );
    }
}

fn print_text(done: &Exported, args: &ExportArgs, quiet: bool) {
    let mut out = crate::cli::stdout();
    let dry = args.output.dry_run;
    if dry {
        for (name, digest) in &done.names {
            let _ = writeln!(out, "{name}  {digest}");
        }
    }
    if !done.rewritten.is_empty() {
        let _ = writeln!(
            out,
            "rewritten with OCI media types (these digests change):"
        );
        for (old, new) in &done.rewritten {
            let _ = writeln!(out, "  {old} -> {new}");
        }
    }
    if quiet && !dry {
        return;
    }
    let (blobs, bytes) = done.plan.blob_totals();
    let _ = writeln!(
        out,
        "{} {} image(s) to {} ({}): {} files, {blobs} from blobs ({})",
        if dry { "would export" } else { "exported" },
        done.selection.images.len(),
        args.out.display(),
        format_name(args.format),
        done.plan.files.len(),
        human_size(bytes),
    );
    if let Some(r) = &done.report {
        let _ = writeln!(out, "{}", report_line(r));
    }
    if let Some(n) = done.archive_bytes {
        let _ = writeln!(out, "  archive: {}", human_size(n));
    }
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Oci => "oci",
        Format::OciArchive => "oci-archive",
        Format::DockerArchive => "docker-archive",
    }
}

#[derive(Serialize)]
struct JsonName<'a> {
    name: &'a str,
    digest: &'a Digest,
}

#[derive(Serialize)]
struct JsonExport<'a> {
    output: String,
    format: Format,
    dry_run: bool,
    images: Vec<JsonName<'a>>,
    files: usize,
    blob_files: usize,
    blob_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<&'a Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    archive_bytes: Option<u64>,
    rewritten: &'a BTreeMap<Digest, Digest>,
    failures: Vec<JsonFailure>,
    skipped: Vec<JsonFailure>,
}

fn print_json(done: &Exported, args: &ExportArgs) -> Result<()> {
    let (blob_files, blob_bytes) = done.plan.blob_totals();
    let doc = JsonExport {
        output: args.out.display().to_string(),
        format: args.format,
        dry_run: args.output.dry_run,
        images: done
            .names
            .iter()
            .map(|(name, digest)| JsonName { name, digest })
            .collect(),
        files: done.plan.files.len(),
        blob_files,
        blob_bytes,
        report: done.report.as_ref(),
        archive_bytes: done.archive_bytes,
        rewritten: &done.rewritten,
        failures: done.selection.failures.iter().map(json_failure).collect(),
        skipped: done.selection.skipped.iter().map(json_failure).collect(),
    };
    let mut out = crate::cli::stdout();
    crate::cli::print_json(&mut out, &doc)
}
