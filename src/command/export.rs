//! `export`: images to an OCI image layout (a folder or a tar) or a
//! `docker save` archive, by hardlinks where the output is a folder.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::command::{open_and_select, plan_progress, with_image, WriteOptions};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layout::{self, oci};
use crate::plan::Plan;
use crate::progress::Progress;
use crate::selection::{Request, Selection};
use crate::sink::{self, fs::Report};
use crate::store::Store;

/// What to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// An OCI image layout folder.
    Oci,
    /// An OCI image layout as one tar.
    OciArchive,
    /// A `docker save` tar.
    DockerArchive,
}

#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub format: Format,
    /// Put before every repository name (`harbor.local`, `host/ns`).
    pub name_prefix: Option<String>,
    /// Rewrite Docker manifests and lists with OCI media types.
    pub oci_media_types: bool,
    /// What an OCI layout's ref names hold.
    pub ref_name: oci::RefName,
    pub write: WriteOptions,
}

/// What an export did.
pub struct Exported {
    pub selection: Selection,
    pub plan: Plan,
    /// Each name the output gives, with the digest it names (the manifest's
    /// for an OCI layout, the config's, i.e. the image ID, for a docker
    /// archive).
    pub names: Vec<(String, Digest)>,
    /// Manifests rewritten with OCI media types: old digest → new.
    pub rewritten: BTreeMap<Digest, Digest>,
    /// For a folder, once written.
    pub report: Option<Report>,
    /// For an archive, once written: its size.
    pub archive_bytes: Option<u64>,
}

/// Exports the requested images of `root` to `out`.
pub fn run(root: &Path, out: &Path, req: &Request, opts: &ExportOptions) -> Result<Exported> {
    if opts.oci_media_types && opts.format == Format::DockerArchive {
        return Err(Error::invalid(
            "--oci-media-types applies to OCI layouts (oci, oci-archive), not to docker archives",
        ));
    }
    super::refuse_overlap(root, &[(out, "the output")])?;
    let (store, selection) = open_and_select(root, req)?;
    let prefix = opts.name_prefix.as_deref();
    let (plan, names, rewritten) = match opts.format {
        Format::Oci | Format::OciArchive => {
            let o = oci::Options {
                prefix,
                oci_media_types: opts.oci_media_types,
                ref_name: opts.ref_name,
            };
            let e = oci::plan(&selection, &store, o)?;
            let names = e
                .entries
                .iter()
                .map(|x| (x.annotations[oci::IMAGE_NAME].clone(), x.digest.clone()))
                .collect();
            (e.plan, names, e.rewritten)
        }
        Format::DockerArchive => {
            let (plan, entries) = layout::docker_archive::plan(&selection, prefix)?;
            let names = entries
                .iter()
                .flat_map(|e| e.repo_tags.iter().map(|t| (t.clone(), e.id.clone())))
                .collect();
            (plan, names, BTreeMap::new())
        }
    };
    let mut done = Exported {
        selection,
        plan,
        names,
        rewritten,
        report: None,
        archive_bytes: None,
    };
    if out.symlink_metadata().is_ok() && !opts.write.force {
        return Err(Error::OutputExists { path: out.into() });
    }
    if opts.write.dry_run {
        return Ok(done);
    }
    let progress = plan_progress(&done.plan, "exporting", &opts.write);
    let written = match opts.format {
        Format::Oci => sink::fs::write_new(&done.plan, &store, out, opts.write.force, &progress)
            .map(|r| done.report = Some(r)),
        Format::OciArchive | Format::DockerArchive => {
            write_tar(&done.plan, &store, out, opts.write.force, &progress)
                .map(|n| done.archive_bytes = Some(n))
        }
    };
    written.map_err(|e| with_image(e, &done.selection))?;
    progress.finish();
    Ok(done)
}

/// Streams `plan` as a tar into a hidden sibling of `out`, put in place in
/// one step once complete ([`crate::atomic::commit`]).
fn write_tar(
    plan: &Plan,
    store: &Store,
    out: &Path,
    force: bool,
    progress: &Progress,
) -> Result<u64> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| Error::io("create folder", parent, e))?;
    }
    let tmp = sink::fs::sibling(out, "regkit-tmp");
    let result = (|| {
        let file = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        let mut w = sink::tar::write(
            plan,
            store,
            BufWriter::with_capacity(1 << 20, file),
            progress,
        )?;
        w.flush().map_err(|e| Error::io("write", &tmp, e))?;
        let file = w
            .into_inner()
            .map_err(|e| Error::io("write", &tmp, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io("write", &tmp, e))?;
        let size = file
            .metadata()
            .map_err(|e| Error::io("stat", &tmp, e))?
            .len();
        crate::atomic::commit(&tmp, out, force)?;
        Ok(size)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
