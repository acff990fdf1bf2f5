//! From what was named to the images to pull, before anything is
//! written: every repository below `--from`'s namespace when nothing is
//! named (`_catalog`, paged; Harbor's projects API where `_catalog` is
//! refused), every tag of a repository named without one (filtered by
//! `--tag-regex` and `--semver`), and each tag's digest by a `HEAD`, which
//! Docker Hub does not count against its pull rate limit.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::pull::fetch::{checked, Manifests};
use crate::pull::source::{api_host, canonical_host, Naming, Wanted};
use crate::push::dest::Destination;
use crate::remote::api;
use crate::remote::auth::Scope;
use crate::remote::client::{Client, ClientOptions};
use crate::remote::creds::{self, Credentials};
use crate::remote::error::RemoteError;
use crate::selection::levenshtein;
use crate::tags::TagFilter;

/// One image to pull: where it is upstream, what it is, where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Job {
    /// The registry, as named (`docker.io`).
    pub host: String,
    /// The repository there.
    pub repo: String,
    /// The tag there; `None` for an image named by digest.
    pub tag: Option<String>,
    /// The top manifest.
    pub digest: Digest,
    /// The repository in ROOT.
    pub name: String,
    /// The tag in ROOT.
    pub stored_tag: Option<String>,
}

impl Job {
    /// `host/repo:tag` or `host/repo@digest`.
    pub fn source(&self) -> String {
        match &self.tag {
            Some(t) => format!("{}/{}:{t}", self.host, self.repo),
            None => format!("{}/{}@{}", self.host, self.repo, self.digest),
        }
    }

    /// `name:tag` or `name@digest`, as ROOT will list it.
    pub fn stored(&self) -> String {
        match &self.stored_tag {
            Some(t) => format!("{}:{t}", self.name),
            None => format!("{}@{}", self.name, self.digest),
        }
    }
}

/// One connected client per registry, made when first needed: the
/// credentials are checked then, before anything is pulled from it.
pub struct Clients {
    pub opts: ClientOptions,
    /// `--creds`, used for every registry of the run.
    pub creds: Option<Credentials>,
    pub authfile: Option<PathBuf>,
    pub from: Destination,
    map: Mutex<HashMap<String, Arc<Client>>>,
}

impl Clients {
    pub fn new(
        opts: ClientOptions,
        creds: Option<Credentials>,
        authfile: Option<PathBuf>,
        from: Destination,
    ) -> Clients {
        Clients {
            opts,
            creds,
            authfile,
            from,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The client of `host` (as named).
    pub fn get(&self, host: &str) -> Result<Arc<Client>> {
        let host = canonical_host(host);
        let mut map = self.map.lock().expect("not poisoned");
        if let Some(c) = map.get(host) {
            return Ok(c.clone());
        }
        let mut opts = self.opts.clone();
        opts.creds = match &self.creds {
            Some(c) => Some(c.clone()),
            None => {
                let ns = if host == canonical_host(&self.from.host) {
                    self.from.namespace.as_str()
                } else {
                    ""
                };
                creds::lookup(host, ns, self.authfile.as_deref())?
            }
        };
        let scheme = (host == canonical_host(&self.from.host))
            .then_some(self.from.scheme)
            .flatten();
        let c = Arc::new(Client::connect(api_host(host), scheme, &opts)?);
        map.insert(host.to_string(), c.clone());
        Ok(c)
    }

    /// Every client made, by host.
    pub fn all(&self) -> Vec<(String, Arc<Client>)> {
        let map = self.map.lock().expect("not poisoned");
        let mut v: Vec<_> = map.iter().map(|(h, c)| (h.clone(), c.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// A repository's tags, or `None` if the registry does not know it.
pub type TagList = Option<Arc<Vec<String>>>;

/// What resolving needs.
pub struct Resolver<'a> {
    pub clients: &'a Clients,
    pub naming: &'a Naming,
    pub tags: &'a TagFilter,
    pub manifests: &'a Manifests,
    /// Tag lists read so far, by (host, repo).
    pub listed: Mutex<HashMap<(String, String), TagList>>,
}

/// The outcome of resolving.
#[derive(Default)]
pub struct Resolved {
    pub jobs: Vec<Job>,
    /// Names that could not be resolved (a repository, tag or manifest the
    /// registry lacks), and images whose stored name is not valid.
    pub failures: Vec<Error>,
}

impl Resolver<'_> {
    /// The tags of a repository (read once per run); `None` if the registry
    /// does not know it.
    pub fn tags_of(&self, host: &str, repo: &str) -> Result<Option<Arc<Vec<String>>>> {
        let key = (canonical_host(host).to_string(), repo.to_string());
        if let Some(t) = self.listed.lock().expect("not poisoned").get(&key) {
            return Ok(t.clone());
        }
        let client = self.clients.get(host)?;
        let tags = api::tags(&client, repo)?.map(Arc::new);
        self.listed
            .lock()
            .expect("not poisoned")
            .insert(key, tags.clone());
        Ok(tags)
    }

    /// Resolves `wanted` (every repository below `--from` when empty).
    pub fn resolve(&self, wanted: Vec<Wanted>) -> Result<Resolved> {
        let mut out = Resolved::default();
        let wanted = if wanted.is_empty() {
            self.every_repository()?
                .into_iter()
                .map(|repo| Wanted {
                    host: canonical_host(&self.clients.from.host).to_string(),
                    repo,
                    tag: None,
                    digest: None,
                    origin: None,
                })
                .collect()
        } else {
            wanted
        };
        // Repositories named without a tag: their tags.
        let expanded: Vec<Result<Vec<Wanted>>> = wanted
            .par_iter()
            .map(|w| {
                if w.tag.is_some() || w.digest.is_some() {
                    return Ok(vec![w.clone()]);
                }
                let Some(tags) = self.tags_of(&w.host, &w.repo)? else {
                    return Err(self.not_found(w, "repository", w.repo.clone(), vec![]));
                };
                Ok(tags
                    .iter()
                    .filter(|t| self.tags.matches(t))
                    .map(|t| Wanted {
                        tag: Some(t.clone()),
                        ..w.clone()
                    })
                    .collect())
            })
            .collect();
        let mut one_by_one = Vec::new();
        for r in expanded {
            match r {
                Ok(v) => one_by_one.extend(v),
                Err(e) if fatal(&e) => return Err(e),
                Err(e) => out.failures.push(e),
            }
        }
        let resolved: Vec<Result<Job>> = one_by_one.par_iter().map(|w| self.job(w)).collect();
        let mut seen = HashSet::new();
        for r in resolved {
            match r {
                Ok(j) => {
                    if seen.insert(j.clone()) {
                        out.jobs.push(j);
                    }
                }
                Err(e) if fatal(&e) => return Err(e),
                Err(e) => out.failures.push(e),
            }
        }
        Ok(out)
    }

    /// The digest of one named image, by a HEAD (a GET when the registry's
    /// HEAD names none).
    pub fn job(&self, w: &Wanted) -> Result<Job> {
        let client = self.clients.get(&w.host)?;
        let scope = Scope::pull(&w.repo);
        let reference = w
            .tag
            .clone()
            .or_else(|| w.digest.as_ref().map(|d| d.to_string()))
            .expect("a tag or a digest");
        let head = client.retrying(|| api::head_manifest(&client, &w.repo, &reference, &scope))?;
        let digest = match head {
            None => return Err(self.missing(w)?),
            Some(api::ManifestHead {
                digest: Some(d), ..
            }) => d,
            Some(_) => {
                // No Docker-Content-Digest: the bytes say.
                client.check_rate_limit()?;
                let got = client
                    .retrying(|| api::get_manifest(&client, &w.repo, &reference, &scope))?
                    .ok_or_else(|| self.missing(w).unwrap_or_else(|e| e))?;
                let f = Arc::new(checked(got, w.digest.as_ref())?);
                let d = f.digest.clone();
                self.manifests.put(f);
                d
            }
        };
        if let Some(want) = &w.digest {
            if *want != digest {
                return Err(Error::invalid(format!(
                    "{}/{}:{} is {digest}, not {want}",
                    w.host,
                    w.repo,
                    w.tag.as_deref().unwrap_or("")
                )));
            }
        }
        let (name, stored_tag) = self
            .naming
            .stored(&w.host, &w.repo, w.tag.as_deref())
            .map_err(|e| e.in_image(w))?;
        Ok(Job {
            host: canonical_host(&w.host).to_string(),
            repo: w.repo.clone(),
            tag: w.tag.clone(),
            digest,
            name,
            stored_tag,
        })
    }

    /// Why a HEAD found nothing: the repository, or the tag (with the
    /// nearest tags it has), or the manifest.
    fn missing(&self, w: &Wanted) -> Result<Error> {
        let tags = self.tags_of(&w.host, &w.repo)?;
        Ok(match (tags, &w.tag) {
            (None, _) => self.not_found(w, "repository", w.repo.clone(), vec![]),
            (Some(tags), Some(t)) => {
                let mut near: Vec<(usize, &String)> = tags
                    .iter()
                    .map(|n| (levenshtein(t, n), n))
                    .filter(|(d, n)| *d <= (n.len() / 3).max(2))
                    .collect();
                near.sort();
                let nearest = near.into_iter().take(3).map(|(_, n)| n.clone()).collect();
                self.not_found(w, "tag", format!("{}:{t}", w.repo), nearest)
            }
            (Some(_), None) => self.not_found(w, "manifest", w.to_string(), vec![]),
        })
    }

    fn not_found(
        &self,
        w: &Wanted,
        what: &'static str,
        name: String,
        nearest: Vec<String>,
    ) -> Error {
        RemoteError::NotFound {
            what,
            name,
            host: w.host.clone(),
            nearest,
            origin: w.origin.clone(),
        }
        .into_error()
    }

    /// Every repository of `--from`'s registry below its namespace.
    fn every_repository(&self) -> Result<Vec<String>> {
        let from = &self.clients.from;
        let client = self.clients.get(&from.host)?;
        let ns = from.namespace.as_str();
        let below = |r: &String| ns.is_empty() || r == ns || r.starts_with(&format!("{ns}/"));
        let all = match api::catalog(&client)? {
            api::Catalog::Repositories(v) => v,
            api::Catalog::Refused { status, message } => {
                match crate::pull::harbor::repositories(&client, ns)? {
                    Some(v) => v,
                    None => {
                        return Err(Error::invalid(format!(
                            "{} does not list its repositories (GET /v2/_catalog answered {status}: {message}), and it is not a Harbor whose API lists them; name the images or repositories to pull",
                            client.host
                        )))
                    }
                }
            }
        };
        let mut v: Vec<String> = all.into_iter().filter(below).collect();
        v.sort();
        v.dedup();
        Ok(v)
    }
}

/// Errors that stop the whole run before anything is written: credentials
/// and rights, a registry that cannot be reached.
pub fn fatal(e: &Error) -> bool {
    match e.root() {
        Error::Remote(r) => !matches!(r, RemoteError::NotFound { .. }),
        _ => false,
    }
}
