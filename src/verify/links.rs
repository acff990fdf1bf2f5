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
    pub path: PathBuf,
    /// `Ok(None)`: the folder has no link file.
    pub target: std::result::Result<Option<Digest>, Arc<Error>>,
}

/// Reads every link of the given repositories, in parallel.
pub fn read(store: &Store, repos: &[&Repository]) -> Result<Vec<Link>> {
    let per_repo: Vec<Vec<Link>> = repos
        .par_iter()
        .map(|r| read_repo(store, r))
        .collect::<Result<_>>()?;
    Ok(per_repo.into_iter().flatten().collect())
}

fn read_repo(store: &Store, repo: &Repository) -> Result<Vec<Link>> {
    let name = repo.name.as_str();
    let mut specs: Vec<(Role, Option<Digest>)> = Vec::new();
    specs.extend(
        repo.revisions
            .iter()
            .map(|d| (Role::Revision, Some(d.clone()))),
    );
    specs.extend(repo.layers.iter().map(|d| (Role::Layer, Some(d.clone()))));
    for tag in repo.tags.keys() {
        for e in store.list(&Spec::TagIndexRoot(name, tag))? {
            if let Some(d) = e
                .is_dir
                .then(|| Digest::from_parts("sha256", &e.name).ok())
                .flatten()
            {
                specs.push((Role::TagIndex(tag.clone()), Some(d)));
            }
        }
    }
    let mut links: Vec<Link> = specs
        .into_par_iter()
        .with_max_len(64)
        .map(|(role, folder)| {
            let d = folder.as_ref().expect("folder links");
            let spec = match &role {
                Role::Revision => Spec::RevisionLink(name, d),
                Role::Layer => Spec::LayerLink(name, d),
                Role::TagIndex(tag) => Spec::TagIndexLink(name, tag, d),
                Role::TagCurrent(_) => unreachable!("current links come from the catalog"),
            };
            Link {
                repo: name.to_string(),
                path: store.display(&spec),
                target: store.read_link(&spec).map_err(Arc::new),
                role,
                folder,
            }
        })
        .collect();
    // The catalog read every tag's current link strictly already.
    for (tag, target) in &repo.tags {
        links.push(Link {
            repo: name.to_string(),
            role: Role::TagCurrent(tag.clone()),
            folder: None,
            path: store.display(&Spec::TagCurrentLink(name, tag)),
            target: match target {
                Ok(d) => Ok(Some(d.clone())),
                Err(e) => Err(e.clone()),
            },
        });
    }
    Ok(links)
}
