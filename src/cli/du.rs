//! Printing `du`: a summary and a sorted table with a bar per row, JSON,
//! and one self-contained HTML page (the template `du.html`, with the
//! report inlined as JSON).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::cli::diagnostic::{print_error, print_warning, render};
use crate::cli::ls::binary_size;
use crate::cli::SelectArgs;
use crate::command::du::{self, Options, Report, Row};
use crate::error::{Error, Result};
use crate::gc::time::parse_duration;

pub const AFTER_HELP: &str = "\
The whole tree is walked once and every blob sized once, whatever is named: named images
are measured against every tag of the tree. Images that cannot be read are named at the
end (exit 1); the rest are measured.

Definitions:
  bytes        the sizes of the distinct blobs an image needs: its manifests (an index and
               every child), configs and layers. The total of named images is the blob
               bytes `regkit pack` of the same images reports.
  unique       the bytes of those blobs that no other tag keeps, as gc keeps them (an image,
               its children, its blobs, and the referrers - signatures, SBOMs with a
               subject - of what it keeps). For a repository: no tag of another repository;
               for a namespace: of another namespace. Deleting it, then gc
               --delete-untagged, frees its unique bytes and the bytes of its untagged
               referrers that only it keeps (shown as +N of its own referrers).
  shared       bytes - unique. \"shared with N\": how many other tags (repositories,
               namespaces) keep at least one of its blobs.
  namespace    the first component of a repository name (team for team/app).
  dedupe       the sum of each image's own size divided by the distinct bytes they need.
The gc figures are what `regkit gc --dry-run` (and with --delete-untagged) would remove now,
from gc's own planner; unfinished uploads count only with --uploads-older-than, as for gc.

Examples:
  regkit du /var/lib/registry
  regkit du /var/lib/registry --by namespace --top 10
  regkit du /var/lib/registry --list release.list --json | jq .selected.bytes
  regkit du /var/lib/registry --html usage.html";

/// Which table the text output shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum By {
    Namespace,
    Repository,
    Tag,
}

#[derive(Args, Debug)]
pub struct DuArgs {
    #[arg(help = super::ROOT_HELP)]
    pub root: PathBuf,
    #[command(flatten)]
    pub select: SelectArgs,
    /// The table to print: one row per namespace, repository or tag.
    #[arg(long, value_enum, default_value = "repository")]
    pub by: By,
    /// Rows of the table and largest blobs to show (0: all). --json and --html hold every row.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub top: usize,
    /// As for gc: count unfinished uploads not written to for this long as freed (e.g. 7d).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub uploads_older_than: Option<Duration>,
    /// Print the report as JSON (every row, exact bytes).
    #[arg(long)]
    pub json: bool,
    /// Also write the report as one self-contained HTML page: a zoomable treemap and the tables.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Replace an existing --html file.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: &DuArgs, quiet: bool) -> Result<ExitCode> {
    let req = args.select.request()?;
    if let Some(h) = &args.html {
        check_html_target(h, &args.root, args.force)?;
    }
    let opts = Options {
        top: if args.top == 0 { usize::MAX } else { args.top },
        uploads_older_than: args.uploads_older_than,
    };
    let report = du::run(&args.root, &req, &opts)?;
    for e in &report.skipped {
        print_warning(e);
    }
    let doc = json(&report);
    if let Some(h) = &args.html {
        write_html(h, &doc, args.force)?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        crate::cli::print_json(&mut out, &doc)?;
    } else if !quiet {
        let _ = out.write_all(text(&report, args).as_bytes());
    }
    drop(out);
    if let (Some(h), false) = (&args.html, quiet || args.json) {
        eprintln!("wrote {}", h.display());
    }
    if report.failures.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for e in &report.failures {
        print_error(e);
    }
    print_error(&Error::SomeFailed {
        failed: report.failures.len(),
        total: report.failures.len() + report.selected.images,
    });
    Ok(ExitCode::from(1))
}

/// The report as `--json` prints it and the page embeds it.
#[derive(Serialize)]
struct JsonReport<'a> {
    #[serde(flatten)]
    report: &'a Report,
    /// What gc could not read in the repositories it keeps whole, per run.
    gc_errors: GcErrors,
    errors: Vec<String>,
    warnings: Vec<String>,
}

#[derive(Serialize)]
struct GcErrors {
    now: Vec<String>,
    delete_untagged: Vec<String>,
}

fn json(r: &Report) -> JsonReport<'_> {
    let all = |v: &[Error], level| v.iter().map(|e| render(level, e)).collect();
    JsonReport {
        report: r,
        gc_errors: GcErrors {
            now: all(&r.gc.now.reasons, "error"),
            delete_untagged: all(&r.gc.delete_untagged.reasons, "error"),
        },
        errors: all(&r.failures, "error"),
        warnings: all(&r.skipped, "warning"),
    }
}

const BAR: usize = 20;

/// A bar as long as `bytes` is against `max`, solid for the unique part.
fn bar(row: &Row, max: u64) -> String {
    let s = &row.share;
    let len = if max == 0 {
        0
    } else {
        ((s.bytes as f64 / max as f64) * BAR as f64).round() as usize
    }
    .clamp(usize::from(s.bytes > 0), BAR);
    let solid = if s.bytes == 0 {
        0
    } else {
        ((s.unique_bytes as f64 / s.bytes as f64) * len as f64).round() as usize
    };
    format!(
        "{}{}{}",
        "█".repeat(solid),
        "▒".repeat(len - solid),
        " ".repeat(BAR - len)
    )
}

fn text(r: &Report, args: &DuArgs) -> String {
    let mut s = String::new();
    let t = &r.tree;
    let sz = binary_size;
    s.push_str(&format!("{}\n", r.root));
    let line = |s: &mut String, label: &str, bytes: u64, what: String| {
        let bytes = sz(bytes);
        s.push_str(&format!("{label:<9} {bytes:>10}  {what}\n"));
    };
    let plural = |n: usize, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
    line(
        &mut s,
        "stored",
        t.bytes,
        format!("{} under blobs/", plural(t.blobs, "blob")),
    );
    line(
        &mut s,
        "  tagged",
        t.tagged_bytes,
        format!(
            "{} that the {} need{}",
            plural(t.tagged_blobs, "blob"),
            plural(t.tags - t.unreadable_tags, "tag"),
            if t.unreadable_tags > 0 {
                format!(
                    " ({} more {} cannot be read)",
                    t.unreadable_tags,
                    if t.unreadable_tags == 1 {
                        "tag"
                    } else {
                        "tags"
                    }
                )
            } else {
                String::new()
            }
        ),
    );
    let g = &r.gc;
    line(
        &mut s,
        "  kept",
        t.kept_untagged_bytes,
        format!(
            "{} no tag needs that gc keeps: referrers (signatures, SBOMs) of kept manifests",
            plural(t.kept_untagged_blobs, "blob")
        ),
    );
    let m = &g.delete_untagged;
    line(
        &mut s,
        "  garbage",
        m.bytes,
        format!(
            "{} that gc --delete-untagged frees, with {}",
            plural(m.blobs, "blob"),
            plural(m.manifests, "untagged manifest")
        ),
    );
    line(
        &mut s,
        "  orphans",
        g.now.bytes,
        format!("{} that gc frees now", plural(g.now.blobs, "blob")),
    );
    if g.now.leftovers > 0 {
        line(
            &mut s,
            "leftovers",
            g.now.leftover_bytes,
            format!(
                "{} of regkit's own stale temporaries, which gc removes",
                g.now.leftovers
            ),
        );
    }
    if g.uploads > 0 {
        line(
            &mut s,
            "uploads",
            g.upload_bytes,
            format!(
                "{} unfinished (gc --uploads-older-than DURATION removes them{})",
                g.uploads,
                match args.uploads_older_than {
                    Some(_) => format!("; {} of them now", g.now.uploads),
                    None => String::new(),
                }
            ),
        );
    }
    if g.recent_uploads > 0 {
        s.push_str(&format!(
            "note: {} upload(s) were written to in the last 10 minutes: a registry may be writing, and gc refuses without --force\n",
            g.recent_uploads
        ));
    }
    if !g.delete_untagged.kept_whole.is_empty() {
        s.push_str(&format!(
            "note: gc keeps {} whole, as it cannot read all of {}: {} (regkit verify names what)\n",
            match g.delete_untagged.kept_whole.len() {
                1 => "1 damaged repository".to_string(),
                n => format!("{n} damaged repositories"),
            },
            if g.delete_untagged.kept_whole.len() == 1 {
                "it"
            } else {
                "them"
            },
            g.delete_untagged.kept_whole.join(", ")
        ));
    }
    let sel = &r.selected;
    line(
        &mut s,
        "images",
        sel.bytes,
        format!(
            "{}, {}; {} if each were stored alone: dedupe {:.2}x",
            plural(sel.images, "image"),
            plural(sel.blobs, "blob"),
            sz(sel.image_bytes),
            sel.dedupe
        ),
    );

    let (title, rows, unit) = match args.by {
        By::Namespace => ("namespaces", &r.namespaces, "namespaces"),
        By::Repository => ("repositories", &r.repositories, "repos"),
        By::Tag => ("tags", &r.tags, "tags"),
    };
    let shown = rows
        .len()
        .min(if args.top == 0 { usize::MAX } else { args.top });
    s.push_str(&format!(
        "\n{} ({}{})   █ unique ▒ shared\n",
        title.to_uppercase(),
        if shown < rows.len() {
            format!("largest {shown} of ")
        } else {
            String::new()
        },
        rows.len()
    ));
    s.push_str(&format!(
        "{:>10} {:>10} {:>10} {:>13}  {:BAR$}  NAME\n",
        "BYTES", "UNIQUE", "SHARED", "SHARED WITH", ""
    ));
    let max = rows.first().map_or(0, |r| r.share.bytes);
    for row in &rows[..shown] {
        let with = match row.share.shared_with {
            1 => format!("1 {}", unit.trim_end_matches('s')),
            n => format!("{n} {unit}"),
        };
        s.push_str(&format!(
            "{:>10} {:>10} {:>10} {:>13}  {}  {}\n",
            sz(row.share.bytes),
            sz(row.share.unique_bytes),
            sz(row.share.shared_bytes),
            with,
            bar(row, max),
            row.name
        ));
        if row.share.referrer_bytes > 0 {
            s.pop();
            s.push_str(&format!(
                " (+{} of its own referrers)\n",
                sz(row.share.referrer_bytes)
            ));
        }
    }
    if shown < rows.len() {
        s.push_str(&format!(
            "... and {} more (--top 0 shows all)\n",
            rows.len() - shown
        ));
    }

    if !r.largest_blobs.is_empty() {
        s.push_str("\nLARGEST BLOBS\n");
        for b in &r.largest_blobs {
            let held = match b.tags {
                0 => "no tag".to_string(),
                n => {
                    let names: Vec<&str> = b.held_by.iter().take(2).map(String::as_str).collect();
                    let more = n.saturating_sub(names.len());
                    format!(
                        "{n} tag{}: {}{}",
                        if n == 1 { "" } else { "s" },
                        names.join(", "),
                        if more > 0 {
                            format!(" and {more} more")
                        } else {
                            String::new()
                        }
                    )
                }
            };
            let kind = serde_json::to_value(b.kind).expect("serializable");
            s.push_str(&format!(
                "{:>10}  {:<12}  {}  {held}{}\n",
                sz(b.size),
                kind.as_str().unwrap_or("?"),
                b.digest,
                b.collected_by
                    .map(|c| format!(" ({c} removes it)"))
                    .unwrap_or_default()
            ));
        }
    }
    if !r.unrelated_repositories.is_empty() {
        s.push_str(&format!(
            "\nREPOSITORIES WHOSE IMAGES SHARE NO BLOB ({})\n",
            r.unrelated_repositories.len()
        ));
        for u in r.unrelated_repositories.iter().take(shown.max(1)) {
            s.push_str(&format!(
                "{:>10}  {}  ({} images in {} tags)\n",
                sz(u.bytes),
                u.repository,
                u.images,
                u.tags
            ));
        }
    }
    s
}

const TEMPLATE: &str = include_str!("du.html");
const DATA_MARK: &str = "/*DU-DATA*/";

/// Writes the page: the template with the report inlined as JSON,
/// streamed. `<` is escaped in the JSON (it only occurs inside strings),
/// so no name can end the script element.
fn write_page(out: &mut dyn Write, doc: &JsonReport<'_>) -> std::io::Result<()> {
    let (head, tail) = TEMPLATE
        .split_once(DATA_MARK)
        .expect("the template has its mark");
    out.write_all(head.as_bytes())?;
    serde_json::to_writer(EscapeLt(&mut *out), doc).map_err(std::io::Error::from)?;
    out.write_all(tail.as_bytes())
}

/// A writer that spells `<` as the JSON escape `\u003c`.
struct EscapeLt<'a>(&'a mut dyn Write);

impl Write for EscapeLt<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for part in buf.split_inclusive(|b| *b == b'<') {
            match part.split_last() {
                Some((b'<', rest)) => {
                    self.0.write_all(rest)?;
                    self.0.write_all(b"\\u003c")?;
                }
                _ => self.0.write_all(part)?,
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Refuses an --html file that is ROOT or lies inside it (whatever
/// --force says), and an existing one without --force.
fn check_html_target(path: &Path, root: &Path, force: bool) -> Result<()> {
    crate::command::refuse_overlap(root, &[(path, "the page")])?;
    if path.symlink_metadata().is_ok() && !force {
        return Err(Error::OutputExists { path: path.into() });
    }
    Ok(())
}

/// Writes the page beside `path` and puts it in place in one step, which
/// fails if something appeared at `path` meanwhile (unless --force).
fn write_html(path: &Path, doc: &JsonReport<'_>, force: bool) -> Result<()> {
    let tmp = crate::atomic::sibling(path, crate::atomic::TMP_MARK);
    let result = fs::File::create(&tmp)
        .and_then(|f| {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, f);
            write_page(&mut out, doc)?;
            out.into_inner().map(drop).map_err(|e| e.into_error())
        })
        .map_err(|e| Error::io("write", &tmp, e))
        .and_then(|()| crate::atomic::commit(&tmp, path, force));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_binary_units() {
        assert_eq!(binary_size(0), "0 B");
        assert_eq!(binary_size(1023), "1023 B");
        assert_eq!(binary_size(1024), "1.0 KiB");
        assert_eq!(binary_size(1536), "1.5 KiB");
        assert_eq!(binary_size(37_748_736), "36.0 MiB");
        assert_eq!(binary_size(5 << 40), "5.0 TiB");
    }

    #[test]
    fn the_page_cannot_be_ended_by_a_name() {
        let r = Report {
            root: "</script><script>alert(1)</script>".into(),
            tree: Default::default(),
            selected: Default::default(),
            gc: Default::default(),
            namespaces: vec![],
            repositories: vec![],
            tags: vec![],
            largest_blobs: vec![],
            unrelated_repositories: vec![],
            failures: vec![],
            skipped: vec![],
        };
        let mut page = Vec::new();
        write_page(&mut page, &json(&r)).unwrap();
        let page = String::from_utf8(page).unwrap();
        assert!(!page.contains("</script><script>alert"));
        assert!(page.contains("\\u003c/script>"));
        assert!(!page.contains(DATA_MARK));
    }
}
