//! Errors and warnings printed as rustc and cargo print them:
//!
//! ```text
//! error: blob sha256:3f5e… (layer 2 of 3) is missing
//!   --> /var/lib/registry/docker/registry/v2/blobs/sha256/3f/3f5e…/data
//!    = image: team/app:v1
//!    = help: …
//! ```

use std::error::Error as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::Error;

/// Whether the running command has `--skip-missing`, so that an unknown
/// image's hint can name it (and only then).
static SKIP_MISSING: AtomicBool = AtomicBool::new(false);

/// Says that the running command has `--skip-missing`.
pub fn offer_skip_missing() {
    SKIP_MISSING.store(true, Ordering::Relaxed);
}

/// Prints an error with its path, image and hint (never panicking, even
/// when standard error is a closed pipe).
pub fn print_error(e: &Error) {
    let _ = std::io::stderr().write_all(render("error", e).as_bytes());
}

/// Prints a warning with its path, image and hint.
pub fn print_warning(e: &Error) {
    let _ = std::io::stderr().write_all(render("warning", e).as_bytes());
}

/// The rendered diagnostic, ending with a newline.
pub fn render(level: &str, e: &Error) -> String {
    let mut out = format!("{level}: {}", e.root());
    let mut source = e.root().source();
    while let Some(s) = source {
        // io errors already appear in the message; avoid repeating them.
        if !out.contains(&s.to_string()) {
            out.push_str(&format!(": {s}"));
        }
        source = s.source();
    }
    out.push('\n');
    if let Some(p) = e.path() {
        out.push_str(&format!("  --> {}\n", p.display()));
    }
    if let Some(i) = e.image() {
        out.push_str(&format!("   = image: {i}\n"));
    }
    if let Some(mut h) = e.help() {
        if matches!(e.root(), Error::UnknownImage { nearest, .. } if nearest.is_empty())
            && SKIP_MISSING.load(Ordering::Relaxed)
        {
            h.push_str("; --skip-missing skips this");
        }
        out.push_str(&format!("   = help: {h}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    #[test]
    fn names_path_and_image() {
        let e = Error::MissingBlob {
            digest: Digest::sha256_of(b"x"),
            what: "layer 1 of 2".into(),
            path: "/r/blobs/data".into(),
        }
        .in_image("team/app:v1");
        let text = render("error", &e);
        assert!(text.starts_with("error: blob sha256:"), "{text}");
        assert!(text.contains("(layer 1 of 2) is missing"));
        assert!(text.contains("  --> /r/blobs/data\n"));
        assert!(text.contains("   = image: team/app:v1\n"));
    }
}
