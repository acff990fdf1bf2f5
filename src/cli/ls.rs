//! Printing `ls`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::cli::diagnostic::print_warning;
use crate::command::ls;
use crate::error::{Error, Result};

pub fn run(root: &Path, json: bool) -> Result<ExitCode> {
    let entries = ls::run(root)?;
    let mut out = crate::cli::stdout();
    if json {
        crate::cli::print_json(&mut out, &entries)?;
    } else {
        let width = entries
            .iter()
            .map(|e| e.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let _ = writeln!(
            out,
            "{:<width$}  {:<71}  {:<11}  {:>10}  PLATFORMS",
            "NAME", "DIGEST", "TYPE", "SIZE"
        );
        for e in &entries {
            let digest = e.digest.as_ref().map_or("-".to_string(), |d| d.to_string());
            let kind = e
                .media_type
                .and_then(crate::media::ManifestKind::from_media_type)
                .map_or("BROKEN", |k| k.short_name());
            let size = e.size.map_or("-".to_string(), human_size);
            let _ = writeln!(
                out,
                "{:<width$}  {:<71}  {:<11}  {:>10}  {}",
                e.name,
                digest,
                kind,
                size,
                e.platforms.join(",")
            );
        }
    }
    drop(out);
    let broken: Vec<&Error> = entries.iter().filter_map(|e| e.error.as_deref()).collect();
    for e in &broken {
        print_warning(e);
    }
    Ok(if broken.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Sizes as `1.2 MB`, in powers of 1000 like docker.
pub fn human_size(n: u64) -> String {
    scaled(n, 1000.0, &["B", "kB", "MB", "GB", "TB"])
}

/// Sizes in binary units, as `du` prints them: `512 B`, `1.5 KiB`.
pub fn binary_size(n: u64) -> String {
    scaled(n, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB", "PiB"])
}

fn scaled(n: u64, base: f64, units: &[&str]) -> String {
    let mut v = n as f64;
    let mut u = 0;
    while v >= base && u < units.len() - 1 {
        v /= base;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}
