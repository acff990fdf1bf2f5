//! Reading skopeo's `dir:` layout (see `layout::dir`): one image folder
//! (`version`, `manifest.json`, `<hex>` blobs, `<hex>.manifest.json`
//! children), or a tree of `<repo>:<tag>` folders as `regkit extract` and
//! `skopeo sync --dest dir` write them, namespaces as folders.

use std::fs;
use std::path::Path;

use rayon::prelude::*;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::import::files::Files;
use crate::import::walk::{walk, Paths};
use crate::import::{Found, GivenName};
use crate::paths;
use crate::store::MAX_MANIFEST_SIZE;

pub const MANIFEST: &str = "manifest.json";
const VERSION: &str = "version";

/// Where a `dir:` folder keeps children and blobs.
pub const PATHS: Paths = Paths {
    child: |d| format!("{}.manifest.json", d.hex()),
    blob: |d| d.hex().to_string(),
};

/// Reads the image folder `files` under the given name; `expect` is the
/// digest its folder name gives, if any.
fn read_image(
    files: &Files,
    repo: String,
    tag: Option<String>,
    expect: Option<&Digest>,
) -> Result<Found> {
    if let Some(v) = files.read(VERSION, 1024)? {
        if !v.starts_with(b"Directory Transport Version: 1.") {
            return Err(Error::Invalid {
                message: "not a containers/image dir: version file".into(),
                path: Some(files.display(VERSION)),
            });
        }
    }
    let bytes = files
        .read(MANIFEST, MAX_MANIFEST_SIZE)?
        .ok_or_else(|| Error::Invalid {
            message: "no manifest.json in this image folder".into(),
            path: Some(files.origin.clone()),
        })?;
    let digest = Digest::sha256_of(&bytes);
    if let Some(want) = expect.filter(|w| **w != digest) {
        return Err(Error::DigestMismatch {
            path: files.display(MANIFEST),
            expected: want.clone(),
            actual: digest,
        });
    }
    let w = walk(files, &PATHS, &digest, MANIFEST, &bytes)?;
    Ok(w.named(repo, tag, digest, files.origin.clone()))
}

/// Reads one image folder, named by `--repo NAME[:TAG]`; the tag defaults
/// to the one in the folder's name (`app:v1`), else `latest`.
pub fn read_one(files: &Files, given: Option<&GivenName>) -> Result<Found> {
    let given = given.ok_or_else(|| Error::Invalid {
        message: "a dir: image folder does not say which repository it is; give --repo NAME[:TAG]"
            .into(),
        path: Some(files.origin.clone()),
    })?;
    let from_folder = files
        .origin
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.rsplit_once(':'))
        .map(|(_, t)| t)
        .filter(|t| paths::is_valid_tag(t));
    let tag = given
        .tag
        .clone()
        .or_else(|| from_folder.map(str::to_string))
        .unwrap_or_else(|| "latest".into());
    read_image(files, given.repo.clone(), Some(tag), None)
}

/// Reads every image folder under `root`, named by its path relative to
/// `root` (`ns/app:v1`, or `ns/app@sha256:<hex>` for an untagged one).
pub fn read_tree(root: &Files) -> Result<Vec<Found>> {
    let mut rels = Vec::new();
    find_images(&root.origin, "", &mut rels)?;
    if rels.is_empty() {
        return Err(Error::Invalid {
            message: "no image here: not an OCI layout (oci-layout), a docker save archive or dir: image (manifest.json), and no folder below holds a manifest.json".into(),
            path: Some(root.origin.clone()),
        });
    }
    rels.sort();
    rels.par_iter()
        .map(|rel| {
            let files = root.sub(&root.origin.join(rel));
            let (repo, tag, digest) = name_of(rel).map_err(|message| Error::Invalid {
                message,
                path: Some(files.origin.clone()),
            })?;
            read_image(&files, repo, tag, digest.as_ref()).map_err(|e| e.in_image(rel))
        })
        .collect()
}

/// `ns/app:v1` → (`ns/app`, `v1`); `ns/app@sha256:…` → (`ns/app`, digest).
fn name_of(rel: &str) -> std::result::Result<(String, Option<String>, Option<Digest>), String> {
    let (dir, last) = match rel.rsplit_once('/') {
        Some((d, l)) => (Some(d), l),
        None => (None, rel),
    };
    let full = |name: &str| match dir {
        Some(d) => format!("{d}/{name}"),
        None => name.to_string(),
    };
    let (repo, tag, digest) = if let Some((name, d)) = last.split_once('@') {
        let d = Digest::parse(d).map_err(|e| format!("the folder's name has a bad digest: {e}"))?;
        (full(name), None, Some(d))
    } else if let Some((name, tag)) = last.rsplit_once(':') {
        if !paths::is_valid_tag(tag) {
            return Err(format!(
                "`{tag}` is not a tag (up to 128 of A-Z a-z 0-9 _ . -, not starting with . or -)"
            ));
        }
        (full(name), Some(tag.to_string()), None)
    } else {
        return Err(format!(
            "this image folder is not named `<repository>:<tag>` (`{last}`)"
        ));
    };
    if !paths::is_valid_repository_name(&repo) {
        return Err(format!(
            "`{repo}` is not a repository name (lowercase letters, digits and . _ - separators, / between components)"
        ));
    }
    Ok((repo, tag, digest))
}

/// Adds the relative path of every folder below `dir` that holds a
/// `manifest.json` (without looking inside it), in parallel.
fn find_images(dir: &Path, rel: &str, out: &mut Vec<String>) -> Result<()> {
    let mut subdirs = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io("list folder", dir, e))? {
        let entry = entry.map_err(|e| Error::io("list folder", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == MANIFEST && !rel.is_empty() {
            out.push(rel.to_string());
            return Ok(());
        }
        if name.starts_with('.') {
            continue;
        }
        let is_dir = match entry.file_type() {
            Ok(t) if t.is_symlink() => entry.path().is_dir(),
            Ok(t) => t.is_dir(),
            Err(_) => false,
        };
        if is_dir {
            let sub = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            subdirs.push(sub);
        }
    }
    let found: Vec<Vec<String>> = subdirs
        .par_iter()
        .map(|sub| {
            let mut v = Vec::new();
            find_images(&dir.join(sub.rsplit('/').next().unwrap()), sub, &mut v).map(|()| v)
        })
        .collect::<Result<_>>()?;
    out.extend(found.into_iter().flatten());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::name_of;

    #[test]
    fn names_folders() {
        let (r, t, d) = name_of("a/b/app:v1.2").unwrap();
        assert_eq!(
            (r.as_str(), t.as_deref(), d),
            ("a/b/app", Some("v1.2"), None)
        );
        let hex = "ab".repeat(32);
        let (r, t, d) = name_of(&format!("app@sha256:{hex}")).unwrap();
        assert_eq!((r.as_str(), t), ("app", None));
        assert_eq!(d.unwrap().hex(), hex);
        assert!(name_of("Bad_Name:1").is_err());
        assert!(name_of("app").is_err());
        assert!(name_of("app:-x").is_err());
    }
}
