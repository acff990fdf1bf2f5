//! Semantic-version ranges in the constraint syntax of Masterminds/semver
//! (v3), which skopeo sync's `images-by-semver` uses: comparators
//! (`=`, `!=`, `>`, `>=`, `<`, `<=`), tilde (`~1.2`: `>=1.2.0, <1.3.0`),
//! caret (`^1.2`: `>=1.2.0, <2.0.0`; `^0.2`: `<0.3.0`), wildcards (`1.x`,
//! `1.2.*`, `*`), hyphen ranges (`1.2 - 1.4.5`), `,` or spaces for "and",
//! `||` for "or". Tags are read leniently, as its `NewVersion` does: a `v`
//! in front, one to three numbers (`3.19` is 3.19.0), a pre-release after
//! `-`. A version with a pre-release matches only a comparator that names
//! one (so `>=1.2` leaves `1.3.0-rc1` out), as in Masterminds v3.

use std::cmp::Ordering;
use std::fmt;

/// A version read from a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// Dot-separated identifiers after `-`; empty for a release.
    pub pre: Vec<String>,
}

impl Version {
    /// Reads `v1.2.3-rc.1`, `1.2`, `3`; `None` for anything else.
    pub fn parse_tag(s: &str) -> Option<Version> {
        let p = Partial::parse(s.strip_prefix('v').unwrap_or(s), false)?;
        Some(p.floor())
    }

    fn core(&self) -> (u64, u64, u64) {
        (self.major, self.minor, self.patch)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Version) -> Ordering {
        self.core()
            .cmp(&other.core())
            .then_with(|| cmp_pre(&self.pre, &other.pre))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Pre-release precedence (semver 2.0.0 §11): a release is above its
/// pre-releases; numeric identifiers compare as numbers, below alphanumeric
/// ones; a shorter list that is a prefix is lower.
fn cmp_pre(a: &[String], b: &[String]) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    for (x, y) in a.iter().zip(b) {
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(m), Ok(n)) => m.cmp(&n),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            _ => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

/// A version as a constraint writes it: parts may be missing or wildcards.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Partial {
    /// The numbers given, up to the first missing or wildcard part.
    parts: Vec<u64>,
    pre: Vec<String>,
}

impl Partial {
    /// `1`, `1.2`, `1.2.3-rc.1`, and with `wild`, `1.x`, `1.2.*`, `*`.
    fn parse(s: &str, wild: bool) -> Option<Partial> {
        let (s, _build) = s.split_once('+').unwrap_or((s, ""));
        let (core, pre) = match s.split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (s, None),
        };
        let pre: Vec<String> = match pre {
            Some(p) => {
                let ids: Vec<String> = p.split('.').map(str::to_string).collect();
                let ok = ids.iter().all(|i| {
                    !i.is_empty() && i.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
                if !ok {
                    return None;
                }
                ids
            }
            None => Vec::new(),
        };
        let fields: Vec<&str> = core.split('.').collect();
        if fields.is_empty() || fields.len() > 3 {
            return None;
        }
        let mut parts = Vec::new();
        let mut ended = false;
        for f in fields {
            if wild && matches!(f, "x" | "X" | "*") {
                ended = true;
                continue;
            }
            if ended || f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) || f.len() > 19 {
                return None;
            }
            parts.push(f.parse().ok()?);
        }
        if parts.len() < 3 && !pre.is_empty() {
            // `1.2-rc1` is read as 1.2.0-rc1, as Masterminds does.
            parts.resize(3, 0);
        }
        Some(Partial { parts, pre })
    }

    /// The lowest version it stands for.
    fn floor(&self) -> Version {
        let at = |i: usize| self.parts.get(i).copied().unwrap_or(0);
        Version {
            major: at(0),
            minor: at(1),
            patch: at(2),
            pre: self.pre.clone(),
        }
    }

    /// The lowest version above everything it stands for: `None` for `*`
    /// and for a full version (which stands for itself alone).
    fn ceiling(&self) -> Option<Version> {
        let v = |major, minor, patch| Version {
            major,
            minor,
            patch,
            pre: Vec::new(),
        };
        match self.parts[..] {
            [] | [_, _, _] => None,
            [m] => Some(v(m + 1, 0, 0)),
            [m, n] => Some(v(m, n + 1, 0)),
            _ => unreachable!("at most three parts"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Tilde,
    Caret,
}

/// One comparator, as written (kept for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Comparator {
    op: Op,
    version: Partial,
}

impl Comparator {
    fn matches(&self, v: &Version) -> bool {
        // A pre-release is only for comparators that ask for them.
        if !v.pre.is_empty() && self.version.pre.is_empty() {
            return false;
        }
        let p = &self.version;
        let lo = p.floor();
        let within = |hi: Option<Version>| match hi {
            Some(hi) => *v >= lo && *v < hi,
            None if p.parts.is_empty() => true,
            None => *v == lo,
        };
        match self.op {
            Op::Eq => within(p.ceiling()),
            Op::Ne => !within(p.ceiling()),
            Op::Gt => match p.ceiling() {
                Some(hi) => *v >= hi,
                None if p.parts.is_empty() => false,
                None => *v > lo,
            },
            Op::Ge => *v >= lo,
            Op::Lt => *v < lo,
            Op::Le => match p.ceiling() {
                Some(hi) => *v < hi,
                None if p.parts.is_empty() => true,
                None => *v <= lo,
            },
            Op::Tilde => {
                let hi = match p.parts.len() {
                    0 => return true,
                    1 => Version::parse_tag(&format!("{}.0.0", lo.major + 1)),
                    _ => Version::parse_tag(&format!("{}.{}.0", lo.major, lo.minor + 1)),
                };
                *v >= lo && hi.is_none_or(|hi| *v < hi)
            }
            Op::Caret => {
                let hi = if lo.major > 0 || p.parts.len() == 1 {
                    format!("{}.0.0", lo.major + 1)
                } else if lo.minor > 0 || p.parts.len() == 2 {
                    format!("0.{}.0", lo.minor + 1)
                } else {
                    format!("0.0.{}", lo.patch + 1)
                };
                if p.parts.is_empty() {
                    return true;
                }
                *v >= lo && Version::parse_tag(&hi).is_none_or(|hi| *v < hi)
            }
        }
    }
}

/// A range: comparators joined by "and", in groups joined by "or".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    text: String,
    any_of: Vec<Vec<Comparator>>,
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Range {
    pub fn parse(text: &str) -> Result<Range, String> {
        let mut any_of = Vec::new();
        for group in text.split("||") {
            let all = parse_group(group.trim())?;
            if all.is_empty() {
                return Err(format!("`{text}` has an empty alternative"));
            }
            any_of.push(all);
        }
        Ok(Range {
            text: text.trim().to_string(),
            any_of,
        })
    }

    pub fn matches(&self, v: &Version) -> bool {
        self.any_of
            .iter()
            .any(|all| all.iter().all(|c| c.matches(v)))
    }

    /// Whether `tag` is a version in the range (a tag that is not a version
    /// is not).
    pub fn matches_tag(&self, tag: &str) -> bool {
        Version::parse_tag(tag).is_some_and(|v| self.matches(&v))
    }
}

/// `>=1.2, <2`, `>= 1.2 < 2`, `1.2 - 1.4`, `~1.2`.
fn parse_group(s: &str) -> Result<Vec<Comparator>, String> {
    // Tokens: operators glued to or apart from their versions.
    let tokens: Vec<&str> = s
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i];
        // A hyphen range: `A - B`.
        if tokens.get(i + 1) == Some(&"-") {
            let b = tokens
                .get(i + 2)
                .ok_or_else(|| format!("`{s}`: a hyphen range needs a version after `-`"))?;
            out.push(Comparator {
                op: Op::Ge,
                version: version(t, s)?,
            });
            out.push(Comparator {
                op: Op::Le,
                version: version(b, s)?,
            });
            i += 3;
            continue;
        }
        let (op, rest) = split_op(t);
        let rest = if rest.is_empty() {
            // `>= 1.2`: the version is the next token.
            i += 1;
            *tokens
                .get(i)
                .ok_or_else(|| format!("`{s}`: `{t}` needs a version"))?
        } else {
            rest
        };
        out.push(Comparator {
            op,
            version: version(rest, s)?,
        });
        i += 1;
    }
    Ok(out)
}

fn split_op(t: &str) -> (Op, &str) {
    for (prefix, op) in [
        ("!=", Op::Ne),
        (">=", Op::Ge),
        ("=>", Op::Ge),
        ("<=", Op::Le),
        ("=<", Op::Le),
        ("~>", Op::Tilde),
        (">", Op::Gt),
        ("<", Op::Lt),
        ("=", Op::Eq),
        ("~", Op::Tilde),
        ("^", Op::Caret),
    ] {
        if let Some(rest) = t.strip_prefix(prefix) {
            return (op, rest);
        }
    }
    (Op::Eq, t)
}

fn version(t: &str, whole: &str) -> Result<Partial, String> {
    Partial::parse(t.strip_prefix('v').unwrap_or(t), true)
        .ok_or_else(|| format!("`{t}` in `{whole}` is not a version"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(range: &str, tags: &[&str]) -> Vec<String> {
        let r = Range::parse(range).unwrap();
        tags.iter()
            .filter(|t| r.matches_tag(t))
            .map(|t| t.to_string())
            .collect()
    }

    const TAGS: [&str; 14] = [
        "0.9.1",
        "1.0.0",
        "1.1.9",
        "v1.2.0",
        "1.2",
        "1.2.7",
        "1.3.0-rc1",
        "1.3.0",
        "1.10.2",
        "2.0.0",
        "2.1",
        "3",
        "latest",
        "1.2.0-alpine",
    ];

    #[test]
    fn ranges_as_masterminds_reads_them() {
        assert_eq!(
            kept(">=1.2, <2", &TAGS),
            ["v1.2.0", "1.2", "1.2.7", "1.3.0", "1.10.2"]
        );
        assert_eq!(
            kept(">= 1.2 < 2", &TAGS),
            kept(">=1.2, <2", &TAGS),
            "spaces join like commas"
        );
        assert_eq!(kept("~1.2", &TAGS), ["v1.2.0", "1.2", "1.2.7"]);
        assert_eq!(
            kept("~1.2.3", &["1.2.2", "1.2.3", "1.2.9", "1.3.0"]),
            ["1.2.3", "1.2.9"]
        );
        assert_eq!(kept("~1", &TAGS), kept("1.x", &TAGS));
        assert_eq!(
            kept("^1.2", &TAGS),
            ["v1.2.0", "1.2", "1.2.7", "1.3.0", "1.10.2"]
        );
        assert_eq!(
            kept("^0.9", &["0.9.0", "0.9.5", "0.10.0", "1.0.0"]),
            ["0.9.0", "0.9.5"]
        );
        assert_eq!(kept("^0.0.3", &["0.0.3", "0.0.4"]), ["0.0.3"]);
        assert_eq!(
            kept("1.x", &TAGS),
            ["1.0.0", "1.1.9", "v1.2.0", "1.2", "1.2.7", "1.3.0", "1.10.2"]
        );
        assert_eq!(kept("1.2.x", &TAGS), ["v1.2.0", "1.2", "1.2.7"]);
        assert_eq!(
            kept("1.2", &TAGS),
            kept("1.2.x", &TAGS),
            "a partial version is a wildcard"
        );
        assert_eq!(kept("=1.2.7", &TAGS), ["1.2.7"]);
        assert_eq!(
            kept(">1.2", &TAGS),
            ["1.3.0", "1.10.2", "2.0.0", "2.1", "3"]
        );
        assert_eq!(
            kept("<=1.2", &TAGS),
            ["0.9.1", "1.0.0", "1.1.9", "v1.2.0", "1.2", "1.2.7"]
        );
        assert_eq!(
            kept("!=1.2, 1.x", &TAGS),
            ["1.0.0", "1.1.9", "1.3.0", "1.10.2"]
        );
        assert_eq!(
            kept("1.0 - 1.2", &TAGS),
            ["1.0.0", "1.1.9", "v1.2.0", "1.2", "1.2.7"]
        );
        assert_eq!(kept("<1 || >=3", &TAGS), ["0.9.1", "3"]);
        assert_eq!(kept("*", &TAGS).len(), 11, "every version but pre-releases");
        // Pre-releases only where the range names one.
        assert_eq!(
            kept(">=1.3.0-rc0", &["1.3.0-rc1", "1.3.0"]),
            ["1.3.0-rc1", "1.3.0"]
        );
        assert!(kept(">=1", &["1.3.0-rc1", "1.2.0-alpine"]).is_empty());
    }

    #[test]
    fn orders_pre_releases() {
        let v = |s| Version::parse_tag(s).unwrap();
        let mut vs = [
            v("1.0.0"),
            v("1.0.0-rc.1"),
            v("1.0.0-beta.11"),
            v("1.0.0-beta.2"),
            v("1.0.0-alpha"),
            v("1.0.0-alpha.1"),
        ];
        vs.sort();
        let order: Vec<String> = vs.iter().map(|x| x.pre.join(".")).collect();
        assert_eq!(order, ["alpha", "alpha.1", "beta.2", "beta.11", "rc.1", ""]);
        assert_eq!(Version::parse_tag("latest"), None);
        assert_eq!(Version::parse_tag("1.2.3.4"), None);
        assert_eq!(Version::parse_tag("v3").unwrap().core(), (3, 0, 0));
    }

    #[test]
    fn refuses_what_is_not_a_range() {
        for bad in ["", ">>1", "1.2 -", "a.b", "1 || ", ">="] {
            assert!(Range::parse(bad).is_err(), "{bad:?}");
        }
    }
}
