//! Unpacking an archive (a tar, plain or compressed) into a staging
//! folder: each regular file streamed to its own file and hashed on the
//! way, symlinks and hardlinks resolved inside the archive. An entry whose
//! path or link target leaves the archive (`..`, an absolute path) is
//! refused.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::compress;
use crate::digest::Algorithm;
use crate::error::{Error, Result};
use crate::import::files::Member;
use crate::interrupt;
use crate::sink::place::copy_hashed;

/// The hidden folder archives are unpacked into, beside ROOT (so that
/// their files can be hardlinked into it), removed when dropped.
pub struct Staging {
    path: PathBuf,
    next: usize,
    created: bool,
}

impl Staging {
    pub fn new(path: PathBuf) -> Staging {
        Staging {
            path,
            next: 0,
            created: false,
        }
    }

    /// A new empty folder for one archive.
    fn folder(&mut self) -> Result<PathBuf> {
        if !self.created {
            let _ = fs::remove_dir_all(&self.path);
            fs::create_dir_all(&self.path)
                .map_err(|e| Error::io("create staging folder", &self.path, e))?;
            self.created = true;
        }
        let dir = self.path.join(self.next.to_string());
        self.next += 1;
        fs::create_dir(&dir).map_err(|e| Error::io("create staging folder", &dir, e))?;
        Ok(dir)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.created {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

enum Alias {
    Symlink(String),
    Hardlink(String),
}

/// Unpacks `archive`; returns its regular files (and the links to them) by
/// normalized path.
pub fn unpack(archive: &Path, staging: &mut Staging) -> Result<HashMap<String, Member>> {
    let dir = staging.folder()?;
    let file = File::open(archive).map_err(|e| Error::io("open", archive, e))?;
    let not_tar = |e: io::Error| Error::Invalid {
        message: format!("cannot read this as a tar archive: {e}"),
        path: Some(archive.into()),
    };
    let (_, reader) = compress::decoder(file).map_err(not_tar)?;
    let mut tar = tar::Archive::new(reader);
    let mut members: HashMap<String, Member> = HashMap::new();
    let mut aliases: Vec<(String, Alias)> = Vec::new();
    for (n, entry) in tar.entries().map_err(not_tar)?.enumerate() {
        interrupt::check()?;
        let mut entry = entry.map_err(not_tar)?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let escapes = |what: &str| Error::Invalid {
            message: format!("tar entry `{raw}` {what} outside the archive; refusing it"),
            path: Some(archive.into()),
        };
        let name = normalize("", &raw).ok_or_else(|| escapes("points"))?;
        let kind = entry.header().entry_type();
        let link = || {
            entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if name.is_empty() {
                    continue;
                }
                let path = dir.join(n.to_string());
                let (digest, size) = copy_hashed(&mut entry, archive, &path, Algorithm::Sha256)?;
                members.insert(name, Member { path, size, digest });
            }
            tar::EntryType::Symlink => {
                let base = name.rsplit_once('/').map_or("", |(d, _)| d);
                let target = normalize(base, &link()).ok_or_else(|| escapes("links"))?;
                aliases.push((name, Alias::Symlink(target)));
            }
            tar::EntryType::Link => {
                let target = normalize("", &link()).ok_or_else(|| escapes("links"))?;
                aliases.push((name, Alias::Hardlink(target)));
            }
            _ => {}
        }
    }
    // Links resolve to what they name (a chain of them too), if it exists.
    for _ in 0..8 {
        let mut progress = false;
        for (name, alias) in &aliases {
            let (Alias::Symlink(t) | Alias::Hardlink(t)) = alias;
            if !members.contains_key(name) {
                if let Some(m) = members.get(t).cloned() {
                    members.insert(name.clone(), m);
                    progress = true;
                }
            }
        }
        if !progress {
            break;
        }
    }
    Ok(members)
}

/// A tar path made relative and clean (`./a//b` → `a/b`), joined to
/// `base`; `None` if it is absolute or climbs above the archive's root.
pub fn normalize(base: &str, path: &str) -> Option<String> {
    if path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn normalizes_and_refuses_escapes() {
        assert_eq!(
            normalize("", "./blobs//sha256/ab").as_deref(),
            Some("blobs/sha256/ab")
        );
        assert_eq!(normalize("a/b", "../c").as_deref(), Some("a/c"));
        assert_eq!(normalize("", "a/../b").as_deref(), Some("b"));
        assert_eq!(normalize("", "../x"), None);
        assert_eq!(normalize("a", "../../x"), None);
        assert_eq!(normalize("", "/etc/passwd"), None);
    }
}
