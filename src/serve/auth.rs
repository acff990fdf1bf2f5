//! Basic authentication against an htpasswd file, as distribution's
//! `auth: htpasswd` does: bcrypt entries only (`htpasswd -B`), every request
//! checked, a 401 with `WWW-Authenticate: Basic realm=...` otherwise.
//!
//! bcrypt is slow on purpose (tens of milliseconds a check at cost 10), so a
//! pair that was checked once is remembered by a sha256 of it: a client that
//! sends the same credentials on every request pays the cost once.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use base64::Engine as _;

use crate::digest::Digest;
use crate::error::{Error, Result};

/// The realm named in `WWW-Authenticate`.
pub const REALM: &str = "regkit";

pub struct Htpasswd {
    /// User → bcrypt hash.
    users: HashMap<String, String>,
    /// sha256 of `user:password` pairs checked and found good.
    good: Mutex<HashSet<Digest>>,
}

impl Htpasswd {
    /// Reads `user:hash` lines (`#` comments and blank lines skipped).
    pub fn load(path: &Path) -> Result<Htpasswd> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| Error::Invalid {
                message: format!("line {}: {why}", n + 1),
                path: Some(path.into()),
            };
            let (user, hash) = line.split_once(':').ok_or_else(|| bad("not user:hash"))?;
            if !hash.starts_with("$2") {
                return Err(bad(
                    "only bcrypt entries are supported (htpasswd -B), as distribution reads them",
                ));
            }
            users.insert(user.to_string(), hash.to_string());
        }
        if users.is_empty() {
            return Err(Error::Invalid {
                message: "the htpasswd file names no user".into(),
                path: Some(path.into()),
            });
        }
        Ok(Htpasswd {
            users,
            good: Mutex::new(HashSet::new()),
        })
    }

    /// Whether an `Authorization` header value holds a user and password of
    /// the file. Blocking (bcrypt): call it off the async workers.
    pub fn allows(&self, authorization: Option<&str>) -> bool {
        let Some((user, password)) = authorization.and_then(basic) else {
            return false;
        };
        let Some(hash) = self.users.get(&user) else {
            return false;
        };
        let key = Digest::sha256_of(format!("{user}:{password}").as_bytes());
        if self.good.lock().expect("not poisoned").contains(&key) {
            return true;
        }
        let ok = bcrypt::verify(&password, hash).unwrap_or(false);
        if ok {
            self.good.lock().expect("not poisoned").insert(key);
        }
        ok
    }

    /// Whether the pair was checked and found good already (no bcrypt).
    pub fn known_good(&self, authorization: Option<&str>) -> bool {
        let Some((user, password)) = authorization.and_then(basic) else {
            return false;
        };
        let key = Digest::sha256_of(format!("{user}:{password}").as_bytes());
        self.good.lock().expect("not poisoned").contains(&key)
    }
}

/// The user and password of a `Basic` authorization.
fn basic(value: &str) -> Option<(String, String)> {
    let (scheme, b64) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_bcrypt_entries_and_remembers_good_pairs() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("htpasswd");
        let hash = bcrypt::hash("secret", 4).unwrap();
        std::fs::write(&file, format!("# users\nalice:{hash}\n")).unwrap();
        let h = Htpasswd::load(&file).unwrap();
        let header = |u: &str, p: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        };
        let good = header("alice", "secret");
        assert!(!h.known_good(Some(&good)));
        assert!(h.allows(Some(&good)));
        assert!(h.known_good(Some(&good)));
        let cases = [
            header("alice", "wrong"),
            header("bob", "secret"),
            "Bearer abc".to_string(),
            "Basic !!!".to_string(),
        ];
        for c in &cases {
            assert!(!h.allows(Some(c)), "{c}");
        }
        assert!(!h.allows(None));
        std::fs::write(&file, "alice:{SHA}abc\n").unwrap();
        assert!(Htpasswd::load(&file).is_err());
    }
}
