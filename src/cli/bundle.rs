//! Parsing and printing `pack`, `unpack` and `diff`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use crate::cli::diagnostic::print_warning;
use crate::cli::ls::human_size;
use crate::cli::{OutputArgs, SelectArgs};
use crate::command::diff;
use crate::command::pack::{self, PackOptions};
use crate::command::unpack::{self, UnpackOptions};
use crate::compress::Compression;
use crate::error::{Error, Result};

#[derive(Args, Debug)]
pub struct PackArgs {
    #[arg(help = super::ROOT_HELP)]
    pub root: PathBuf,
    /// The bundle to write (`-` for standard output).
    pub bundle: PathBuf,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Compression (default: from the name: .tar, .tar.gz/.tgz, .tar.zst; none for `-`).
    #[arg(long, value_enum)]
    pub compress: Option<Compression>,
    /// A previous bundle, its BUNDLE.json, or a storage tree: leave out the blobs it has.
    #[arg(long, value_name = "OLD")]
    pub base: Option<PathBuf>,
    /// --json prints the bundle description (BUNDLE.json) instead of a summary.
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct UnpackArgs {
    /// The bundle (`-` for standard input); .tar, .tar.gz and .tar.zst are recognised by content.
    pub bundle: PathBuf,
    /// The registry's root directory (holding docker/registry/v2); created if missing.
    pub root: PathBuf,
    /// Check every new blob's sha256 (the default).
    #[arg(long, conflicts_with = "no_verify")]
    pub verify: bool,
    /// Do not check blob digests (e.g. once the bundle's sha256 was checked against BUNDLE.json).
    #[arg(long)]
    pub no_verify: bool,
    /// Replace links that differ.
    #[arg(long)]
    pub force: bool,
    /// Read the whole bundle and print what would change; write nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

pub fn pack(args: &PackArgs, quiet: bool) -> Result<ExitCode> {
    let req = args.select.request()?;
    let opts = PackOptions {
        write: args.output.write_options(quiet),
        compression: args.compress,
        base: args.base.clone(),
    };
    let outcome = pack::run(&args.root, &args.bundle, &req, &opts)?;
    for e in &outcome.selection.skipped {
        print_warning(e);
    }
    let m = &outcome.manifest;
    // With the bundle on standard output, the summary goes to standard error.
    let mut out: Box<dyn Write> = if args.bundle == Path::new("-") {
        Box::new(std::io::stderr())
    } else {
        Box::new(crate::cli::stdout())
    };
    if args.output.json {
        crate::cli::print_json(&mut out, m)?;
    } else if !quiet || args.output.dry_run {
        let verb = if outcome.written {
            "packed"
        } else {
            "would pack"
        };
        let _ = writeln!(
            out,
            "{verb} {} image(s) into {}: {} blobs ({}){}",
            m.images.len(),
            args.bundle.display(),
            m.blob_count,
            human_size(m.blob_bytes),
            m.base
                .as_ref()
                .map(|b| format!(
                    ", {} blobs ({}) left to the base",
                    b.blobs_omitted,
                    human_size(b.bytes_omitted)
                ))
                .unwrap_or_default()
        );
        if outcome.written {
            let c = format!("{:?}", m.compression).to_lowercase();
            let _ = writeln!(
                out,
                "  compression {c}, {}, sha256 {}",
                human_size(m.size),
                m.sha256
            );
        }
        for i in &m.images {
            let _ = writeln!(out, "  {}  {}", i.name, i.digest);
        }
    }
    Ok(failures(&outcome.selection.failures))
}

fn failures(errors: &[Error]) -> ExitCode {
    if errors.is_empty() {
        return ExitCode::SUCCESS;
    }
    for e in errors {
        crate::cli::print_error(e);
    }
    ExitCode::from(1)
}

pub fn unpack(args: &UnpackArgs, quiet: bool) -> Result<ExitCode> {
    let opts = UnpackOptions {
        verify: !args.no_verify,
        force: args.force,
        dry_run: args.dry_run,
        quiet,
    };
    let r = unpack::run(&args.bundle, &args.root, &opts)?;
    const SHOWN: usize = 10;
    for note in r.skipped.iter().take(SHOWN) {
        eprintln!("note: skipped {note}");
    }
    if r.skipped.len() > SHOWN {
        eprintln!(
            "note: skipped {} more entries (see --json)",
            r.skipped.len() - SHOWN
        );
    }
    let mut out = crate::cli::stdout();
    if args.json {
        crate::cli::print_json(&mut out, &r)?;
    } else if !quiet || args.dry_run {
        let verb = if r.dry_run {
            "would unpack"
        } else {
            "unpacked"
        };
        let _ = writeln!(
            out,
            "{verb} {} image(s) into {}: {} blobs written ({}), {} already present; {} links written, {} already present{}{}",
            r.images.len(),
            args.root.display(),
            r.blobs_written,
            human_size(r.bytes_written),
            r.blobs_present,
            r.links_written,
            r.links_present,
            if r.links_replaced > 0 { format!(", {} replaced", r.links_replaced) } else { String::new() },
            if r.verified { "; digests verified" } else { "" },
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn diff(old: &Path, new: &Path, json: bool) -> Result<ExitCode> {
    let d = diff::run(old, new)?;
    let mut out = crate::cli::stdout();
    if json {
        crate::cli::print_json(&mut out, &d)?;
        return Ok(ExitCode::SUCCESS);
    }
    for (n, dg) in &d.added {
        let _ = writeln!(out, "+ {n}  {dg}");
    }
    for (n, dg) in &d.removed {
        let _ = writeln!(out, "- {n}  {dg}");
    }
    for c in &d.changed {
        let _ = writeln!(out, "~ {}  {} -> {}", c.name, c.old, c.new);
    }
    let _ = writeln!(
        out,
        "{} added, {} removed, {} changed; a delta needs {} blobs ({})",
        d.added.len(),
        d.removed.len(),
        d.changed.len(),
        d.delta_blobs,
        human_size(d.delta_bytes)
    );
    Ok(ExitCode::SUCCESS)
}
