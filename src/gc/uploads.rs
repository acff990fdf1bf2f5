//! Unfinished blob uploads (`_uploads/<id>/`), found in every repository
//! folder at any depth, as distribution's `PurgeUploads` walks them.

use std::time::SystemTime;

use rayon::prelude::*;
use serde::Serialize;

use crate::error::Result;
use crate::gc::time::{format_rfc3339, parse_rfc3339};
use crate::paths::{Spec, UPLOADS_DIR};
use crate::store::Store;

/// One unfinished upload.
#[derive(Debug, Clone, Serialize)]
pub struct Upload {
    pub repository: String,
    pub id: String,
    /// From `startedat` (RFC 3339), else the folder's modification time.
    #[serde(serialize_with = "ser_time")]
    pub started: SystemTime,
    /// The newest of `started` and the modification time of its `data`.
    #[serde(serialize_with = "ser_time")]
    pub last_write: SystemTime,
    /// The bytes received so far.
    pub bytes: u64,
}

fn ser_time<S: serde::Serializer>(t: &SystemTime, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&format_rfc3339(*t))
}

/// Every upload of the tree.
pub fn find(store: &Store) -> Result<Vec<Upload>> {
    if let Some(bucket) = store.s3() {
        return find_in_bucket(store, bucket);
    }
    let mut repos = Vec::new();
    walk(store, "", &mut repos)?;
    let found: Vec<Vec<Upload>> = repos
        .par_iter()
        .map(|repo| {
            store
                .list(&Spec::UploadsRoot(repo))?
                .into_iter()
                .filter(|e| e.is_dir)
                .map(|e| read(store, repo, &e.name))
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<_>>()?;
    let mut all: Vec<Upload> = found.into_iter().flatten().collect();
    all.sort_by(|a, b| (&a.repository, &a.id).cmp(&(&b.repository, &b.id)));
    Ok(all)
}

/// In a bucket: one flat listing of `repositories/` (sizes and times come
/// with it) and one of the multipart uploads pending below it (the
/// registry writes an upload's `data` as one, so it is no object yet).
fn find_in_bucket(store: &Store, bucket: &crate::store::s3::S3Backend) -> Result<Vec<Upload>> {
    use std::collections::BTreeMap;
    #[derive(Default)]
    struct Seen {
        last: Option<SystemTime>,
        bytes: u64,
        has_started_at: bool,
    }
    let mut seen: BTreeMap<(String, String), Seen> = BTreeMap::new();
    let root = std::path::Path::new(crate::paths::REPOSITORIES);
    let fail = |e: std::io::Error| {
        crate::Error::io("list folder", store.display(&Spec::RepositoriesRoot), e)
    };
    bucket
        .walk(root, &mut |key, object| {
            let rel = format!("{}/{key}", crate::paths::REPOSITORIES);
            if let Some(crate::paths::Parsed::Upload { repo, id }) = crate::paths::parse(&rel) {
                let s = seen.entry((repo, id)).or_default();
                s.last = s.last.max(object.modified);
                if key.ends_with("/data") {
                    s.bytes += object.size;
                }
                s.has_started_at |= key.ends_with("/startedat");
            }
        })
        .map_err(fail)?;
    let pending = bucket
        .client
        .pending_uploads(&format!(
            "{}{}/",
            bucket.prefix(),
            crate::paths::REPOSITORIES
        ))
        .map_err(|e| fail(e.into()))?;
    for p in &pending {
        let Some(rel) = p.key.strip_prefix(bucket.prefix()) else {
            continue;
        };
        if let Some(crate::paths::Parsed::Upload { repo, id }) = crate::paths::parse(rel) {
            let s = seen.entry((repo, id)).or_default();
            s.last = s.last.max(p.initiated);
        }
    }
    let seen: Vec<((String, String), Seen)> = seen.into_iter().collect();
    seen.par_iter()
        .map(|((repo, id), s)| {
            let started_at = if s.has_started_at {
                store
                    .read_file(&Spec::UploadStartedAt(repo, id), 1024)
                    .ok()
                    .flatten()
                    .and_then(|b| parse_rfc3339(&String::from_utf8_lossy(&b)))
            } else {
                None
            };
            let started = started_at.or(s.last).unwrap_or(SystemTime::UNIX_EPOCH);
            Ok(Upload {
                repository: repo.clone(),
                id: id.clone(),
                started,
                last_write: s.last.unwrap_or(started).max(started),
                bytes: s.bytes,
            })
        })
        .collect()
}

/// Removes an upload: its folder and, in a bucket, the multipart upload
/// pending for its `data`.
pub fn purge(store: &Store, u: &Upload) -> Result<()> {
    store.remove_tree(&Spec::Upload(&u.repository, &u.id))?;
    if let Some(bucket) = store.s3() {
        let key = bucket.key(&Spec::Upload(&u.repository, &u.id).path());
        let fail = |e: crate::store::s3::client::S3Error| {
            crate::Error::io(
                "abort upload",
                store.display(&Spec::UploadData(&u.repository, &u.id)),
                e.into(),
            )
        };
        for p in bucket
            .client
            .pending_uploads(&format!("{key}/"))
            .map_err(fail)?
        {
            bucket
                .client
                .abort_multipart(&p.key, &p.upload_id)
                .map_err(fail)?;
        }
    }
    Ok(())
}

/// Repository folders holding `_uploads`, at any depth (in parallel).
fn walk(store: &Store, name: &str, out: &mut Vec<String>) -> Result<()> {
    let spec = if name.is_empty() {
        Spec::RepositoriesRoot
    } else {
        Spec::Repository(name)
    };
    let mut subdirs = Vec::new();
    for e in store.list(&spec)? {
        if !e.is_dir {
            continue;
        }
        if e.name == UPLOADS_DIR && !name.is_empty() {
            out.push(name.to_string());
        } else if !e.name.starts_with('_') {
            subdirs.push(if name.is_empty() {
                e.name
            } else {
                format!("{name}/{}", e.name)
            });
        }
    }
    let found: Vec<Vec<String>> = subdirs
        .par_iter()
        .map(|sub| {
            let mut v = Vec::new();
            walk(store, sub, &mut v).map(|()| v)
        })
        .collect::<Result<_>>()?;
    out.extend(found.into_iter().flatten());
    Ok(())
}

fn read(store: &Store, repo: &str, id: &str) -> Result<Upload> {
    // One that cannot be read (not a file) is as good as none.
    let started_at = store
        .read_file(&Spec::UploadStartedAt(repo, id), 1024)
        .ok()
        .flatten()
        .and_then(|b| parse_rfc3339(&String::from_utf8_lossy(&b)));
    let folder_time = store.modified(&Spec::Upload(repo, id))?;
    let started = started_at.or(folder_time).unwrap_or(SystemTime::UNIX_EPOCH);
    let data = Spec::UploadData(repo, id);
    let data_time = store.modified(&data)?;
    let last_write = [Some(started), data_time]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(started);
    let bytes = store.backend().size(&data.path()).unwrap_or(0);
    Ok(Upload {
        repository: repo.to_string(),
        id: id.to_string(),
        started,
        last_write,
        bytes,
    })
}
