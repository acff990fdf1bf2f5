//! Every link file of a repository, read strictly as the registry reads it:
//! revisions, `_layers`, and each tag's `current` and `index` entries.

use std::path::PathBuf;
use std::sync::Arc;

use rayon::prelude::*;

use crate::catalog::Repository;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::paths::Spec;
use crate::store::Store;
use crate::verify::walk::Need;

/// Which link a file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Revision,
    Layer,
    TagCurrent(String),
    TagIndex(String),
}

impl Role {
    /// The need this link serves, if images need it by digest.
    pub fn need(&self) -> Option<Need> {
        match self {
            Role::Revision => Some(Need::Revision),
            Role::Layer => Some(Need::Layer),
            _ => None,
        }
    }
}

/// One link file and what it holds.
#[derive(Debug)]
pub struct Link {
    pub repo: String,
    pub role: Role,
    /// The digest its folder is named for (none for `current`).
    pub folder: Option<Digest>,
    /// `Ok(None)`: the folder has no link file.
    pub target: std::result::Result<Option<Digest>, Arc<Error>>,
}

impl Link {
    /// Where the link is, for messages.
    pub fn path(&self, store: &Store) -> PathBuf {
        let name = self.repo.as_str();
        match (&self.role, &self.folder) {
            (Role::TagCurrent(tag), _) => store.display(&Spec::TagCurrentLink(name, tag)),
            (Role::Revision, Some(d)) => store.display(&Spec::RevisionLink(name, d)),
            (Role::Layer, Some(d)) => store.display(&Spec::LayerLink(name, d)),
            (Role::TagIndex(tag), Some(d)) => store.display(&Spec::TagIndexLink(name, tag, d)),
            (_, None) => store.display(&Spec::Repository(name)),
        }
    }
}

/// Reads every link of the given repositories, in parallel, folder by
/// folder.
pub fn read(store: &Store, repos: &[&Repository]) -> Result<Vec<Link>> {
    // (repository, role, digests) per folder of links.
    let mut folders: Vec<(&str, Role, Vec<Digest>)> = Vec::new();
    for r in repos {
        let name = r.name.as_str();
        folders.push((name, Role::Revision, r.revisions.iter().cloned().collect()));
        folders.push((name, Role::Layer, r.layers.iter().cloned().collect()));
    }
    let tag_folders: Vec<Vec<(&str, Role, Vec<Digest>)>> = repos
        .par_iter()
        .map(|r| {
            let name = r.name.as_str();
            r.tags
                .keys()
                .map(|tag| {
                    let digests = store
                        .list_digests(&Spec::TagIndexRoot(name, tag))?
                        .into_iter()
                        .collect();
                    Ok((name, Role::TagIndex(tag.clone()), digests))
                })
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<_>>()?;
    folders.extend(tag_folders.into_iter().flatten());
    let read: Vec<Vec<Link>> = folders
        .par_iter()
        .map(|(name, role, digests)| read_folder(store, name, role, digests))
        .collect();
    let mut links: Vec<Link> = read.into_iter().flatten().collect();
    // The catalog read every tag's current link strictly already.
    for r in repos {
        for (tag, target) in &r.tags {
            links.push(Link {
                repo: r.name.clone(),
                role: Role::TagCurrent(tag.clone()),
                folder: None,
                target: match target {
                    Ok(d) => Ok(Some(d.clone())),
                    Err(e) => Err(e.clone()),
                },
            });
        }
    }
    Ok(links)
}

fn read_folder(store: &Store, name: &str, role: &Role, digests: &[Digest]) -> Vec<Link> {
    let (dir, specs): (Spec, Vec<Spec>) = match role {
        Role::Revision => (
            Spec::RevisionsRoot(name),
            digests
                .iter()
                .map(|d| Spec::RevisionLink(name, d))
                .collect(),
        ),
        Role::Layer => (
            Spec::LayersRoot(name),
            digests.iter().map(|d| Spec::LayerLink(name, d)).collect(),
        ),
        Role::TagIndex(tag) => (
            Spec::TagIndexRoot(name, tag),
            digests
                .iter()
                .map(|d| Spec::TagIndexLink(name, tag, d))
                .collect(),
        ),
        Role::TagCurrent(_) => unreachable!("current links come from the catalog"),
    };
    let targets = store.read_links_in(&dir, &specs);
    specs
        .iter()
        .zip(targets)
        .zip(digests)
        .map(|((_, target), d)| Link {
            repo: name.to_string(),
            role: role.clone(),
            folder: Some(d.clone()),
            target: target.map_err(Arc::new),
        })
        .collect()
}
