//! `verify`: the integrity of the images a user names (default: every tag)
//! and of every link of their repositories.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::catalog::{Catalog, WalkOptions};
use crate::error::{Error, Result};
use crate::reference::ImageRef;
use crate::selection;
use crate::store::Store;
use crate::verify::walk::Target;
use crate::verify::{self, Options, Report};

/// Checks `refs` (every tag when empty) in the tree at `root`.
pub fn run(root: &Path, refs: &[ImageRef], opts: Options) -> Result<Report> {
    let store = Store::open(root)?;
    let catalog = Catalog::load(
        &store,
        WalkOptions {
            links: true,
            ..WalkOptions::default()
        },
    )?;
    let mut targets: BTreeMap<String, Target> = BTreeMap::new();
    let mut repos: BTreeSet<&str> = BTreeSet::new();
    let mut add = |repo: &str, tag: Option<&str>, digest: &crate::Digest| {
        let name = match tag {
            Some(t) => format!("{repo}:{t}"),
            None => format!("{repo}@{digest}"),
        };
        targets.entry(name.clone()).or_insert_with(|| Target {
            repo: repo.to_string(),
            name,
            digest: digest.clone(),
        });
    };
    if refs.is_empty() {
        for (repo, tag, target) in catalog.tags() {
            if let Ok(d) = target {
                add(repo, Some(tag), d);
            }
        }
        repos.extend(catalog.repos.keys().map(String::as_str));
    } else {
        for r in refs {
            match selection::expand(&catalog, r) {
                Ok(found) => {
                    for (repo, tag, d) in &found {
                        add(repo, tag.as_deref(), d);
                    }
                }
                Err(e) if matches!(e.root(), Error::UnknownImage { .. }) => return Err(e),
                // A tag whose link is broken: reported with its repository's links.
                Err(_) => {}
            }
            repos.extend(selection::find_repo(&catalog, r).map(|repo| repo.name.as_str()));
        }
    }
    let repos: Vec<_> = repos.iter().map(|r| &catalog.repos[*r]).collect();
    let targets: Vec<Target> = targets.into_values().collect();
    let report = verify::check(&catalog, &targets, &repos, opts).map(|mut r| {
        r.requests = store.requests();
        r
    });
    drop(repos);
    std::thread::spawn(move || drop((catalog, targets)));
    report
}
