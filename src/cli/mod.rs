//! Command-line parsing (clap) and printing; the work is in [`crate::command`].

mod bundle;
mod delete;
mod diagnostic;
mod du;
mod export;
mod gc;
mod import;
mod inspect;
mod ls;
mod pull;
mod push;
mod serve;
mod verify;
mod write;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::error::{Error, Result};
use crate::platform::Platform;
use crate::reference::{self, ImageRef};
use crate::selection::Request;

pub use diagnostic::print_error;

pub(crate) const ROOT_HELP: &str = "Registry storage: the registry's rootdirectory (holding docker/registry/v2), the v2 folder, a parent, or a bundle (.tar, .tar.gz, .tar.zst; recognised by content)";

#[derive(Parser, Debug)]
#[command(
    name = "regkit",
    version,
    about = "Work on a Docker Distribution registry's storage folder, offline: list, inspect, extract, select, bundle, push, convert, verify, gc, du",
    long_about = None,
    after_help = "Examples:\n  regkit ls /var/lib/registry\n  regkit extract /var/lib/registry ./out library/alpine:3.19\n  regkit select /var/lib/registry ./release --list images.list\n  regkit pack /var/lib/registry release.tar --list images.list\n  regkit push /var/lib/registry harbor.local/library --list images.list --creds admin:secret\n  regkit pull calico/cni:v3.16.3 quay.io/coreos/etcd /var/lib/registry\n  regkit verify /var/lib/registry && regkit gc /var/lib/registry --dry-run\n  regkit du /var/lib/registry --html usage.html\n\nExit codes: 0 ok, 1 failure, 2 usage, 130 interrupted (Ctrl-C, SIGTERM)."
)]
pub struct Cli {
    /// No progress bar, no summary on success.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List every repo:tag with its digest, media type, platforms and size.
    #[command(
        after_help = "Examples:\n  regkit ls /var/lib/registry\n  regkit ls /var/lib/registry --json | jq -r '.[].name'"
    )]
    Ls {
        #[arg(help = ROOT_HELP)]
        root: PathBuf,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Show an image as `skopeo inspect` does, from storage.
    #[command(
        after_help = "Examples:\n  regkit inspect /var/lib/registry library/alpine:3.19\n  regkit inspect /var/lib/registry multi/app:1 --platform linux/arm64 --config\n  regkit inspect /var/lib/registry team/app:v1 --raw | sha256sum"
    )]
    Inspect {
        #[arg(help = ROOT_HELP)]
        root: PathBuf,
        /// The image: name:tag or name@sha256:<hex> (a registry host is ignored).
        image: String,
        /// Print the manifest's exact bytes (the index's, unless --platform is given).
        #[arg(long, conflicts_with = "config")]
        raw: bool,
        /// Print the config blob's exact bytes.
        #[arg(long)]
        config: bool,
        /// For an index: the platform to show (default: this machine's).
        #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
        platform: Option<Platform>,
    },
    /// Extract images into containers/image `dir:` folders (OUT/<repo>:<tag>/), by hardlinks.
    #[command(
        after_help = "With no image named, every tag is extracted. The result is what\n`skopeo copy --all dir:OUT/<repo>:<tag> ...` and\n`skopeo sync --src dir --dest docker OUT/<ns> HOST/<ns>` read.\n\nExamples:\n  regkit extract /var/lib/registry ./out\n  regkit extract /var/lib/registry ./out team/app:v1 multi/app:1 --platform linux/amd64\n  regkit extract /var/lib/registry ./out --list release.list --list extra/"
    )]
    Extract(WriteArgs),
    /// Select images into a new registry storage tree, by hardlinks.
    #[command(
        after_help = "OUT may be an existing storage tree: images are added to it, and a file\nthat differs is refused. The real registry started on OUT serves exactly\nthe selected images.\n\nExamples:\n  regkit select /var/lib/registry ./release --list release.list\n  regkit select /var/lib/registry ./release team/app:v2 --dry-run"
    )]
    Select(WriteArgs),
    /// Pack images into one tar of the registry tree `select` would write, for air-gapped delivery.
    #[command(
        after_help = "The bundle holds paths under docker/registry/v2/, so `tar -xf BUNDLE -C /var/lib/registry`\n\
gives a tree the registry serves; `regkit unpack` merges it safely. BUNDLE.json is written\n\
beside it. Layers are gzip already, so --compress none is the default: gzip or zstd mostly\n\
spend CPU to shrink manifests and configs.\n\n\
Examples:\n  regkit pack /var/lib/registry release-1.0.tar --list release.list\n  \
regkit pack /var/lib/registry release-1.1.tar.zst --list release.list --base release-1.0.tar.json\n  \
regkit pack /var/lib/registry - team/app:v2 | ssh host regkit unpack - /var/lib/registry"
    )]
    Pack(bundle::PackArgs),
    /// Merge a bundle into a registry storage folder (or create one).
    #[command(
        after_help = "Blobs already present are kept; a link that differs is refused (--force replaces it).\n\
Links are written only after the whole bundle was read, blobs first, tags last.\n\
Every new blob's sha256 is checked (--no-verify skips it).\n\n\
Examples:\n  regkit unpack release-1.0.tar /var/lib/registry\n  regkit unpack - /var/lib/registry < release.tar.zst"
    )]
    Unpack(bundle::UnpackArgs),
    /// Images added, removed and changed between two bundles (or BUNDLE.json files, or trees), and the bytes a delta needs.
    #[command(
        after_help = "Examples:\n  regkit diff release-1.0.tar.json release-1.1.tar.json\n  regkit diff /mnt/site-registry /var/lib/registry --json"
    )]
    Diff {
        /// The old bundle, BUNDLE.json or storage tree.
        old: PathBuf,
        /// The new bundle, BUNDLE.json or storage tree.
        new: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Push images straight from storage to a live registry (Harbor, Distribution, ...).
    #[command(after_help = push::AFTER_HELP)]
    Push(Box<push::PushArgs>),
    /// Pull images from registries straight into a storage tree (Docker Hub, quay.io, Harbor, ...).
    #[command(after_help = pull::AFTER_HELP)]
    Pull(Box<pull::PullArgs>),
    /// Export images to an OCI layout (folder or tar) or a docker save archive.
    #[command(after_help = export::AFTER_HELP)]
    Export(export::ExportArgs),
    /// Import images from dir: folders, OCI layouts, oci-archive or docker save tars into ROOT.
    #[command(after_help = import::AFTER_HELP)]
    Import(import::ImportArgs),
    /// Check blobs (size, sha256), manifests and links of images, as the registry needs them.
    #[command(
        after_help = "With no image named, every tag is checked, and every link of every repository.\nEach broken blob is named with every image using it, each broken link with its\npath. Exit 1 if anything is broken, 0 if all is well.\n\nExamples:\n  regkit verify /var/lib/registry\n  regkit verify /var/lib/registry team/app:v1 --fast\n  regkit verify /var/lib/registry --all-blobs --json | jq '.findings[].path'"
    )]
    Verify(verify::VerifyArgs),
    /// Remove blobs no manifest needs (and with -m, untagged manifests), offline.
    #[command(
        after_help = "Mark and sweep like `docker-registry garbage-collect`, but an index's children\nand the referrers (`subject`) of a kept manifest are always kept. Removes the\n`_layers` links of removed blobs. Refuses to run while its lock file exists or\nwhile uploads were written to in the last 10 minutes (--force).\n\nExamples:\n  regkit gc /var/lib/registry --dry-run\n  regkit gc /var/lib/registry --delete-untagged --uploads-older-than 7d"
    )]
    Gc(gc::GcArgs),
    /// Remove tags (with --manifest, manifests) offline, as `skopeo delete` does over HTTP.
    #[command(
        after_help = "A tag delete removes the tag's folder, as the registry does. --manifest (or a\nname@sha256:<hex> reference) also removes the manifest's revision link and every\ntag naming it, as DELETE /v2/<name>/manifests/<digest> does. Blobs stay until\n`regkit gc`.\n\nExamples:\n  regkit delete /var/lib/registry team/app:v1\n  regkit delete /var/lib/registry team/app:v1 --manifest --dry-run\n  regkit delete /var/lib/registry team/app@sha256:3f5e... && regkit gc /var/lib/registry"
    )]
    Delete(delete::DeleteArgs),
    /// Where the space goes: bytes, unique and shared bytes per namespace, repository and tag; what gc frees.
    #[command(after_help = du::AFTER_HELP)]
    Du(du::DuArgs),
    /// Serve ROOT (a tree or a bundle) as a read-only registry for pulls.
    #[command(after_help = serve::AFTER_HELP)]
    Serve(serve::ServeArgs),
}

/// Which images: names and lists in the seed format.
#[derive(Args, Debug, Clone)]
pub struct SelectArgs {
    /// Images as name:tag, name@sha256:<hex>, or name (every tag); none means every tag.
    pub images: Vec<String>,
    /// A file of images (one per line, # comments) or a folder of *.list files; repeatable.
    #[arg(long, short = 'l', value_name = "FILE|DIR")]
    pub list: Vec<PathBuf>,
    /// Keep only these platforms of multi-arch images; repeatable.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Vec<Platform>,
    /// Skip images that are not in ROOT (with a warning) instead of failing.
    #[arg(long)]
    pub skip_missing: bool,
    /// Do every image that can be done, then report those that failed (exit 1).
    #[arg(long)]
    pub keep_going: bool,
    /// Of a repository's tags (or every tag), those this regular expression matches (anywhere: anchor with ^...$).
    #[arg(long, value_name = "RE")]
    pub tag_regex: Option<String>,
    /// Of a repository's tags (or every tag), the versions in this range (`>=1.2, <2`, `~1.2`, `^1.2`, `1.x`).
    #[arg(long, value_name = "RANGE")]
    pub semver: Option<String>,
    /// Each image's referrers travel with it: manifests whose subject it is, and its cosign tags.
    #[arg(long)]
    pub referrers: bool,
}

#[derive(Args, Debug)]
pub struct WriteArgs {
    #[arg(help = ROOT_HELP)]
    pub root: PathBuf,
    /// The output folder.
    pub out: PathBuf,
    #[command(flatten)]
    pub select: SelectArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// How a command that writes an output writes it.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Replace an existing output (only once the new one is complete).
    #[arg(long)]
    pub force: bool,
    /// Print what would be written; write nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Print the result as JSON, for scripts.
    #[arg(long)]
    pub json: bool,
}

impl OutputArgs {
    pub fn write_options(&self, quiet: bool) -> crate::command::WriteOptions {
        crate::command::WriteOptions {
            force: self.force,
            dry_run: self.dry_run,
            quiet,
        }
    }
}

/// Prints `value` as pretty JSON and a newline.
pub fn print_json(out: &mut dyn std::io::Write, value: &impl serde::Serialize) -> Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(out))
        .map_err(|e| Error::io("write to standard output", "-", e))
}

/// Standard output, for everything a command prints. When the reader has
/// gone away (`regkit ls ROOT | head`), the process ends quietly with exit
/// code 0, as ripgrep does: what is left to print is not wanted. Printing
/// comes after the work, so nothing is left half-done.
pub fn stdout() -> Stdout {
    Stdout(std::io::stdout().lock())
}

pub struct Stdout(std::io::StdoutLock<'static>);

impl Stdout {
    fn quiet_on_broken_pipe<T>(r: std::io::Result<T>) -> std::io::Result<T> {
        match r {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
            r => r,
        }
    }
}

impl std::io::Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Self::quiet_on_broken_pipe(self.0.write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Self::quiet_on_broken_pipe(self.0.flush())
    }
}

impl SelectArgs {
    pub fn request(&self) -> Result<Request> {
        let mut refs = self
            .images
            .iter()
            .map(|s| ImageRef::parse(s))
            .collect::<Result<Vec<_>>>()?;
        refs.extend(reference::read_lists(&self.list)?);
        if refs.is_empty() && !self.list.is_empty() {
            return Err(Error::BadList {
                message: "the image lists name no image".into(),
                path: self.list.first().cloned(),
            });
        }
        Ok(Request {
            refs,
            platforms: self.platform.clone(),
            skip_missing: self.skip_missing,
            keep_going: self.keep_going,
            blobs_checked_on_write: false,
            tags: crate::tags::TagFilter::new(self.tag_regex.as_deref(), self.semver.as_deref())?,
            referrers: self.referrers,
        })
    }
}

impl Command {
    /// The image selection of the commands that take one (and with it
    /// `--skip-missing`).
    fn select_args(&self) -> Option<&SelectArgs> {
        match self {
            Command::Extract(a) | Command::Select(a) => Some(&a.select),
            Command::Pack(a) => Some(&a.select),
            Command::Push(a) => Some(&a.select),
            Command::Export(a) => Some(&a.select),
            Command::Du(a) => Some(&a.select),
            Command::Ls { .. }
            | Command::Inspect { .. }
            | Command::Unpack(_)
            | Command::Diff { .. }
            | Command::Import(_)
            | Command::Pull(_)
            | Command::Verify(_)
            | Command::Gc(_)
            | Command::Delete(_)
            | Command::Serve(_) => None,
        }
    }
}

/// Runs the parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let quiet = cli.quiet;
    if cli.command.select_args().is_some() {
        diagnostic::offer_skip_missing();
    }
    let result = match cli.command {
        Command::Ls { root, json } => ls::run(&root, json),
        Command::Inspect {
            root,
            image,
            raw,
            config,
            platform,
        } => inspect::run(&root, &image, raw, config, platform.as_ref()),
        Command::Extract(args) => write::run(write::Kind::Extract, &args, quiet),
        Command::Select(args) => write::run(write::Kind::Select, &args, quiet),
        Command::Pack(args) => bundle::pack(&args, quiet),
        Command::Unpack(args) => bundle::unpack(&args, quiet),
        Command::Diff { old, new, json } => bundle::diff(&old, &new, json),
        Command::Push(args) => push::run(&args, quiet),
        Command::Pull(args) => pull::run(&args, quiet),
        Command::Export(args) => export::run(&args, quiet),
        Command::Import(args) => import::run(&args, quiet),
        Command::Verify(args) => verify::run(&args, quiet),
        Command::Gc(args) => gc::run(&args, quiet),
        Command::Delete(args) => delete::run(&args, quiet),
        Command::Du(args) => du::run(&args, quiet),
        Command::Serve(args) => serve::run(&args, quiet),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            print_error(&e);
            exit_code_for(&e)
        }
    }
}

/// 2 for usage errors (bad references or lists), 130 after Ctrl-C, 1 for
/// everything else.
pub fn exit_code_for(e: &Error) -> ExitCode {
    match e.root() {
        Error::BadReference { .. } | Error::BadList { .. } => ExitCode::from(2),
        Error::Interrupted => ExitCode::from(130),
        _ => ExitCode::from(1),
    }
}
