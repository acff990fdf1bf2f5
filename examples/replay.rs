//! The floor for `scripts/bench.sh`: replays the folder and file operations
//! of a plan (from `regkit extract|select --dry-run --json`) one by one on
//! one thread, with nothing else: no tree walk, no manifest parsing, no
//! checks. Prints the seconds the operations took.
//!
//! usage: replay PLAN.json V2_DIR OUT

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, plan, v2, out] = args.as_slice() else {
        eprintln!("usage: replay PLAN.json V2_DIR OUT");
        std::process::exit(2);
    };
    let plan: serde_json::Value =
        serde_json::from_slice(&fs::read(plan).expect("read plan")).expect("plan is JSON");
    let out = Path::new(out);
    let v2 = Path::new(v2);
    let files: Vec<(PathBuf, Option<PathBuf>, Vec<u8>)> = plan["planned_files"]
        .as_array()
        .expect("planned_files")
        .iter()
        .map(|f| {
            let dst = out.join(f["path"].as_str().unwrap());
            let source = f["source"].as_str().unwrap();
            match source.strip_prefix("sha256:") {
                Some(hex) => (
                    dst,
                    Some(
                        v2.join("blobs/sha256")
                            .join(&hex[..2])
                            .join(hex)
                            .join("data"),
                    ),
                    vec![],
                ),
                None => (
                    dst,
                    None,
                    f["content"].as_str().unwrap_or("").as_bytes().to_vec(),
                ),
            }
        })
        .collect();
    let mut dirs = BTreeSet::new();
    for (dst, _, _) in &files {
        let mut p = dst.parent();
        while let Some(d) = p {
            if d == out.parent().unwrap_or(Path::new("")) || !dirs.insert(d.to_path_buf()) {
                break;
            }
            p = d.parent();
        }
    }
    let start = Instant::now();
    for d in &dirs {
        fs::create_dir(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
    }
    for (dst, src, bytes) in &files {
        match src {
            Some(src) => {
                fs::hard_link(src, dst).unwrap_or_else(|e| panic!("link {}: {e}", dst.display()))
            }
            None => {
                fs::write(dst, bytes).unwrap_or_else(|e| panic!("write {}: {e}", dst.display()))
            }
        }
    }
    println!("{:.6}", start.elapsed().as_secs_f64());
}
