//! Platforms (`os/arch[/variant]`) of index entries, and matching them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The platform of an index entry or an image config.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
pub struct Platform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

impl Platform {
    pub fn new(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.map(Into::into),
            os_version: None,
        }
    }

    /// The platform this program runs on, as Go names it.
    pub fn host() -> Platform {
        let arch = normalize_arch(std::env::consts::ARCH);
        Platform::new(std::env::consts::OS, arch, None)
    }

    /// Whether `self` (a filter the user gave) selects `other` (an entry).
    /// The filter's variant, when given, must match; `arm64` with no variant
    /// and `arm64/v8` are the same, as containerd treats them.
    pub fn selects(&self, other: &Platform) -> bool {
        if self.os != other.os
            || normalize_arch(&self.architecture) != normalize_arch(&other.architecture)
        {
            return false;
        }
        match &self.variant {
            None => true,
            Some(v) => {
                let theirs = other
                    .variant
                    .as_deref()
                    .or(default_variant(&other.architecture));
                Some(v.as_str()) == theirs
            }
        }
    }
}

fn normalize_arch(arch: &str) -> &str {
    match arch {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "armhf" | "armel" => "arm",
        "i386" | "i686" => "386",
        other => other,
    }
}

fn default_variant(arch: &str) -> Option<&'static str> {
    match normalize_arch(arch) {
        "arm64" => Some("v8"),
        _ => None,
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Why a string is not a platform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a platform (expected os/arch or os/arch/variant, e.g. linux/arm64)")]
pub struct PlatformError(pub String);

impl FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &&str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        };
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform::new(os, arch, None)),
            [os, arch, v] if ok(os) && ok(arch) && ok(v) => Ok(Platform::new(os, arch, Some(v))),
            _ => Err(PlatformError(s.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints() {
        assert_eq!(p("linux/arm/v7").to_string(), "linux/arm/v7");
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux/amd64/v1/x".parse::<Platform>().is_err());
    }

    #[test]
    fn selects_like_containerd() {
        assert!(p("linux/amd64").selects(&p("linux/amd64")));
        assert!(p("linux/arm64").selects(&p("linux/arm64/v8")));
        assert!(p("linux/arm64/v8").selects(&p("linux/arm64")));
        assert!(p("linux/arm").selects(&p("linux/arm/v7")));
        assert!(!p("linux/arm/v6").selects(&p("linux/arm/v7")));
        assert!(!p("linux/amd64").selects(&p("windows/amd64")));
        assert!(p("linux/x86_64").selects(&p("linux/amd64")));
    }
}
