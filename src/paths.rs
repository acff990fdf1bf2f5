//! The storage grammar of distribution's `registry/storage/paths.go`.
//!
//! This is the only module that spells a storage path. Everything is relative
//! to the `v2` folder of a tree:
//!
//! ```text
//! <root>/docker/registry/v2/
//!   blobs/<algorithm>/<first two hex>/<hex>/data
//!   repositories/<name>/                       (name nests: a/b/c/deep)
//!     _uploads/<id>/{data,startedat,hashstates/<algorithm>/<offset>}
//!     _layers/<algorithm>/<hex>/link
//!     _manifests/revisions/<algorithm>/<hex>/link
//!     _manifests/tags/<tag>/current/link
//!     _manifests/tags/<tag>/index/<algorithm>/<hex>/link
//! ```
//!
//! Link files hold `sha256:<64 hex>` with no trailing newline.

use std::path::PathBuf;

use crate::digest::Digest;

/// The path of the `v2` folder below a registry's root directory.
pub const V2_PREFIX: &str = "docker/registry/v2";
pub const BLOBS: &str = "blobs";
pub const REPOSITORIES: &str = "repositories";
pub const MANIFESTS_DIR: &str = "_manifests";
pub const LAYERS_DIR: &str = "_layers";
pub const UPLOADS_DIR: &str = "_uploads";
const LINK: &str = "link";
/// regkit's staging folder in a tree's `v2` folder: files are written there
/// and renamed into place. The registry never reads it.
pub const STAGING_DIR: &str = ".regkit-tmp";

/// One place in the storage tree, typed. `path()` maps it to a relative path
/// and `parse()` maps a relative path back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec<'a> {
    /// `blobs/`
    BlobsRoot,
    /// `blobs/<algo>/<2hex>/<hex>/data`
    BlobData(&'a Digest),
    /// `repositories/`
    RepositoriesRoot,
    /// `repositories/<name>/`
    Repository(&'a str),
    /// `repositories/<name>/_manifests/tags/`
    TagsRoot(&'a str),
    /// `repositories/<name>/_manifests/tags/<tag>/`
    Tag(&'a str, &'a str),
    /// `repositories/<name>/_manifests/tags/<tag>/current/link`
    TagCurrentLink(&'a str, &'a str),
    /// `repositories/<name>/_manifests/tags/<tag>/index/` (holds a folder
    /// per digest algorithm)
    TagIndexRoot(&'a str, &'a str),
    /// `repositories/<name>/_manifests/tags/<tag>/index/<algo>/<hex>/link`
    TagIndexLink(&'a str, &'a str, &'a Digest),
    /// `repositories/<name>/_manifests/revisions/` (holds a folder per
    /// digest algorithm)
    RevisionsRoot(&'a str),
    /// `repositories/<name>/_manifests/revisions/<algo>/<hex>/link`
    RevisionLink(&'a str, &'a Digest),
    /// `repositories/<name>/_layers/` (holds a folder per digest algorithm)
    LayersRoot(&'a str),
    /// `repositories/<name>/_layers/<algo>/<hex>/link`
    LayerLink(&'a str, &'a Digest),
    /// `repositories/<name>/_uploads/`
    UploadsRoot(&'a str),
    /// `repositories/<name>/_uploads/<id>/`
    Upload(&'a str, &'a str),
    /// `blobs/<algo>/<2hex>/`, the folder holding this blob's folder
    BlobPrefix(&'a Digest),
    /// `blobs/<algo>/<2hex>/<hex>/` (what distribution's GC deletes)
    BlobDir(&'a Digest),
    /// `repositories/<name>/_manifests/revisions/<algo>/<hex>/`
    RevisionDir(&'a str, &'a Digest),
    /// `repositories/<name>/_manifests/tags/<tag>/index/<algo>/<hex>/`
    TagIndexDir(&'a str, &'a str, &'a Digest),
    /// `repositories/<name>/_layers/<algo>/<hex>/`
    LayerDir(&'a str, &'a Digest),
    /// `repositories/<name>/_uploads/<id>/startedat` (RFC 3339)
    UploadStartedAt(&'a str, &'a str),
    /// `repositories/<name>/_uploads/<id>/data`
    UploadData(&'a str, &'a str),
    /// `.regkit-gc.lock`: names the gc run holding the tree's lock
    /// (`lock::Lock`), for other runs' messages
    GcLock,
    /// `.regkit-tmp/`, regkit's staging folder
    Staging,
}

impl Spec<'_> {
    /// The path of this place relative to the `v2` folder, `/`-separated.
    pub fn rel(&self) -> String {
        let algo_hex = |d: &Digest| format!("{}/{}", d.algorithm().name(), d.hex());
        match self {
            Spec::BlobsRoot => BLOBS.to_string(),
            Spec::BlobData(d) => format!(
                "{BLOBS}/{}/{}/{}/data",
                d.algorithm().name(),
                &d.hex()[..2],
                d.hex()
            ),
            Spec::RepositoriesRoot => REPOSITORIES.to_string(),
            Spec::Repository(name) => format!("{REPOSITORIES}/{name}"),
            Spec::TagsRoot(name) => format!("{REPOSITORIES}/{name}/{MANIFESTS_DIR}/tags"),
            Spec::Tag(name, tag) => format!("{REPOSITORIES}/{name}/{MANIFESTS_DIR}/tags/{tag}"),
            Spec::TagCurrentLink(name, tag) => {
                format!("{REPOSITORIES}/{name}/{MANIFESTS_DIR}/tags/{tag}/current/{LINK}")
            }
            Spec::TagIndexRoot(name, tag) => {
                format!("{REPOSITORIES}/{name}/{MANIFESTS_DIR}/tags/{tag}/index")
            }
            Spec::TagIndexLink(name, tag, d) => format!(
                "{REPOSITORIES}/{name}/{MANIFESTS_DIR}/tags/{tag}/index/{}/{LINK}",
                algo_hex(d)
            ),
            Spec::RevisionsRoot(name) => {
                format!("{REPOSITORIES}/{name}/{MANIFESTS_DIR}/revisions")
            }
            Spec::RevisionLink(name, d) => format!(
                "{REPOSITORIES}/{name}/{MANIFESTS_DIR}/revisions/{}/{LINK}",
                algo_hex(d)
            ),
            Spec::LayersRoot(name) => format!("{REPOSITORIES}/{name}/{LAYERS_DIR}"),
            Spec::LayerLink(name, d) => {
                format!("{REPOSITORIES}/{name}/{LAYERS_DIR}/{}/{LINK}", algo_hex(d))
            }
            Spec::UploadsRoot(name) => format!("{REPOSITORIES}/{name}/{UPLOADS_DIR}"),
            Spec::Upload(name, id) => format!("{REPOSITORIES}/{name}/{UPLOADS_DIR}/{id}"),
            Spec::BlobPrefix(d) => format!("{BLOBS}/{}/{}", d.algorithm().name(), &d.hex()[..2]),
            Spec::BlobDir(d) => format!(
                "{BLOBS}/{}/{}/{}",
                d.algorithm().name(),
                &d.hex()[..2],
                d.hex()
            ),
            Spec::RevisionDir(name, d) => {
                format!(
                    "{REPOSITORIES}/{name}/{MANIFESTS_DIR}/revisions/{}",
                    algo_hex(d)
                )
            }
            Spec::TagIndexDir(name, tag, d) => format!(
                "{REPOSITORIES}/{name}/{MANIFESTS_DIR}/tags/{tag}/index/{}",
                algo_hex(d)
            ),
            Spec::LayerDir(name, d) => {
                format!("{REPOSITORIES}/{name}/{LAYERS_DIR}/{}", algo_hex(d))
            }
            Spec::UploadStartedAt(name, id) => {
                format!("{REPOSITORIES}/{name}/{UPLOADS_DIR}/{id}/startedat")
            }
            Spec::UploadData(name, id) => format!("{REPOSITORIES}/{name}/{UPLOADS_DIR}/{id}/data"),
            Spec::GcLock => ".regkit-gc.lock".to_string(),
            Spec::Staging => STAGING_DIR.to_string(),
        }
    }

    /// The path of this place relative to the `v2` folder.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(self.rel())
    }

    /// The path of this place relative to the registry's root directory
    /// (`docker/registry/v2/...`), as bundles and outputs spell it.
    pub fn rooted(&self) -> String {
        format!("{V2_PREFIX}/{}", self.rel())
    }
}

/// A relative path recognised as a file of the grammar, with owned parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    BlobData(Digest),
    TagCurrentLink {
        repo: String,
        tag: String,
    },
    TagIndexLink {
        repo: String,
        tag: String,
        digest: Digest,
    },
    RevisionLink {
        repo: String,
        digest: Digest,
    },
    LayerLink {
        repo: String,
        digest: Digest,
    },
    /// Anything under `repositories/<name>/_uploads/<id>/`.
    Upload {
        repo: String,
        id: String,
    },
}

/// Recognises a file path (relative to `v2`, `/`-separated) of the grammar.
/// Returns `None` for anything else, including digests that do not parse.
pub fn parse(rel: &str) -> Option<Parsed> {
    let parts: Vec<&str> = rel.split('/').collect();
    if parts.first() == Some(&BLOBS) {
        // blobs/<algo>/<2hex>/<hex>/data
        return match parts.as_slice() {
            [_, algo, two, hex, "data"] if hex.starts_with(two) && two.len() == 2 => {
                Digest::from_parts(algo, hex).ok().map(Parsed::BlobData)
            }
            _ => None,
        };
    }
    if parts.first() != Some(&REPOSITORIES) {
        return None;
    }
    let marker = parts
        .iter()
        .position(|p| *p == MANIFESTS_DIR || *p == LAYERS_DIR || *p == UPLOADS_DIR)?;
    let repo = parts[1..marker].join("/");
    if !is_valid_repository_name(&repo) {
        return None;
    }
    match &parts[marker..] {
        ["_manifests", "tags", tag, "current", "link"] => Some(Parsed::TagCurrentLink {
            repo,
            tag: tag.to_string(),
        }),
        ["_manifests", "tags", tag, "index", algo, hex, "link"] => Some(Parsed::TagIndexLink {
            repo,
            tag: tag.to_string(),
            digest: Digest::from_parts(algo, hex).ok()?,
        }),
        ["_manifests", "revisions", algo, hex, "link"] => Some(Parsed::RevisionLink {
            repo,
            digest: Digest::from_parts(algo, hex).ok()?,
        }),
        ["_layers", algo, hex, "link"] => Some(Parsed::LayerLink {
            repo,
            digest: Digest::from_parts(algo, hex).ok()?,
        }),
        ["_uploads", id, ..] => Some(Parsed::Upload {
            repo,
            id: id.to_string(),
        }),
        _ => None,
    }
}

/// Whether a folder path (relative to `v2`, `/`-separated) is one the
/// grammar has: an ancestor of some file [`parse`] accepts (`blobs/sha256/ab`,
/// `repositories/team/app/_manifests/tags/v1/index`, ...). Archives are
/// checked with it, so a bundle cannot bring folders the layout lacks.
pub fn is_layout_folder(rel: &str) -> bool {
    let parts: Vec<&str> = rel.split('/').collect();
    let algo = |a: &str| crate::digest::Algorithm::from_name(a).is_some();
    let hex_of = |a: &str, h: &str| Digest::from_parts(a, h).is_ok();
    match parts.as_slice() {
        [BLOBS] => true,
        [BLOBS, a] => algo(a),
        [BLOBS, a, two] => {
            algo(a)
                && two.len() == 2
                && two
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        }
        [BLOBS, a, two, hex] => hex.starts_with(two) && hex_of(a, hex),
        [REPOSITORIES] => true,
        [REPOSITORIES, rest @ ..] => {
            let marker = rest
                .iter()
                .position(|p| *p == MANIFESTS_DIR || *p == LAYERS_DIR || *p == UPLOADS_DIR);
            let (name, tail) = match marker {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, &[][..]),
            };
            if !name.iter().all(|c| is_valid_component(c)) || name.is_empty() {
                return false;
            }
            match tail {
                [] => true,
                ["_manifests"] | ["_manifests", "tags"] | ["_manifests", "revisions"] => true,
                ["_manifests", "tags", tag, rest @ ..] => {
                    is_valid_tag(tag)
                        && match rest {
                            [] | ["current"] | ["index"] => true,
                            ["index", a] => algo(a),
                            ["index", a, h] => hex_of(a, h),
                            _ => false,
                        }
                }
                ["_manifests", "revisions", a] | ["_layers", a] => algo(a),
                ["_manifests", "revisions", a, h] | ["_layers", a, h] => hex_of(a, h),
                ["_layers"] | ["_uploads", ..] => true,
                _ => false,
            }
        }
        _ => false,
    }
}

/// The bytes of a link file pointing at `digest`: `sha256:<hex>`, no newline.
pub fn link_bytes(digest: &Digest) -> Vec<u8> {
    digest.as_str().as_bytes().to_vec()
}

/// Parses a link file's bytes strictly.
pub fn parse_link(bytes: &[u8]) -> Result<Digest, crate::digest::DigestError> {
    let text = std::str::from_utf8(bytes).map_err(|_| crate::digest::DigestError {
        found: String::from_utf8_lossy(bytes).chars().take(100).collect(),
    })?;
    Digest::parse_shared(text)
}

/// A tag as distribution accepts it: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// A repository name as distribution's reference grammar accepts it:
/// `/`-separated components of `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`.
pub fn is_valid_repository_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && name.split('/').all(is_valid_component)
}

fn is_valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: `.`, `_`, `__`, or any number of `-`.
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> Digest {
        Digest::sha256_of(b"x")
    }

    #[test]
    fn spells_every_path_and_parses_it_back() {
        let d = d();
        let h = d.hex().to_string();
        let cases: Vec<(Spec, String, Option<Parsed>)> = vec![
            (
                Spec::BlobData(&d),
                format!("blobs/sha256/{}/{h}/data", &h[..2]),
                Some(Parsed::BlobData(d.clone())),
            ),
            (
                Spec::TagCurrentLink("a/b/c", "v1"),
                "repositories/a/b/c/_manifests/tags/v1/current/link".into(),
                Some(Parsed::TagCurrentLink {
                    repo: "a/b/c".into(),
                    tag: "v1".into(),
                }),
            ),
            (
                Spec::TagIndexLink("app", "v1", &d),
                format!("repositories/app/_manifests/tags/v1/index/sha256/{h}/link"),
                Some(Parsed::TagIndexLink {
                    repo: "app".into(),
                    tag: "v1".into(),
                    digest: d.clone(),
                }),
            ),
            (
                Spec::RevisionLink("app", &d),
                format!("repositories/app/_manifests/revisions/sha256/{h}/link"),
                Some(Parsed::RevisionLink {
                    repo: "app".into(),
                    digest: d.clone(),
                }),
            ),
            (
                Spec::LayerLink("x/y", &d),
                format!("repositories/x/y/_layers/sha256/{h}/link"),
                Some(Parsed::LayerLink {
                    repo: "x/y".into(),
                    digest: d.clone(),
                }),
            ),
        ];
        for (spec, path, parsed) in cases {
            assert_eq!(spec.path(), PathBuf::from(&path));
            assert_eq!(parse(&path), parsed);
        }
    }

    #[test]
    fn folders_hold_their_files() {
        let d = d();
        let parent = |s: Spec| s.path().parent().unwrap().to_path_buf();
        assert_eq!(parent(Spec::BlobData(&d)), Spec::BlobDir(&d).path());
        assert_eq!(parent(Spec::BlobDir(&d)), Spec::BlobPrefix(&d).path());
        // Each digest folder lies in its algorithm's folder of the root.
        let grandparent = |s: Spec| s.path().parent().unwrap().parent().unwrap().to_path_buf();
        for (link, root) in [
            (Spec::RevisionLink("a", &d), Spec::RevisionsRoot("a")),
            (Spec::LayerLink("a", &d), Spec::LayersRoot("a")),
            (
                Spec::TagIndexLink("a", "t", &d),
                Spec::TagIndexRoot("a", "t"),
            ),
        ] {
            assert_eq!(grandparent(link), root.path().join("sha256"));
        }
        assert_eq!(
            parent(Spec::RevisionLink("a/b", &d)),
            Spec::RevisionDir("a/b", &d).path()
        );
        assert_eq!(
            parent(Spec::TagIndexLink("a", "t", &d)),
            Spec::TagIndexDir("a", "t", &d).path()
        );
        assert_eq!(
            parent(Spec::LayerLink("a", &d)),
            Spec::LayerDir("a", &d).path()
        );
        assert_eq!(
            parent(Spec::UploadStartedAt("a", "u")),
            Spec::Upload("a", "u").path()
        );
        assert_eq!(
            parent(Spec::UploadData("a", "u")),
            Spec::Upload("a", "u").path()
        );
        assert_eq!(
            parent(Spec::Upload("a/b", "u")),
            Spec::UploadsRoot("a/b").path()
        );
    }

    #[test]
    fn parses_uploads_and_rejects_strangers() {
        assert_eq!(
            parse("repositories/a/_uploads/1234/data"),
            Some(Parsed::Upload {
                repo: "a".into(),
                id: "1234".into()
            })
        );
        assert_eq!(parse("blobs/sha256/zz/abc/data"), None);
        assert_eq!(parse("repositories/_manifests/tags/x/current/link"), None);
        assert_eq!(parse("other/file"), None);
    }

    #[test]
    fn knows_the_folders_of_the_layout() {
        let h = d().hex().to_string();
        let good = [
            "blobs".to_string(),
            "blobs/sha256".into(),
            format!("blobs/sha256/{}", &h[..2]),
            format!("blobs/sha256/{}/{h}", &h[..2]),
            "repositories".into(),
            "repositories/registry.k8s.io/pause".into(),
            "repositories/a/_manifests/tags/v1/current".into(),
            format!("repositories/a/_manifests/tags/v1/index/sha256/{h}"),
            format!("repositories/a/b/_manifests/revisions/sha256/{h}"),
            format!("repositories/a/_layers/sha256/{h}"),
            "repositories/a/_uploads/1234/hashstates".into(),
        ];
        let bad = [
            "random junk".to_string(),
            "blobs/sha256/zz".into(),
            "blobs/sha256/ab/not-a-digest".into(),
            format!("blobs/sha256/00/{h}"),
            "repositories/Bad".into(),
            "repositories/a/_manifests/tags/.x".into(),
            "repositories/a/_manifests/other".into(),
            "repositories/a/_layers/sha256/xyz".into(),
        ];
        for g in &good {
            assert!(is_layout_folder(g), "{g}");
        }
        for b in &bad {
            assert!(!is_layout_folder(b), "{b}");
        }
        assert_eq!((good.len(), bad.len()), (11, 8));
    }

    #[test]
    fn link_files_are_strict() {
        let d = d();
        assert_eq!(parse_link(&link_bytes(&d)).unwrap(), d);
        let mut nl = link_bytes(&d);
        nl.push(b'\n');
        assert!(parse_link(&nl).is_err());
        assert!(parse_link(b"sha256:xyz").is_err());
        assert!(parse_link(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn tags_and_names_follow_distribution() {
        assert!(is_valid_tag(&"a".repeat(128)));
        assert!(!is_valid_tag(&"a".repeat(129)));
        assert!(!is_valid_tag(".hidden"));
        assert!(!is_valid_tag("a/b"));
        assert!(is_valid_tag("sha256-abc.sig"));
        for ok in ["a", "a/b/c/deep", "my-app", "my__app", "a.b", "x--y"] {
            assert!(is_valid_repository_name(ok), "{ok}");
        }
        for bad in ["", "A", "a//b", "-a", "a-", "a/", "a..b", "a___b"] {
            assert!(!is_valid_repository_name(bad), "{bad}");
        }
    }
}
