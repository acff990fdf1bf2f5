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
    TagCurrent(Arc<str>),
    TagIndex(Arc<str>),
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

/// One link file and what it holds. A tree has several per tag: the names
/// are shared, one per repository and tag.
#[derive(Debug)]
pub struct Link {
    pub repo: Arc<str>,
    pub role: Role,
    /// The digest its folder is named for (none for `current`).
    pub folder: Option<Digest>,
    /// `Ok(None)`: the folder has no link file.
    pub target: std::result::Result<Option<Digest>, Arc<Error>>,
}

impl Link {
    /// Where the link is, for messages.
    pub fn path(&self, store: &Store) -> PathBuf {
        store.display(&self.spec())
    }

    /// The link file (its repository, for a folder link without a folder).
    pub fn spec(&self) -> Spec<'_> {
        let name = &*self.repo;
        match (&self.role, &self.folder) {
            (Role::TagCurrent(tag), _) => Spec::TagCurrentLink(name, tag),
            (Role::Revision, Some(d)) => Spec::RevisionLink(name, d),
            (Role::Layer, Some(d)) => Spec::LayerLink(name, d),
            (Role::TagIndex(tag), Some(d)) => Spec::TagIndexLink(name, tag, d),
            (_, None) => Spec::Repository(name),
        }
    }
}

/// Reads every link of the given repositories, in parallel, folder by
/// folder. With `by_size`, in a bucket, the links come from one flat
/// listing instead (a request per 1000 keys, not one per link): a link
/// object of the size of a link to its folder's digest is taken to hold
/// it, as gc takes it, and only the others are read (`verify --fast`).
pub fn read(store: &Store, repos: &[&Repository], by_size: bool) -> Result<Vec<Link>> {
    if let Some(bucket) = store.s3().filter(|_| by_size) {
        return listed(store, bucket, repos);
    }
    let names: Vec<Arc<str>> = repos.iter().map(|r| Arc::from(r.name.as_str())).collect();
    let mut folders: Vec<Folder> = Vec::new();
    for (r, name) in repos.iter().zip(&names) {
        folders.push((name, Role::Revision, r.revisions.iter().cloned().collect()));
        folders.push((name, Role::Layer, r.layers.iter().cloned().collect()));
    }
    let tag_folders: Vec<Vec<Folder>> = repos
        .par_iter()
        .zip(&names)
        .map(|(r, name)| {
            r.tags
                .keys()
                .map(|tag| {
                    let digests = store
                        .list_digests(&Spec::TagIndexRoot(name, tag))?
                        .into_iter()
                        .collect();
                    Ok((name, Role::TagIndex(Arc::from(tag.as_str())), digests))
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
    links.extend(current_links(repos, &names));
    Ok(links)
}

/// The tags' `current` links, as the catalog read them (`names`: the
/// repositories', shared).
fn current_links(repos: &[&Repository], names: &[Arc<str>]) -> Vec<Link> {
    let mut links = Vec::new();
    for (r, name) in repos.iter().zip(names) {
        for (tag, target) in &r.tags {
            links.push(Link {
                repo: name.clone(),
                role: Role::TagCurrent(Arc::from(tag.as_str())),
                folder: None,
                target: match target {
                    Ok(d) => Ok(Some(d.clone())),
                    Err(e) => Err(e.clone()),
                },
            });
        }
    }
    links
}

/// See [`read`]: the links of a tree in a bucket, from a flat listing.
fn listed(
    store: &Store,
    bucket: &crate::store::s3::S3Backend,
    repos: &[&Repository],
) -> Result<Vec<Link>> {
    use crate::paths::{self, Parsed};
    let names: Vec<Arc<str>> = repos.iter().map(|r| Arc::from(r.name.as_str())).collect();
    let wanted: std::collections::HashMap<&str, &Arc<str>> =
        repos.iter().map(|r| r.name.as_str()).zip(&names).collect();
    let root = paths::REPOSITORIES;
    let mut found: Vec<(Link, bool)> = Vec::new();
    let mut list = |key: &str, o: &crate::store::s3::client::Object| {
        let Some(p) = paths::parse(&format!("{root}/{key}")) else {
            return;
        };
        let (repo, role, digest) = match p {
            Parsed::RevisionLink { repo, digest } => (repo, Role::Revision, digest),
            Parsed::LayerLink { repo, digest } => (repo, Role::Layer, digest),
            Parsed::TagIndexLink { repo, tag, digest } => {
                (repo, Role::TagIndex(Arc::from(tag.as_str())), digest)
            }
            _ => return,
        };
        let Some(repo) = wanted.get(repo.as_str()).map(|n| Arc::clone(n)) else {
            return;
        };
        let trusted = o.size == digest.as_str().len() as u64;
        found.push((
            Link {
                repo,
                role,
                folder: Some(digest.clone()),
                target: Ok(Some(digest)),
            },
            trusted,
        ));
    };
    bucket
        .walk(std::path::Path::new(root), &mut list)
        .map_err(|e| Error::io("list folder", store.display(&Spec::RepositoriesRoot), e))?;
    // The odd ones are read, as the registry would read them.
    let mut links: Vec<Link> = found
        .into_par_iter()
        .map(|(mut link, trusted)| {
            if !trusted {
                link.target = store.read_link(&link.spec()).map_err(Arc::new);
            }
            link
        })
        .collect();
    links.extend(current_links(repos, &names));
    Ok(links)
}

/// A folder of links: its repository, their role, the digests they are
/// named for.
type Folder<'a> = (&'a Arc<str>, Role, Vec<Digest>);

fn read_folder(store: &Store, name: &Arc<str>, role: &Role, digests: &[Digest]) -> Vec<Link> {
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
            repo: name.clone(),
            role: role.clone(),
            folder: Some(d.clone()),
            // A link names its folder's digest (almost always): share it.
            target: target
                .map(|t| t.map(|t| if t == *d { d.clone() } else { t }))
                .map_err(Arc::new),
        })
        .collect()
}
