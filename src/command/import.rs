//! `import`: images from `dir:` folders, OCI layouts and archives into a
//! registry storage tree, as the registry writes them after a push.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::command::StorageTarget;
use crate::error::Result;
use crate::import::{self, files::Hashes, tar::Staging, Found, GivenName};
use crate::paths::V2_PREFIX;
use crate::plan::Plan;
use crate::progress::Progress;
use crate::sink::{self, fs::Report};
use crate::store::{FsBackend, Store};

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// `NAME[:TAG]` for images whose source names none.
    pub repo: Option<String>,
    /// Read and check everything; write nothing to ROOT.
    pub dry_run: bool,
    pub quiet: bool,
}

/// What an import did.
pub struct Imported {
    pub sources: Vec<import::Source>,
    pub plan: Plan,
    /// `None` for a dry run.
    pub report: Option<Report>,
}

impl Imported {
    pub fn images(&self) -> impl Iterator<Item = &Found> {
        self.sources.iter().flat_map(|s| &s.images)
    }
}

/// Imports every image of `sources` into the storage tree `root` (created
/// if missing). Every source is read and checked before anything is
/// written; then blobs go in before the links to them, tags last, and a
/// file of `root` that differs is refused, naming both.
pub fn run(sources: &[PathBuf], root: &Path, opts: &ImportOptions) -> Result<Imported> {
    let target = StorageTarget::of(root, None)?;
    if Store::can_create(root)? {
        let v2 = root.join(V2_PREFIX);
        let protected = crate::overlap::Protected::tree(root, &v2);
        for s in sources {
            protected.check(s, "the source")?;
        }
    }
    let given = opts.repo.as_deref().map(GivenName::parse).transpose()?;
    // Archives are unpacked beside ROOT, on its filesystem, so that their
    // files can be hardlinked in; the folder is removed at the end.
    // (A bucket has no filesystem to link from: archives go to a temporary
    // folder, and their files are uploaded from there.)
    let anchor = match Store::is_remote(root) {
        true => std::env::temp_dir().join("regkit-import"),
        false => std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf()),
    };
    let mut staging = Staging::new(sink::fs::sibling(&anchor, "regkit-import"));
    let hashes = Arc::new(Hashes::default());
    let sources = sources
        .iter()
        .map(|s| import::read(s, given.as_ref(), &mut staging, hashes.clone()))
        .collect::<Result<Vec<_>>>()?;
    let plan = import::plan(sources.iter().flat_map(|s| &s.images))?;
    let mut done = Imported {
        sources,
        plan,
        report: None,
    };
    if opts.dry_run {
        return Ok(done);
    }
    let v2 = root.join(V2_PREFIX);
    let store = Store::with_backend(Arc::new(FsBackend::new(v2.clone())), v2);
    let progress = Progress::new(done.plan.files.len() as u64, "importing", opts.quiet);
    done.report = Some(target.write(&done.plan, &store, root, false, &progress)?);
    progress.finish();
    Ok(done)
}
