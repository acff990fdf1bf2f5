//! Media types of manifests and blobs, typed where the code branches on them.

use std::fmt;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const DOCKER_FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const OCI_FOREIGN_LAYER_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";

/// The kind of a manifest, which decides how its references are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ManifestKind {
    /// Docker image manifest, schema 2.
    DockerManifest,
    /// Docker manifest list.
    DockerManifestList,
    /// Docker schema 1 (unsigned or JWS-signed).
    DockerSchema1 { signed: bool },
    /// OCI image manifest (also OCI 1.1 artifacts, which use it).
    OciManifest,
    /// OCI image index.
    OciIndex,
}

impl ManifestKind {
    /// Recognises a manifest media type.
    pub fn from_media_type(mt: &str) -> Option<ManifestKind> {
        Some(match mt {
            DOCKER_MANIFEST => ManifestKind::DockerManifest,
            DOCKER_MANIFEST_LIST => ManifestKind::DockerManifestList,
            DOCKER_SCHEMA1 => ManifestKind::DockerSchema1 { signed: false },
            DOCKER_SCHEMA1_SIGNED => ManifestKind::DockerSchema1 { signed: true },
            OCI_MANIFEST => ManifestKind::OciManifest,
            OCI_INDEX => ManifestKind::OciIndex,
            _ => return None,
        })
    }

    pub fn media_type(self) -> &'static str {
        match self {
            ManifestKind::DockerManifest => DOCKER_MANIFEST,
            ManifestKind::DockerManifestList => DOCKER_MANIFEST_LIST,
            ManifestKind::DockerSchema1 { signed: false } => DOCKER_SCHEMA1,
            ManifestKind::DockerSchema1 { signed: true } => DOCKER_SCHEMA1_SIGNED,
            ManifestKind::OciManifest => OCI_MANIFEST,
            ManifestKind::OciIndex => OCI_INDEX,
        }
    }

    /// An index or manifest list: it refers to other manifests.
    pub fn is_index(self) -> bool {
        matches!(
            self,
            ManifestKind::DockerManifestList | ManifestKind::OciIndex
        )
    }

    /// A short human name for listings.
    pub fn short_name(self) -> &'static str {
        match self {
            ManifestKind::DockerManifest => "docker",
            ManifestKind::DockerManifestList => "docker-list",
            ManifestKind::DockerSchema1 { .. } => "schema1",
            ManifestKind::OciManifest => "oci",
            ManifestKind::OciIndex => "oci-index",
        }
    }
}

impl fmt::Display for ManifestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.media_type())
    }
}

/// True for the media types of manifests (what gets a revision link rather
/// than a `_layers` link).
pub fn is_manifest(mt: &str) -> bool {
    ManifestKind::from_media_type(mt).is_some()
}

/// The OCI media type for a Docker one (manifests, lists, configs and
/// layers), as containers/image converts them; `None` for anything else.
pub fn oci_equivalent(mt: &str) -> Option<&'static str> {
    Some(match mt {
        DOCKER_MANIFEST => OCI_MANIFEST,
        DOCKER_MANIFEST_LIST => OCI_INDEX,
        DOCKER_CONFIG => OCI_CONFIG,
        DOCKER_LAYER_GZIP => OCI_LAYER_GZIP,
        DOCKER_LAYER_TAR => OCI_LAYER_TAR,
        DOCKER_FOREIGN_LAYER => OCI_FOREIGN_LAYER_GZIP,
        _ => return None,
    })
}

/// The media types a descriptor names without an allocation of its own.
/// The commonest first: each is compared in turn.
const KNOWN: [&str; 16] = [
    DOCKER_LAYER_GZIP,
    OCI_LAYER_GZIP,
    DOCKER_CONFIG,
    OCI_CONFIG,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_SCHEMA1,
    DOCKER_SCHEMA1_SIGNED,
    DOCKER_LAYER_TAR,
    DOCKER_FOREIGN_LAYER,
    OCI_MANIFEST,
    OCI_INDEX,
    OCI_LAYER_TAR,
    OCI_LAYER_ZSTD,
    OCI_EMPTY,
    OCI_FOREIGN_LAYER_GZIP,
];

/// A media type as a descriptor names it. The well-known ones are the
/// static strings above (a big catalog holds hundreds of thousands of
/// descriptors, each of which would otherwise own a copy); any other is
/// owned, as found.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MediaType(std::borrow::Cow<'static, str>);

impl MediaType {
    pub fn new(mt: &str) -> MediaType {
        match KNOWN.iter().find(|k| **k == mt) {
            Some(k) => MediaType(std::borrow::Cow::Borrowed(k)),
            None => MediaType(std::borrow::Cow::Owned(mt.to_string())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for MediaType {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for MediaType {
    fn from(mt: &str) -> MediaType {
        MediaType::new(mt)
    }
}

impl From<String> for MediaType {
    fn from(mt: String) -> MediaType {
        MediaType::new(&mt)
    }
}

impl From<MediaType> for String {
    fn from(mt: MediaType) -> String {
        mt.0.into_owned()
    }
}

impl PartialEq<str> for MediaType {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for MediaType {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl serde::Serialize for MediaType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for MediaType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = MediaType;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a media type")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<MediaType, E> {
                Ok(MediaType::new(v))
            }
        }
        d.deserialize_str(V)
    }
}

/// True for non-distributable ("foreign") layer media types.
pub fn is_foreign_layer(mt: &str) -> bool {
    mt == DOCKER_FOREIGN_LAYER
        || mt.starts_with("application/vnd.oci.image.layer.nondistributable.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_manifest_media_types() {
        for mt in [
            DOCKER_MANIFEST,
            DOCKER_MANIFEST_LIST,
            DOCKER_SCHEMA1,
            DOCKER_SCHEMA1_SIGNED,
            OCI_MANIFEST,
            OCI_INDEX,
        ] {
            assert_eq!(ManifestKind::from_media_type(mt).unwrap().media_type(), mt);
        }
        assert!(ManifestKind::from_media_type(DOCKER_CONFIG).is_none());
        assert!(ManifestKind::OciIndex.is_index());
        assert!(!ManifestKind::OciManifest.is_index());
    }

    #[test]
    fn knows_foreign_layers() {
        assert!(is_foreign_layer(DOCKER_FOREIGN_LAYER));
        assert!(is_foreign_layer(
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        ));
        assert!(!is_foreign_layer(OCI_LAYER_GZIP));
    }

    #[test]
    fn shares_known_media_types_and_keeps_others_as_found() {
        let known = MediaType::new(OCI_LAYER_GZIP);
        assert!(matches!(known.0, std::borrow::Cow::Borrowed(_)));
        assert_eq!(known, OCI_LAYER_GZIP);
        let other: MediaType = serde_json::from_str(r#""application/x.sbom""#).unwrap();
        assert!(matches!(other.0, std::borrow::Cow::Owned(_)));
        assert_eq!(&*other, "application/x.sbom");
        assert_eq!(
            serde_json::to_string(&other).unwrap(),
            r#""application/x.sbom""#
        );
    }
}
