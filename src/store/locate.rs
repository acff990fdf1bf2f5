//! Finding the `v2` folder of a tree from the path a user gives.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::paths;

/// Finds the `v2` folder for a path the user gave.
pub(super) fn locate_v2(path: &Path) -> Result<PathBuf> {
    let meta = fs::metadata(path).map_err(|e| Error::io("open ROOT", path, e))?;
    if !meta.is_dir() {
        return Err(Error::NotAStorageTree { path: path.into() });
    }
    let candidates = [
        path.join(paths::V2_PREFIX),
        path.join("registry/v2"),
        path.join("v2"),
        path.to_path_buf(),
    ];
    for c in &candidates {
        if is_v2(c) {
            return Ok(c.clone());
        }
    }
    // A parent of the root directory: look a few levels down.
    let found: Vec<PathBuf> = walkdir::WalkDir::new(path)
        .min_depth(1)
        .max_depth(3)
        .into_iter()
        .filter_entry(|e| e.file_type().is_dir())
        .filter_map(|e| e.ok())
        .map(|e| e.path().join(paths::V2_PREFIX))
        .filter(|c| is_v2(c))
        .collect();
    match found.len() {
        1 => Ok(found.into_iter().next().unwrap()),
        0 => Err(Error::NotAStorageTree { path: path.into() }),
        _ => Err(Error::Invalid {
            message: format!(
                "several storage trees below this folder: {}; name one",
                found
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            path: Some(path.into()),
        }),
    }
}

fn is_v2(p: &Path) -> bool {
    p.join(paths::REPOSITORIES).is_dir() || p.join(paths::BLOBS).is_dir()
}
