//! Applying a registry-layout plan to a storage tree through its store's
//! write half: merging into an existing tree (`select` into a tree,
//! `import`), on disk or in an object store.
//!
//! Everything that already exists is checked first (a file that differs is
//! an error naming both, and nothing is written); then blobs go in, then the
//! `_layers` and then the revision links that reach them, then tags, each tag whole
//! (see [`Store::put_tag`]). A registry serving the tree meanwhile never sees
//! a link to a missing blob or a tag without its `current` link, and a run
//! stopped at any point leaves a tree that a rerun completes.

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::interrupt;
use crate::paths::{self, Parsed, Spec};
use crate::plan::{describe, FileEntry, Plan, Source};
use crate::progress::Progress;
use crate::sink::fs::Report;
use crate::sink::place::Placer;
use crate::store::{Body, LinkPut, Store};

/// A tag to put: (repo, tag), its current link, its index entries, and
/// whether the tree has it already.
type TagPut<'a> = (&'a (String, String), &'a Digest, &'a Vec<Digest>, bool);

/// A plan's files, typed by what they are in the tree.
#[derive(Default)]
struct Typed<'a> {
    blobs: Vec<(Digest, &'a FileEntry)>,
    /// Revision and `_layers` links: (path in the tree, digest).
    links: Vec<(Parsed, Digest)>,
    /// (repo, tag) → (current, index entries).
    tags: BTreeMap<(String, String), (Option<Digest>, Vec<Digest>)>,
    /// Folders to create (the empty `_uploads/` of each repository).
    dirs: Vec<String>,
}

fn typed(plan: &Plan) -> Result<Typed<'_>> {
    let prefix = format!("{}/", paths::V2_PREFIX);
    let rel = |p: &str| -> Result<String> {
        p.strip_prefix(&prefix)
            .map(str::to_string)
            .ok_or_else(|| Error::invalid(format!("`{p}` is not in a registry tree's layout")))
    };
    let mut t = Typed::default();
    for (path, entry) in &plan.files {
        let r = rel(path)?;
        let parsed = paths::parse(&r)
            .ok_or_else(|| Error::invalid(format!("`{r}` is not a file of the storage layout")))?;
        if let Parsed::BlobData(d) = parsed {
            t.blobs.push((d, entry));
            continue;
        }
        let Source::Bytes(b) = &entry.source else {
            return Err(Error::invalid(format!("`{r}` should be a link")));
        };
        let digest = paths::parse_link(b).map_err(|e| Error::BadLink {
            path: r.clone().into(),
            found: e.found,
        })?;
        match parsed {
            Parsed::TagCurrentLink { repo, tag } => {
                t.tags.entry((repo, tag)).or_default().0 = Some(digest)
            }
            Parsed::TagIndexLink { repo, tag, .. } => {
                t.tags.entry((repo, tag)).or_default().1.push(digest)
            }
            p @ (Parsed::RevisionLink { .. } | Parsed::LayerLink { .. }) => {
                t.links.push((p, digest))
            }
            _ => {
                return Err(Error::invalid(format!(
                    "`{r}` cannot be merged into a tree"
                )))
            }
        }
    }
    for d in &plan.dirs {
        t.dirs.push(rel(d)?);
    }
    Ok(t)
}

/// The spec of a link path parsed by [`paths::parse`].
fn link_spec(p: &Parsed) -> Spec<'_> {
    match p {
        Parsed::RevisionLink { repo, digest } => Spec::RevisionLink(repo, digest),
        Parsed::LayerLink { repo, digest } => Spec::LayerLink(repo, digest),
        Parsed::TagCurrentLink { repo, tag } => Spec::TagCurrentLink(repo, tag),
        Parsed::TagIndexLink { repo, tag, digest } => Spec::TagIndexLink(repo, tag, digest),
        Parsed::BlobData(d) => Spec::BlobData(d),
        Parsed::Upload { repo, id } => Spec::Upload(repo, id),
    }
}

/// Where the blobs of a plan (its [`Source::Blob`] entries) come from: a
/// tree (`select`), or a registry over HTTP (`pull`).
pub trait Blobs: Sync {
    /// Whether `dst` has the blob `d` of `entry` already (an error if it
    /// holds other bytes).
    fn present(&self, dst: &Store, d: &Digest, entry: &FileEntry) -> Result<bool>;
    /// Puts the blob `d` into `dst`, checked against its digest where its
    /// bytes are copied. `Ok(None)`: it was there.
    fn put(&self, dst: &Store, d: &Digest) -> Result<Option<crate::store::Method>>;
}

impl Blobs for Store {
    fn present(&self, dst: &Store, d: &Digest, entry: &FileEntry) -> Result<bool> {
        blob_present(self.blob_local_path(d), dst, d, entry)
    }

    fn put(&self, dst: &Store, d: &Digest) -> Result<Option<crate::store::Method>> {
        dst.copy_blob_from(self, d)
    }
}

/// How a merge treats what the tree has.
#[derive(Debug, Clone, Copy, Default)]
pub struct MergeOptions {
    /// A tag that names another digest is moved to the new one (its index
    /// keeps the old entry), as the registry does when a tag is pushed
    /// again; otherwise it is a conflict.
    pub move_tags: bool,
    /// In a bucket, each file is looked up by itself rather than by one
    /// listing of the whole tree: for many small merges (`pull` merges each
    /// image on its own), where a listing each would cost more than it saves.
    pub no_listing: bool,
}

/// Adds `plan` (paths from `docker/registry/v2/`) to the tree of `dst`;
/// blobs come from `src` (or the local files an import names).
pub fn merge(plan: &Plan, src: &Store, dst: &Store, progress: &Progress) -> Result<Report> {
    merge_from(plan, src, dst, progress, MergeOptions::default())
}

/// [`merge`], with blobs from any source.
pub fn merge_from(
    plan: &Plan,
    src: &dyn Blobs,
    dst: &Store,
    progress: &Progress,
    opts: MergeOptions,
) -> Result<Report> {
    let t = typed(plan)?;
    // In a bucket, one listing says what exists (a request per 1000 files,
    // not one per file).
    let listed = match dst.s3().filter(|_| !opts.no_listing) {
        Some(b) => Some(
            b.files()
                .map_err(|e| Error::io("list folder", dst.display(&Spec::RepositoriesRoot), e))?,
        ),
        None => None,
    };
    let absent = |spec: &Spec| {
        listed
            .as_ref()
            .is_some_and(|l| !l.contains_key(&spec.rel()))
    };
    // Check everything before writing anything.
    let blobs_present: Vec<bool> = t
        .blobs
        .par_iter()
        .map(
            |(d, e)| match listed.as_ref().map(|l| l.get(&Spec::BlobData(d).rel())) {
                // In a bucket: listed with its size. One of the right size is
                // taken as it is (as the registry takes it); `verify` hashes.
                Some(None) => Ok(false),
                Some(Some(&size)) if size == e.size => Ok(true),
                Some(Some(&size)) => Err(Error::Conflict {
                    path: dst.display(&Spec::BlobData(d)),
                    existing: format!("{size} bytes, not {}", e.size),
                    wanted: describe(&e.source),
                }),
                None => match &e.source {
                    Source::Blob(_) => src.present(dst, d, e),
                    Source::File { path, .. } => blob_present(Some(path.clone()), dst, d, e),
                    Source::Bytes(_) => blob_present(None, dst, d, e),
                },
            },
        )
        .collect::<Result<_>>()?;
    let links_present: Vec<bool> = t
        .links
        .par_iter()
        .map(|(p, d)| {
            let spec = link_spec(p);
            match absent(&spec) {
                true => Ok(false),
                false => link_present(dst, &spec, d),
            }
        })
        .collect::<Result<_>>()?;
    let tags: Vec<TagPut> = t
        .tags
        .iter()
        .map(|(key, (current, index))| {
            let current = current.as_ref().ok_or_else(|| {
                Error::invalid(format!("tag {}:{} has no current link", key.0, key.1))
            })?;
            let spec = Spec::TagCurrentLink(&key.0, &key.1);
            let present = !absent(&spec)
                && match link_present(dst, &spec, current) {
                    Err(Error::Conflict { .. }) if opts.move_tags => false,
                    r => r?,
                };
            Ok((key, current, index, present))
        })
        .collect::<Result<_>>()?;
    // Files, as the plan counts them: a tag is its current link and its
    // index entries.
    let existing = (blobs_present
        .iter()
        .chain(&links_present)
        .filter(|p| **p)
        .count()
        + tags
            .iter()
            .filter(|t| t.3)
            .map(|t| 1 + t.2.len())
            .sum::<usize>()) as u64;
    progress.inc(existing);

    let placer = Placer::new();
    let todo_blobs: Vec<_> = t
        .blobs
        .iter()
        .zip(&blobs_present)
        .filter(|x| !x.1)
        .map(|x| x.0)
        .collect();
    todo_blobs.par_iter().try_for_each(|(d, entry)| {
        interrupt::check()?;
        let put = match &entry.source {
            Source::Blob(_) => src.put(dst, d)?,
            Source::File { path, digest } => dst.put_blob(d, Body::File { path, digest }, path)?,
            Source::Bytes(b) => {
                let mut r = &b[..];
                let body = Body::Stream {
                    reader: &mut r,
                    digest: Some(d),
                };
                dst.put_blob(d, body, Path::new("-"))?
            }
        };
        if let Some(m) = put {
            placer.record(m);
        }
        progress.inc(1);
        Ok::<_, Error>(())
    })?;
    let todo_links: Vec<_> = t
        .links
        .iter()
        .zip(&links_present)
        .filter(|x| !x.1)
        .map(|x| x.0)
        .collect();
    // `_layers` links before revision links: a manifest servable by digest
    // has its blobs servable too.
    let (layers, revisions): (Vec<_>, Vec<_>) = todo_links
        .into_iter()
        .partition(|(p, _)| matches!(p, Parsed::LayerLink { .. }));
    for links in [layers, revisions] {
        links.par_iter().try_for_each(|(p, d)| {
            interrupt::check()?;
            if dst.put_link(&link_spec(p), d, false)? == LinkPut::Written {
                placer.record(crate::store::Method::Written);
            }
            progress.inc(1);
            Ok::<_, Error>(())
        })?;
    }
    for d in &t.dirs {
        dst.create_dir(&DirSpec(d).spec())?;
    }
    tags.par_iter()
        .filter(|t| !t.3)
        .try_for_each(|((repo, tag), current, index, _)| {
            interrupt::check()?;
            dst.put_tag(repo, tag, current, index, opts.move_tags)?;
            for _ in 0..=index.len() {
                placer.record(crate::store::Method::Written);
            }
            progress.inc(1 + index.len() as u64);
            Ok::<_, Error>(())
        })?;
    Ok(Report {
        counts: placer.counts(),
        existing,
    })
}

/// A plan folder (relative to `v2`) as a spec the store can create.
struct DirSpec<'a>(&'a str);

impl DirSpec<'_> {
    fn spec(&self) -> Spec<'_> {
        // Plans hold one kind of empty folder: a repository's `_uploads/`.
        match self
            .0
            .strip_prefix("repositories/")
            .and_then(|r| r.strip_suffix("/_uploads"))
        {
            Some(repo) => Spec::UploadsRoot(repo),
            None => Spec::Repository(self.0),
        }
    }
}

/// Whether `dst` has the blob already (an error if it holds other bytes).
/// `from` is the source's local file of it, if it has one (a file that is
/// the tree's own is present without a read).
pub fn blob_present(
    from: Option<std::path::PathBuf>,
    dst: &Store,
    d: &Digest,
    entry: &FileEntry,
) -> Result<bool> {
    let Some(size) = dst.blob_size(d)? else {
        return Ok(false);
    };
    let path = dst.display(&Spec::BlobData(d));
    let conflict = |existing: String| Error::Conflict {
        path: path.clone(),
        existing,
        wanted: describe(&entry.source),
    };
    if let (Some(a), Some(b)) = (from, dst.blob_local_path(d)) {
        if same_file(&a, &b) {
            return Ok(true);
        }
    }
    if size != entry.size {
        return Err(conflict(format!("{size} bytes, not {}", entry.size)));
    }
    let reader = dst.open_blob(d, "blob")?;
    let (actual, _) = crate::digest::hash_reader(d.algorithm(), reader)
        .map_err(|e| Error::io("read", &path, e))?;
    if actual == *d {
        Ok(true)
    } else {
        Err(conflict(format!("blob {actual}")))
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (a.metadata(), b.metadata()) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Whether the link at `spec` holds `d` already (an error if it holds
/// something else).
fn link_present(dst: &Store, spec: &Spec, d: &Digest) -> Result<bool> {
    match dst.read_file(spec, 1024)? {
        None => Ok(false),
        Some(have) if have == paths::link_bytes(d) => Ok(true),
        Some(have) => Err(Error::Conflict {
            path: dst.display(spec),
            existing: describe(&Source::Bytes(have.into())),
            wanted: describe(&Source::Bytes(paths::link_bytes(d).into())),
        }),
    }
}
