//! Which tags of a repository a bare repository name means: all of them,
//! or those a `--tag-regex` matches and a `--semver` range holds, as
//! skopeo sync's `images-by-tag-regex` and `images-by-semver` choose them.

pub mod semver;

use std::fmt;

use crate::error::{Error, Result};

pub use semver::Range;

/// The tag filters of a request; empty lets every tag through.
#[derive(Clone, Default)]
pub struct TagFilter {
    /// Matched anywhere in the tag (Go's `regexp.MatchString`, as skopeo):
    /// anchor it with `^...$` to match whole tags.
    pub regex: Option<regex::Regex>,
    /// A Masterminds/semver constraint: tags that are not versions are left out.
    pub semver: Option<Range>,
}

impl fmt::Debug for TagFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TagFilter")
            .field("regex", &self.regex.as_ref().map(|r| r.as_str()))
            .field("semver", &self.semver.as_ref().map(|r| r.to_string()))
            .finish()
    }
}

impl TagFilter {
    /// Builds the filters from `--tag-regex` and `--semver`.
    pub fn new(regex: Option<&str>, semver: Option<&str>) -> Result<TagFilter> {
        let regex = regex
            .map(|r| {
                regex::Regex::new(r).map_err(|e| Error::BadReference {
                    input: r.into(),
                    reason: format!("--tag-regex is not a regular expression: {e}"),
                })
            })
            .transpose()?;
        let semver = semver
            .map(|s| {
                Range::parse(s).map_err(|reason| Error::BadReference {
                    input: s.into(),
                    reason: format!("--semver: {reason}"),
                })
            })
            .transpose()?;
        Ok(TagFilter { regex, semver })
    }

    /// Whether any filter is set.
    pub fn is_set(&self) -> bool {
        self.regex.is_some() || self.semver.is_some()
    }

    /// Whether `tag` passes every filter.
    pub fn matches(&self, tag: &str) -> bool {
        self.regex.as_ref().is_none_or(|r| r.is_match(tag))
            && self.semver.as_ref().is_none_or(|r| r.matches_tag(tag))
    }

    /// What the filters are, for messages: `tags matching ^v1 within >=1.2, <2`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(r) = &self.regex {
            parts.push(format!("matching `{}`", r.as_str()));
        }
        if let Some(s) = &self.semver {
            parts.push(format!("within `{s}`"));
        }
        parts.join(" and ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_tags_by_regex_and_semver() {
        let f = TagFilter::new(Some("^v"), Some(">=1.2, <2")).unwrap();
        let tags = ["v1.1.0", "v1.2.0", "v1.9.3", "v2.0.0", "1.5.0", "latest"];
        let kept: Vec<&str> = tags.iter().copied().filter(|t| f.matches(t)).collect();
        assert_eq!(kept, ["v1.2.0", "v1.9.3"]);
        assert!(TagFilter::default().matches("anything"));
        assert!(TagFilter::new(Some("("), None).is_err());
        assert!(TagFilter::new(None, Some(">>1")).is_err());
        // Unanchored, as skopeo matches.
        assert!(TagFilter::new(Some("rc"), None).unwrap().matches("1.0-rc1"));
    }
}
