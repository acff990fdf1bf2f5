//! `pack`: the registry tree of a selection, streamed from ROOT's blobs
//! into one (optionally compressed) tar, with `BUNDLE.json` beside it.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::atomic;
use crate::bundle::{self, BaseInfo, BlobEntry, Contents, HashingWriter, ImageEntry};
use crate::command::{open_and_select, WriteOptions};
use crate::compress::{self, Compression};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layout;
use crate::paths::{self, Parsed};
use crate::plan::{Plan, Source};
use crate::progress::Progress;
use crate::selection::{Request, Selection};
use crate::sink;

/// How to pack.
#[derive(Debug, Clone, Default)]
pub struct PackOptions {
    pub write: WriteOptions,
    /// `None`: from the bundle's file name.
    pub compression: Option<Compression>,
    /// A previous bundle, its `BUNDLE.json`, or a tree: leave out its blobs.
    pub base: Option<std::path::PathBuf>,
}

pub struct PackOutcome {
    pub selection: Selection,
    pub manifest: bundle::Manifest,
    /// False for a dry run.
    pub written: bool,
}

/// Packs the requested images into `bundle` (`-` for standard output).
pub fn run(
    root: &Path,
    bundle_path: &Path,
    req: &Request,
    opts: &PackOptions,
) -> Result<PackOutcome> {
    let to_stdout = bundle_path == Path::new("-");
    let json_path = bundle::manifest_path(bundle_path);
    if !to_stdout {
        super::refuse_overlap(
            root,
            &[
                (bundle_path, "the bundle"),
                (&json_path, "the bundle's description"),
            ],
        )?;
        // BUNDLE.json is part of the output.
        for p in [bundle_path, &json_path] {
            if p.symlink_metadata().is_ok() && !opts.write.force {
                return Err(Error::OutputExists { path: p.into() });
            }
        }
    }
    let (store, mut selection) = open_and_select(root, req)?;
    if req.keep_going && !opts.write.dry_run {
        // A stream cannot leave out an image once under way: check first.
        super::check_blobs_first(&store, &mut selection, opts.write.quiet)?;
    }
    let mut plan = layout::registry::plan(&selection)?;
    let base = match &opts.base {
        Some(b) => Some((b, Contents::load(b)?)),
        None => None,
    };
    let blobs = leave_out_base(&mut plan, base.as_ref().map(|b| &b.1));
    let compression = opts
        .compression
        .unwrap_or_else(|| Compression::from_file_name(bundle_path));
    let mut manifest = bundle::Manifest {
        format: 1,
        bundle: bundle_path
            .file_name()
            .map_or("-".into(), |n| n.to_string_lossy().into_owned()),
        sha256: String::new(),
        size: 0,
        compression,
        images: selection
            .images
            .iter()
            .map(|i| ImageEntry {
                name: i.name(),
                digest: i.digest.clone(),
                media_type: i.kind().media_type().into(),
            })
            .collect(),
        blob_count: blobs.iter().filter(|b| b.included).count(),
        blob_bytes: blobs.iter().filter(|b| b.included).map(|b| b.size).sum(),
        base: base.as_ref().map(|(source, _)| BaseInfo {
            source: source.display().to_string(),
            blobs_omitted: blobs.iter().filter(|b| !b.included).count(),
            bytes_omitted: blobs.iter().filter(|b| !b.included).map(|b| b.size).sum(),
        }),
        blobs,
    };
    if opts.write.dry_run {
        return Ok(PackOutcome {
            selection,
            manifest,
            written: false,
        });
    }
    let progress = Progress::new(
        plan.files.len() as u64,
        "packing",
        opts.write.quiet || to_stdout,
    );
    let threads = rayon::current_num_threads();
    let (sha256, size) = if to_stdout {
        let out = BufWriter::with_capacity(1 << 20, std::io::stdout());
        stream(&plan, &store, out, compression, threads, &progress)?
    } else {
        let tmp = sink::fs::sibling(bundle_path, "regkit-tmp");
        let result = File::create(&tmp)
            .map_err(|e| Error::io("create", &tmp, e))
            .and_then(|f| {
                stream(
                    &plan,
                    &store,
                    BufWriter::with_capacity(1 << 20, f),
                    compression,
                    threads,
                    &progress,
                )
            });
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        let (sha256, size) = result.map_err(|e| crate::command::with_image(e, &selection))?;
        manifest.sha256 = sha256.hex().to_string();
        manifest.size = size;
        place_both(&tmp, bundle_path, &json_path, &manifest, opts.write.force)?;
        (sha256, size)
    };
    progress.finish();
    manifest.sha256 = sha256.hex().to_string();
    manifest.size = size;
    Ok(PackOutcome {
        selection,
        manifest,
        written: true,
    })
}

/// Writes the tar of `plan` through the compressor into `out`; returns the
/// sha256 and length of the bytes written.
fn stream<W: Write + Send + 'static>(
    plan: &Plan,
    store: &crate::store::Store,
    out: W,
    compression: Compression,
    threads: usize,
    progress: &Progress,
) -> Result<(Digest, u64)> {
    let failed = |e: std::io::Error| Error::io("write the bundle", "-", e);
    // The compressor writes into a pipe whose far end hashes and writes.
    let (pipe_tx, pipe_rx) = std::sync::mpsc::sync_channel::<std::io::Result<(Digest, u64)>>(1);
    let hashing = HashingWriter::new(out);
    let sink = FinishOnDrop {
        inner: Some(hashing),
        done: pipe_tx,
    };
    let encoder = compress::encoder(compression, sink, threads).map_err(failed)?;
    let encoder = sink::tar::write(plan, store, encoder, progress)?;
    encoder.finish().map_err(failed)?;
    pipe_rx
        .recv()
        .map_err(|_| Error::invalid("the bundle writer stopped"))?
        .map_err(failed)
}

/// Hands the hashing writer's totals back once the compressor lets go of it.
struct FinishOnDrop {
    inner: Option<HashingWriter>,
    done: std::sync::mpsc::SyncSender<std::io::Result<(Digest, u64)>>,
}

impl Write for FinishOnDrop {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.as_mut().expect("open").write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        if let Some(w) = self.inner.take() {
            let _ = self.done.try_send(w.finish());
        }
    }
}

/// Removes from `plan` the blobs `base` has; returns every blob of the plan
/// with whether it stays.
fn leave_out_base(plan: &mut Plan, base: Option<&Contents>) -> Vec<BlobEntry> {
    let prefix = format!("{}/", paths::V2_PREFIX);
    let mut out = Vec::new();
    plan.files.retain(|path, f| {
        let Source::Blob(d) = &f.source else {
            return true;
        };
        let is_blob_data = path
            .strip_prefix(&prefix)
            .and_then(paths::parse)
            .is_some_and(|p| matches!(p, Parsed::BlobData(_)));
        if !is_blob_data {
            return true;
        }
        let included = !base.is_some_and(|b| b.blobs.contains_key(d));
        out.push(BlobEntry {
            digest: d.clone(),
            size: f.size,
            included,
        });
        included
    });
    out
}

/// Puts the finished bundle `tmp` and its description in place, each in one
/// step that fails if it appeared meanwhile (unless `force`); if the
/// description cannot be placed, the bundle is taken back out.
fn place_both(
    tmp: &Path,
    bundle_path: &Path,
    json_path: &Path,
    m: &bundle::Manifest,
    force: bool,
) -> Result<()> {
    let json_tmp = sink::fs::sibling(json_path, "regkit-tmp");
    let mut text = serde_json::to_vec_pretty(m).expect("serializable");
    text.push(b'\n');
    let placed = fs::write(&json_tmp, text)
        .map_err(|e| Error::io("write", &json_tmp, e))
        .and_then(|()| atomic::commit(tmp, bundle_path, force));
    if let Err(e) = placed {
        let _ = fs::remove_file(tmp);
        let _ = fs::remove_file(&json_tmp);
        return Err(e);
    }
    if let Err(e) = atomic::commit(&json_tmp, json_path, force) {
        let _ = fs::remove_file(&json_tmp);
        let _ = fs::remove_file(bundle_path);
        return Err(e);
    }
    Ok(())
}
