//! Running and printing `delete`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::command::delete;
use crate::error::{Error, Result};
use crate::reference::ImageRef;

#[derive(Args, Debug)]
pub struct DeleteArgs {
    #[arg(help = super::ROOT_HELP)]
    pub root: PathBuf,
    /// Images as name:tag, name@sha256:<hex> (a manifest), or name (every tag).
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Also remove the manifest (its revision link) and every tag naming it.
    #[arg(long)]
    pub manifest: bool,
    /// Print what would be removed; remove nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &DeleteArgs, quiet: bool) -> Result<ExitCode> {
    let refs = args
        .images
        .iter()
        .map(|s| ImageRef::parse(s))
        .collect::<Result<Vec<_>>>()?;
    let d = delete::run(&args.root, &refs, args.manifest, args.dry_run)?;
    let mut out = crate::cli::stdout();
    let written = if args.json {
        serde_json::to_writer_pretty(&mut out, &d)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
    } else if !quiet || args.dry_run {
        let verb = if args.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        let mut s = String::new();
        for (repo, tag) in &d.tags {
            s.push_str(&format!("{verb} tag {repo}:{tag}\n"));
        }
        for (repo, digest) in &d.manifests {
            s.push_str(&format!("{verb} manifest {repo}@{digest}\n"));
        }
        s.push_str(&format!(
            "{verb} {} tag(s) and {} manifest(s); `regkit gc` frees the blobs no manifest needs any more\n",
            d.tags.len(),
            d.manifests.len()
        ));
        write!(out, "{s}")
    } else {
        Ok(())
    };
    written.map_err(|e| Error::io("write to standard output", "-", e))?;
    Ok(ExitCode::SUCCESS)
}
