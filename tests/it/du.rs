//! `regkit du` on trees the real registry wrote: the bytes of a selection
//! against what `pack` ships, the gc figures against `gc --dry-run`, unique
//! bytes against what deleting a tag and collecting frees, the sharing
//! figures against a model built from the fixtures' sidecars, and the HTML
//! page in a real browser (Debian's chromium).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::*;

fn du(root: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["du", root.to_str().unwrap()];
    args.extend_from_slice(extra);
    regkit(args)
}

fn du_json(root: &Path, extra: &[&str]) -> Value {
    let mut e = vec!["--json"];
    e.extend_from_slice(extra);
    du(root, &e).ok().json()
}

/// `pack --dry-run --json` of `images` (none: every tag): (blobs, bytes).
fn pack_totals(root: &Path, images: &[&str], extra: &[&str]) -> (u64, u64) {
    let t = tempdir();
    let bundle = t.path().join("b.tar");
    let mut args = vec![
        "pack",
        root.to_str().unwrap(),
        bundle.to_str().unwrap(),
        "--dry-run",
        "--json",
    ];
    args.extend_from_slice(images);
    args.extend_from_slice(extra);
    // With --keep-going, images left out make it exit 1.
    let r = match regkit(args) {
        r if extra.contains(&"--keep-going") && r.code != 0 => r.fails(1),
        r => r.ok(),
    };
    let v = r.json();
    (
        v["blob_count"].as_u64().unwrap(),
        v["blob_bytes"].as_u64().unwrap(),
    )
}

fn totals(v: &Value) -> (u64, u64) {
    (
        v["selected"]["blobs"].as_u64().unwrap(),
        v["selected"]["bytes"].as_u64().unwrap(),
    )
}

fn rows<'a>(v: &'a Value, level: &str) -> BTreeMap<String, &'a Value> {
    v[level]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_string(), r))
        .collect()
}

fn names(v: &Value, level: &str) -> Vec<String> {
    v[level]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

fn namespace(repo: &str) -> &str {
    repo.split('/').next().unwrap()
}

#[test]
fn du_of_a_selection_is_the_blob_bytes_pack_reports() {
    let t = tempdir();
    let mut checked = 0;
    for f in [sample(), gc_fixture(), edge(), built("mirror")] {
        let all = du_json(&f.root, &[]);
        assert_eq!(totals(&all), pack_totals(&f.root, &[], &[]));
        checked += 1;
        // Every tag, repository and namespace row is what pack ships of it.
        for (name, row) in rows(&all, "tags") {
            let (_, bytes) = pack_totals(&f.root, &[&name], &[]);
            assert_eq!(row["bytes"].as_u64().unwrap(), bytes, "{name}");
            let one = du_json(&f.root, &[&name]);
            assert_eq!(totals(&one), pack_totals(&f.root, &[&name], &[]), "{name}");
            assert_eq!(rows(&one, "tags")[&name]["bytes"], row["bytes"], "{name}");
            checked += 1;
        }
        let repos = rows(&all, "repositories");
        for (name, row) in &repos {
            let (blobs, bytes) = pack_totals(&f.root, &[name], &[]);
            assert_eq!(row["bytes"].as_u64().unwrap(), bytes, "{name}");
            assert_eq!(row["blobs"].as_u64().unwrap(), blobs, "{name}");
            checked += 1;
        }
        for (ns, row) in rows(&all, "namespaces") {
            let members: Vec<&str> = repos
                .keys()
                .filter(|r| namespace(r) == ns)
                .map(String::as_str)
                .collect();
            assert!(!members.is_empty());
            assert_eq!(
                row["repositories"].as_u64().unwrap() as usize,
                members.len()
            );
            let (blobs, bytes) = pack_totals(&f.root, &members, &[]);
            assert_eq!(
                (
                    row["blobs"].as_u64().unwrap(),
                    row["bytes"].as_u64().unwrap()
                ),
                (blobs, bytes),
                "{ns}"
            );
            checked += 1;
        }
        // A list and a platform filter select the same images for both.
        let images: Vec<String> = rows(&all, "tags").keys().take(4).cloned().collect();
        let list = t.path().join("some.list");
        fs::write(&list, format!("# four\n{}\n", images.join("\n"))).unwrap();
        let l = ["--list", list.to_str().unwrap()];
        assert_eq!(totals(&du_json(&f.root, &l)), pack_totals(&f.root, &[], &l));
        let p = ["--platform", "linux/amd64"];
        assert_eq!(totals(&du_json(&f.root, &p)), pack_totals(&f.root, &[], &p));
        checked += 2;
    }
    // sample: all, 40 tags, 8 repositories, 6 namespaces, a list and a
    // platform; gc: 1 + 6 + 3 + 2 + 2; edge: 1 + 7 + 5 + 5 + 2; mirror:
    // 1 + 7 + 6 + 6 + 2.
    assert_eq!(checked, 57 + 14 + 20 + 22);

    // Indexes nested deeper than regkit follows are named and left out, as
    // pack --keep-going leaves them out; a layer named by its sha512 is
    // counted once, as the sha256 blob the registry stores it as.
    let g = built("graph");
    let r = du(&g.root, &["--json"]).fails(1);
    assert!(r.stderr.contains("nest/deep:9"), "{}", r.stderr);
    let v = r.json();
    assert_eq!(totals(&v), pack_totals(&g.root, &[], &["--keep-going"]));
    let mut graph = 0;
    for name in names(&v, "tags") {
        let one = du_json(&g.root, &[&name]);
        assert_eq!(totals(&one), pack_totals(&g.root, &[&name], &[]), "{name}");
        graph += 1;
    }
    assert_eq!(graph, 2, "nest/deep:8 and hash/sha512:1");
}

/// What gc --dry-run --json reports, as du names the figures.
fn gc_figures(root: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["gc", root.to_str().unwrap(), "--dry-run", "--json"];
    args.extend_from_slice(extra);
    let r = regkit(args);
    let v = r.json();
    let list = |k: &str| v[k].as_array().unwrap();
    let figures = serde_json::json!({
        "blobs": v["freed_blobs"],
        "bytes": v["freed_bytes"],
        "manifests": list("manifests").len(),
        "layer_links": list("layer_links").len(),
        "uploads": list("uploads").len(),
        "upload_bytes": v["upload_bytes"],
        "leftovers": list("leftovers").len(),
        "leftover_bytes": list("leftovers").iter().map(|l| l["bytes"].as_u64().unwrap()).sum::<u64>(),
        "kept_whole": list("kept_whole").iter().map(|k| k["repository"].clone()).collect::<Vec<_>>(),
    });
    (r.code, figures)
}

/// Every blob file of a tree and its size.
fn blob_sizes(root: &Path) -> BTreeMap<String, u64> {
    blob_set(root)
        .into_iter()
        .map(|d| {
            let n = fs::metadata(blob_path(root, &d)).unwrap().len();
            (d, n)
        })
        .collect()
}

#[test]
fn du_says_gc_frees_what_gc_dry_run_lists() {
    let t = tempdir();
    let trees = [
        copy_fixture(sample(), t.path(), "sample"),
        copy_fixture(gc_fixture(), t.path(), "gc"),
        damaged("deleted-tag", sample(), t.path()),
        damaged("orphan-blob", sample(), t.path()),
        damaged("leftover-upload", sample(), t.path()),
        damaged("orphan-blob", edge(), &t.path().join("edge")),
    ];
    let mut checked = 0;
    let mut freed_any = 0;
    for d in &trees {
        let before = Snapshot::take(&d.root);
        // The upload of leftover-upload is fresh: gc needs --force for it.
        let v = du_json(&d.root, &["--uploads-older-than", "0s"]);
        assert!(
            Snapshot::take(&d.root) == before,
            "du changed {}",
            d.root.display()
        );
        for (key, extra) in [("now", vec![]), ("delete_untagged", vec!["-m"])] {
            let mut extra = extra;
            extra.extend(["--force", "--uploads-older-than", "0s"]);
            let (code, figures) = gc_figures(&d.root, &extra);
            assert_eq!(code, 0);
            let ours: Value = v["gc"][key]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| figures.get(k.as_str()).is_some())
                .map(|(k, x)| (k.clone(), x.clone()))
                .collect::<serde_json::Map<_, _>>()
                .into();
            assert_eq!(ours, figures, "{} {key}", d.root.display());
            freed_any += usize::from(figures["bytes"].as_u64().unwrap() > 0);
            checked += 1;
        }
        // The tree's bytes are every blob file's, and they split into what
        // tags need, what gc keeps besides and what it would free.
        let files = blob_sizes(&d.root);
        let tree = &v["tree"];
        assert_eq!(tree["blobs"].as_u64().unwrap() as usize, files.len());
        assert_eq!(tree["bytes"].as_u64().unwrap(), files.values().sum::<u64>());
        let parts = ["tagged_bytes", "kept_untagged_bytes"]
            .iter()
            .map(|k| tree[*k].as_u64().unwrap())
            .sum::<u64>()
            + v["gc"]["delete_untagged"]["bytes"].as_u64().unwrap();
        assert_eq!(
            parts,
            tree["bytes"].as_u64().unwrap(),
            "{}",
            d.root.display()
        );
    }
    assert_eq!(checked, 2 * trees.len());
    assert!(freed_any >= 6, "only {freed_any} runs had garbage");
    // The leftover upload counts as gc counts it, and is noted as recent.
    let up = du_json(&trees[4].root, &["--uploads-older-than", "0s"]);
    assert_eq!(up["gc"]["uploads"], 1);
    assert_eq!(up["gc"]["now"]["uploads"], 1);
    assert_eq!(up["gc"]["recent_uploads"], 1);
    let text = du(&trees[4].root, &[]).ok().stdout;
    assert!(
        text.contains("1 unfinished") && text.contains("gc refuses"),
        "{text}"
    );
    let none = du_json(&trees[4].root, &[]);
    assert_eq!(none["gc"]["now"]["uploads"], 0);
}

#[test]
fn du_says_what_gc_keeps_whole_around_damage_and_names_the_broken_image() {
    let t = tempdir();
    let d = damaged("not-json", sample(), t.path());
    let damage = &d.sidecar["damages"][0];
    let broken = damage["images"][0].as_str().unwrap().to_string();
    let repo = damage["repo"].as_str().unwrap();
    let r = du(&d.root, &["--json"]).fails(1);
    let v = r.json();
    assert!(r.stderr.contains(&broken), "{}", r.stderr);
    // gc collects the rest and keeps the damaged repository whole: du
    // says the same, and why.
    let mut checked = 0;
    for (key, extra) in [("now", vec![]), ("delete_untagged", vec!["-m"])] {
        let (code, figures) = gc_figures(&d.root, &extra);
        assert_eq!(code, 1, "gc says the tree needs attention");
        assert_eq!(figures["kept_whole"], serde_json::json!([repo]));
        assert_eq!(v["gc"][key]["kept_whole"], figures["kept_whole"]);
        assert_eq!(v["gc"][key]["bytes"], figures["bytes"], "{key}");
        assert!(!v["gc_errors"][key].as_array().unwrap().is_empty());
        checked += 1;
    }
    assert_eq!(checked, 2);
    // The others are measured; the damage added a tag naming the broken
    // manifest.
    let tags = rows(&v, "tags");
    assert_eq!(v["tree"]["tags"], 41);
    assert_eq!(v["tree"]["unreadable_tags"], 1);
    assert_eq!(tags.len(), 40);
    assert!(!tags.contains_key(&broken));
    let text = du(&d.root, &[]).fails(1);
    assert!(
        text.stdout.contains(&format!(
            "gc keeps 1 damaged repository whole, as it cannot read all of it: {repo}"
        )),
        "{}",
        text.stdout
    );
}

/// Blobs gc frees with --delete-untagged, by dry run.
fn freed(root: &Path) -> BTreeSet<String> {
    let v = regkit(["gc", root.to_str().unwrap(), "-n", "-m", "--json"])
        .ok()
        .json();
    v["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["digest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn du_unique_bytes_are_what_deleting_the_tags_then_gc_frees() {
    let t = tempdir();
    let mut checked = 0;
    let mut nonzero = 0;
    for (i, f) in [sample(), gc_fixture()].into_iter().enumerate() {
        let v = du_json(&f.root, &[]);
        let sizes = blob_sizes(&f.root);
        let baseline = freed(&f.root);
        let tags = names(&v, "tags");
        let mut cases: Vec<(String, Vec<String>, &Value)> = rows(&v, "tags")
            .into_iter()
            .map(|(n, r)| (n.clone(), vec![n], r))
            .collect();
        for (repo, row) in rows(&v, "repositories") {
            let members: Vec<String> = tags
                .iter()
                .filter(|n| n.rsplit_once(':').unwrap().0 == repo)
                .cloned()
                .collect();
            cases.push((repo, members, row));
        }
        for (k, (name, delete, row)) in cases.into_iter().enumerate() {
            let copy = copy_fixture(f, t.path(), &format!("t{i}-{k}"));
            let mut args = vec![
                "-q".to_string(),
                "delete".into(),
                copy.root.display().to_string(),
            ];
            args.extend(delete);
            regkit(&args).ok();
            let delta: u64 = freed(&copy.root)
                .difference(&baseline)
                .map(|d| sizes[d])
                .sum();
            let expect =
                row["unique_bytes"].as_u64().unwrap() + row["referrer_bytes"].as_u64().unwrap();
            assert_eq!(delta, expect, "deleting {name}");
            nonzero += usize::from(delta > 0);
            checked += 1;
            fs::remove_dir_all(&copy.root).unwrap();
        }
    }
    // 40 tags and 8 repositories of the sample, 6 and 3 of the gc recipe.
    assert_eq!(checked, 40 + 8 + 6 + 3);
    assert!(nonzero >= 20, "only {nonzero} deletions freed anything");
}

/// The blobs gc keeps for each tag of a sidecar: the image, and every
/// manifest of its repository (tagged or not) whose subject it keeps.
fn kept_by_tag(f: &Fixture) -> BTreeMap<String, (String, BTreeSet<String>, BTreeSet<String>)> {
    let entries: Vec<&Value> = f.sidecar["images"]
        .as_array()
        .unwrap()
        .iter()
        .chain(f.sidecar["untagged"].as_array().unwrap())
        .collect();
    let mut out = BTreeMap::new();
    for i in f.sidecar["images"].as_array().unwrap() {
        let repo = i["repo"].as_str().unwrap();
        let mut own = BTreeSet::new();
        node_reach(i, &mut own);
        let mut kept = own.clone();
        loop {
            let mut more = BTreeSet::new();
            for e in &entries {
                let refers = e["subject"].as_str().is_some_and(|s| kept.contains(s));
                if e["repo"] == repo && refers && !kept.contains(e["digest"].as_str().unwrap()) {
                    node_reach(e, &mut more);
                }
            }
            if more.is_empty() {
                break;
            }
            kept.extend(more);
        }
        out.insert(
            i["ref"].as_str().unwrap().to_string(),
            (repo.to_string(), own, kept),
        );
    }
    out
}

/// Who holds a tag's blobs at one level: the tag, its repository, its
/// namespace.
type Holder<'a> = Box<dyn Fn(&str) -> String + 'a>;

#[test]
fn du_unique_and_shared_bytes_follow_from_who_keeps_each_blob() {
    let mut checked = 0;
    for f in [sample(), gc_fixture(), edge()] {
        let v = du_json(&f.root, &[]);
        let sizes = blob_sizes(&f.root);
        let model = kept_by_tag(f);
        // Holders at each level: tag, repository, namespace.
        let levels: [(&str, Holder); 3] = [
            ("tags", Box::new(|t: &str| t.to_string())),
            ("repositories", Box::new(|t: &str| model[t].0.clone())),
            (
                "namespaces",
                Box::new(|t: &str| namespace(&model[t].0).to_string()),
            ),
        ];
        for (level, holder) in levels {
            let mut keeps: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
            let mut own: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
            let mut kept: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
            for (tag, (_, o, k)) in &model {
                let h = holder(tag);
                for b in k.iter().filter(|b| sizes.contains_key(*b)) {
                    keeps.entry(b).or_default().insert(h.clone());
                    kept.entry(h.clone()).or_default().insert(b);
                }
                for b in o.iter().filter(|b| sizes.contains_key(*b)) {
                    own.entry(h.clone()).or_default().insert(b);
                }
            }
            let got = rows(&v, level);
            assert_eq!(got.len(), own.len(), "{level}");
            for (h, blobs) in &own {
                let row = got[h];
                let alone = |b: &&&str| keeps[**b].iter().all(|x| x == h);
                let bytes: u64 = blobs.iter().map(|b| sizes[*b]).sum();
                let unique: u64 = blobs.iter().filter(alone).map(|b| sizes[*b]).sum();
                let others: BTreeSet<&String> = blobs
                    .iter()
                    .flat_map(|b| &keeps[*b])
                    .filter(|x| *x != h)
                    .collect();
                let referrer: u64 = kept[h]
                    .iter()
                    .filter(|b| !blobs.contains(*b))
                    .filter(alone)
                    .map(|b| sizes[*b])
                    .sum();
                assert_eq!(row["blobs"].as_u64().unwrap() as usize, blobs.len(), "{h}");
                assert_eq!(row["bytes"].as_u64().unwrap(), bytes, "{h}");
                assert_eq!(row["unique_bytes"].as_u64().unwrap(), unique, "{h}");
                assert_eq!(row["shared_bytes"].as_u64().unwrap(), bytes - unique, "{h}");
                assert_eq!(
                    row["shared_with"].as_u64().unwrap() as usize,
                    others.len(),
                    "{h}"
                );
                assert_eq!(row["referrer_bytes"].as_u64().unwrap(), referrer, "{h}");
                checked += 1;
            }
            // Largest first.
            let order: Vec<u64> = v[level]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["bytes"].as_u64().unwrap())
                .collect();
            assert!(order.windows(2).all(|w| w[0] >= w[1]), "{level} not sorted");
        }
        // The dedupe factor: each image's own size against the distinct bytes.
        let alone: u64 = model
            .values()
            .map(|(_, o, _)| o.iter().filter_map(|b| sizes.get(b)).sum::<u64>())
            .sum();
        assert_eq!(v["selected"]["image_bytes"].as_u64().unwrap(), alone);
        let dedupe = alone as f64 / v["selected"]["bytes"].as_u64().unwrap() as f64;
        assert!((v["selected"]["dedupe"].as_f64().unwrap() - dedupe).abs() < 1e-9);
    }
    // sample: 40 tags, 8 repositories, 6 namespaces; gc: 6, 3, 2; edge: 7, 5, 5.
    assert_eq!(checked, 54 + 11 + 17);
}

#[test]
fn du_names_repositories_whose_images_share_no_blob() {
    let mut checked = 0;
    for f in [sample(), gc_fixture()] {
        let v = du_json(&f.root, &[]);
        let mut images: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        let mut tag_count: BTreeMap<String, usize> = BTreeMap::new();
        for i in f.sidecar["images"].as_array().unwrap() {
            let repo = i["repo"].as_str().unwrap().to_string();
            let mut reach = BTreeSet::new();
            node_reach(i, &mut reach);
            images
                .entry(repo.clone())
                .or_default()
                .insert(i["digest"].as_str().unwrap().into(), reach);
            *tag_count.entry(repo).or_default() += 1;
        }
        let mut expect = BTreeMap::new();
        for (repo, imgs) in &images {
            let all: Vec<&String> = imgs.values().flatten().collect();
            let distinct: BTreeSet<&String> = all.iter().copied().collect();
            if imgs.len() >= 2 && distinct.len() == all.len() {
                expect.insert(repo.clone(), (imgs.len(), tag_count[repo]));
            }
            checked += 1;
        }
        let got: BTreeMap<String, (usize, usize)> = v["unrelated_repositories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                (
                    u["repository"].as_str().unwrap().to_string(),
                    (
                        u["images"].as_u64().unwrap() as usize,
                        u["tags"].as_u64().unwrap() as usize,
                    ),
                )
            })
            .collect();
        assert_eq!(got, expect);
    }
    assert!(checked >= 11);
    // The sample's many/tags: 30 tags naming 12 images that share nothing;
    // team/app's two versions share alpine's base layer.
    let v = du_json(&sample().root, &[]);
    let listed: Vec<&str> = v["unrelated_repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["repository"].as_str().unwrap())
        .collect();
    assert!(
        listed.contains(&"many/tags") && !listed.contains(&"team/app"),
        "{listed:?}"
    );
    let text = du(&sample().root, &[]).ok().stdout;
    assert!(
        text.contains("SHARE NO BLOB") && text.contains("many/tags  (12 images in 30 tags)"),
        "{text}"
    );
}

/// The data rows of the table `du` prints: their names.
fn table_names(stdout: &str) -> Vec<String> {
    let start = stdout
        .lines()
        .position(|l| l.trim_start().starts_with("BYTES"))
        .unwrap();
    stdout
        .lines()
        .skip(start + 1)
        .take_while(|l| !l.is_empty() && !l.starts_with("..."))
        .map(|l| {
            l.rsplit("  ")
                .next()
                .unwrap()
                .split(" (+")
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn du_by_and_top_choose_the_table_and_how_much_of_it() {
    let f = sample();
    let v = du_json(&f.root, &[]);
    let mut checked = 0;
    for (by, level) in [
        ("namespace", "namespaces"),
        ("repository", "repositories"),
        ("tag", "tags"),
    ] {
        let all = du(&f.root, &["--by", by, "--top", "0"]).ok().stdout;
        assert_eq!(table_names(&all), names(&v, level), "--by {by}");
        let top = du(&f.root, &["--by", by, "--top", "3"]).ok().stdout;
        assert_eq!(
            table_names(&top),
            names(&v, level)[..3].to_vec(),
            "--by {by} --top 3"
        );
        let more = names(&v, level).len() - 3;
        assert!(top.contains(&format!("... and {more} more")), "{top}");
        checked += 1;
    }
    assert_eq!(checked, 3);
    // The default is by repository.
    assert_eq!(
        table_names(&du(&f.root, &[]).ok().stdout),
        names(&v, "repositories")
    );

    // --top N: the N largest blob files, each with the tags that keep it.
    let sizes = blob_sizes(&f.root);
    let mut by_size: Vec<(&String, &u64)> = sizes.iter().collect();
    by_size.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let model = kept_by_tag(f);
    for n in [1usize, 3, 7] {
        let top = du_json(&f.root, &["--top", &n.to_string()]);
        let got = top["largest_blobs"].as_array().unwrap();
        assert_eq!(got.len(), n);
        for (b, (d, size)) in got.iter().zip(&by_size) {
            assert_eq!(b["digest"].as_str().unwrap(), d.as_str());
            assert_eq!(b["size"].as_u64().unwrap(), **size);
            let holders: Vec<&String> = model
                .iter()
                .filter(|(_, m)| m.2.contains(*d))
                .map(|(t, _)| t)
                .collect();
            assert_eq!(b["tags"].as_u64().unwrap() as usize, holders.len(), "{d}");
            let held: Vec<&str> = b["held_by"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h.as_str().unwrap())
                .collect();
            assert_eq!(
                held,
                holders
                    .iter()
                    .take(20)
                    .map(|h| h.as_str())
                    .collect::<Vec<_>>()
            );
        }
        // Every row is there whatever --top says.
        assert_eq!(names(&top, "tags").len(), 40);
    }
    // Of named images, the largest of their blobs.
    let one = du_json(&f.root, &["a/b/c/deep:1.0", "--top", "100"]);
    assert_eq!(
        one["largest_blobs"].as_array().unwrap().len() as u64,
        one["selected"]["blobs"].as_u64().unwrap()
    );
}

#[test]
fn du_reads_the_tree_only_and_refuses_a_page_inside_it() {
    let t = tempdir();
    let f = copy_fixture(sample(), t.path(), "sample");
    let before = Snapshot::take(&f.root);
    let page = t.path().join("usage.html");
    let r = regkit_readonly(
        &f.root,
        [
            "du",
            f.root.to_str().unwrap(),
            "--html",
            page.to_str().unwrap(),
        ],
    )
    .ok();
    assert!(r.stdout.contains("REPOSITORIES"), "{}", r.stdout);
    assert!(page.is_file());
    assert!(Snapshot::take(&f.root) == before);
    // An existing page: refused unless --force.
    let r = du(&f.root, &["--html", page.to_str().unwrap()]).fails(1);
    assert!(r.stderr.contains("exists"), "{}", r.stderr);
    fs::write(&page, "old").unwrap();
    du(
        &f.root,
        &["-q", "--html", page.to_str().unwrap(), "--force"],
    )
    .ok();
    assert!(fs::read_to_string(&page).unwrap().contains("regkit du"));
    // Inside the tree, even with --force.
    for (inside, relation) in [
        (f.root.join("usage.html"), "lies inside"),
        (f.root.join("docker/registry/v2/x.html"), "lies inside"),
        (f.root.clone(), "is"),
    ] {
        let r = du(&f.root, &["--html", inside.to_str().unwrap(), "--force"]).fails(1);
        let said = format!("the page {relation} the storage tree");
        assert!(r.stderr.contains(&said), "{}", r.stderr);
        assert!(!inside.exists() || inside.is_dir());
    }
    assert!(Snapshot::take(&f.root) == before);
    // An unknown image is an error naming the nearest.
    let r = du(&f.root, &["team/ap:v1"]).fails(1);
    assert!(r.stderr.contains("team/app:v1"), "{}", r.stderr);
}

#[test]
fn du_measures_the_rest_when_a_blob_is_missing() {
    let t = tempdir();
    let d = damaged("missing-blob", sample(), t.path());
    let broken: Vec<String> = d.sidecar["damages"][0]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    assert!(!broken.is_empty());
    let r = du(&d.root, &["--json"]).fails(1);
    let v = r.json();
    for b in &broken {
        assert!(r.stderr.contains(b.as_str()), "{}", r.stderr);
        assert!(!rows(&v, "tags").contains_key(b));
    }
    assert_eq!(rows(&v, "tags").len() + broken.len(), 40);
    assert_eq!(
        v["tree"]["unreadable_tags"].as_u64().unwrap() as usize,
        broken.len()
    );
    assert_eq!(v["errors"].as_array().unwrap().len(), broken.len());
}

#[test]
fn du_of_a_tree_in_s3_says_what_it_says_of_the_same_tree_on_disk() {
    use crate::s3::{moto, regkit_s3};
    let t = tempdir();
    let disk = t.path().join("disk");
    regkit([
        "-q",
        "select",
        sample().root.to_str().unwrap(),
        disk.to_str().unwrap(),
    ])
    .ok();
    let bucket = moto().bucket("du-tree");
    let root = format!("s3://{bucket}/reg");
    regkit_s3(&["-q", "select", disk.to_str().unwrap(), &root]).ok();
    let mut checked = 0;
    for extra in [
        vec![],
        vec!["team/app", "--top", "3"],
        vec!["--platform", "linux/arm64"],
    ] {
        let mut a = vec!["du", disk.to_str().unwrap(), "--json"];
        a.extend(&extra);
        let mut b = vec!["du", root.as_str(), "--json"];
        b.extend(&extra);
        let mut on_disk = regkit(&a).ok().json();
        let mut in_s3 = regkit_s3(&b).ok().json();
        assert!(in_s3["root"]
            .as_str()
            .unwrap()
            .starts_with(&format!("s3://{bucket}/reg")));
        on_disk["root"] = Value::Null;
        in_s3["root"] = Value::Null;
        assert_eq!(in_s3, on_disk, "{extra:?}");
        assert!(on_disk["selected"]["bytes"].as_u64().unwrap() > 0);
        checked += 1;
    }
    assert_eq!(checked, 3);
    // With a manifest deleted there, gc on the bucket would free what du
    // there says it frees.
    regkit_s3(&["-q", "delete", &root, "team/app:v1", "--manifest"]).ok();
    let du_s3 = regkit_s3(&["du", &root, "--json"]).ok().json();
    assert!(du_s3["gc"]["now"]["bytes"].as_u64().unwrap() > 0);
    for (key, extra) in [("now", None), ("delete_untagged", Some("-m"))] {
        let mut args = vec!["gc", root.as_str(), "--dry-run", "--json"];
        args.extend(extra);
        let gc = regkit_s3(&args).ok().json();
        assert_eq!(du_s3["gc"][key]["bytes"], gc["freed_bytes"], "{key}");
        assert_eq!(du_s3["gc"][key]["blobs"], gc["freed_blobs"], "{key}");
    }
    // The page is written on disk, from the bucket.
    let page = t.path().join("s3.html");
    regkit_s3(&["-q", "du", &root, "--html", page.to_str().unwrap()]).ok();
    assert!(fs::read_to_string(&page).unwrap().contains("team/app:v2"));
}

// ---------------------------------------------------------------------------
// The page, in a real browser

fn chromium(args: &[&str]) -> Run {
    let profile = tempdir();
    let mut all = vec![
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ];
    let dir = format!("--user-data-dir={}", profile.path().display());
    all.push(&dir);
    all.extend_from_slice(args);
    run_cmd("chromium", &all)
}

/// Sizes as the page prints them.
fn binary_size(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let (mut v, mut u) = (n as f64, 0);
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", units[u])
}

/// A page that opens du's page in a frame, as a user would use it (hover,
/// click, type), and writes what it saw into its own DOM as JSON.
const PROBE: &str = r#"<!doctype html><html><body><pre id="out">pending</pre>
<iframe id="f" src="du.html" style="width:1200px;height:900px" onload="probe()"></iframe>
<script>
function probe() {
  var out = {};
  try {
    var w = document.getElementById('f').contentWindow, d = w.document;
    function rows(id) {
      return Array.prototype.map.call(d.querySelectorAll('#' + id + ' tbody tr[data-name]'), function (tr) {
        return [tr.getAttribute('data-name'), +tr.getAttribute('data-bytes'), +tr.getAttribute('data-unique')];
      });
    }
    function boxes() {
      return Array.prototype.map.call(d.querySelectorAll('#treemap > .cell'), function (c) {
        return [c.getAttribute('data-kind'), c.getAttribute('data-name'), +c.getAttribute('data-bytes'), c.getBoundingClientRect().width * c.getBoundingClientRect().height];
      });
    }
    out.namespaces = rows('namespaces'); out.repositories = rows('repositories'); out.tags = rows('tags');
    out.figures = {};
    d.querySelectorAll('#summary .fig').forEach(function (f) { out.figures[f.getAttribute('data-key')] = f.getAttribute('data-value'); });
    out.top = boxes();
    out.nested = Array.prototype.map.call(d.querySelectorAll('#treemap .cell .cell'), function (c) { return c.getAttribute('data-name'); });
    var tag = d.querySelector('#treemap .cell[data-name="HOVER"]');
    tag.dispatchEvent(new w.MouseEvent('mouseover', { bubbles: true, clientX: 300, clientY: 300 }));
    out.tip = d.getElementById('tip').textContent;
    out.tipShown = !d.getElementById('tip').hidden;
    d.querySelector('#treemap > .cell[data-name="ZOOM"]').dispatchEvent(new w.MouseEvent('click', { bubbles: true }));
    out.zoomed = { crumbs: d.getElementById('crumbs').textContent, top: boxes() };
    d.querySelector('#crumbs a').dispatchEvent(new w.MouseEvent('click', { bubbles: true }));
    out.unzoomed = boxes().length;
    var s = d.getElementById('search');
    s.value = 'SEARCH';
    s.dispatchEvent(new w.Event('input', { bubbles: true }));
    out.searched = { tags: rows('tags').map(function (r) { return r[0]; }),
      hits: Array.prototype.map.call(d.querySelectorAll('#treemap .cell.hit'), function (c) { return c.getAttribute('data-name'); }) };
  } catch (e) { out.error = String(e && e.stack || e); }
  document.getElementById('out').textContent = JSON.stringify(out);
}
</script></body></html>"#;

/// Each row of a level: name, bytes, unique bytes.
fn name_bytes(v: &Value, level: &str) -> Vec<(String, u64, u64)> {
    v[level]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_u64().unwrap();
            (
                r["name"].as_str().unwrap().into(),
                n("bytes"),
                n("unique_bytes"),
            )
        })
        .collect()
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let be = |b: &[u8]| u32::from_be_bytes(b.try_into().unwrap());
    (be(&png[16..20]), be(&png[20..24]))
}

#[test]
fn du_page_in_a_real_browser_shows_the_treemap_and_tables_of_the_json() {
    let t = tempdir();
    let f = sample();
    let page = t.path().join("du.html");
    let v = du_json(&f.root, &["--html", page.to_str().unwrap()]);
    let html = fs::read_to_string(&page).unwrap();
    // Self-contained: no external script, style, font or image.
    for needle in ["<link", " src=", "http://", "https://", "@import", "url("] {
        assert!(!html.contains(needle), "the page holds {needle}");
    }

    let hover = "team/app:v2";
    let probe = PROBE
        .replace("HOVER", hover)
        .replace("ZOOM", "many")
        .replace("SEARCH", "alpine");
    fs::write(t.path().join("probe.html"), probe).unwrap();
    let url = format!("file://{}", t.path().join("probe.html").display());
    let r = chromium(&[
        "--allow-file-access-from-files",
        "--virtual-time-budget=10000",
        "--dump-dom",
        &url,
    ]);
    assert_eq!(r.code, 0, "chromium: {}", r.stderr);
    let start = r
        .stdout
        .find("<pre id=\"out\">")
        .expect("the probe's output")
        + 14;
    let end = start + r.stdout[start..].find("</pre>").unwrap();
    let seen: Value = serde_json::from_str(&unescape(&r.stdout[start..end]))
        .unwrap_or_else(|e| panic!("{e}: {}", &r.stdout[start..end]));
    assert!(seen["error"].is_null(), "{}", seen["error"]);

    // The tables: every row of the JSON, same names, same bytes.
    let mut checked = 0;
    for level in ["namespaces", "repositories", "tags"] {
        let want = name_bytes(&v, level);
        let got: Vec<(String, u64, u64)> = serde_json::from_value(seen[level].clone()).unwrap();
        assert_eq!(got, want, "{level}");
        checked += got.len();
    }
    assert_eq!(checked, 6 + 8 + 40);
    // The sums.
    let fig = |k: &str| seen["figures"][k].as_str().unwrap().parse::<u64>().unwrap();
    assert_eq!(fig("stored"), v["tree"]["bytes"].as_u64().unwrap());
    assert_eq!(fig("tagged"), v["tree"]["tagged_bytes"].as_u64().unwrap());
    assert_eq!(fig("selected"), v["selected"]["bytes"].as_u64().unwrap());
    assert_eq!(
        fig("image_bytes"),
        v["selected"]["image_bytes"].as_u64().unwrap()
    );
    assert_eq!(fig("gc_now"), v["gc"]["now"]["bytes"].as_u64().unwrap());
    assert_eq!(
        fig("gc_delete_untagged"),
        v["gc"]["delete_untagged"]["bytes"].as_u64().unwrap()
    );
    // The treemap: one box per namespace, areas in the order of bytes,
    // repositories and tags nested inside.
    let top: Vec<(String, String, u64, f64)> = serde_json::from_value(seen["top"].clone()).unwrap();
    let ns: Vec<(String, u64)> = name_bytes(&v, "namespaces")
        .into_iter()
        .map(|(n, b, _)| (n, b))
        .collect();
    assert_eq!(
        top.iter().map(|b| (b.1.clone(), b.2)).collect::<Vec<_>>(),
        ns
    );
    assert!(top.iter().all(|b| b.0 == "namespace"));
    assert!(
        top.windows(2).all(|w| w[0].3 >= w[1].3 * 0.99),
        "areas not in order of bytes: {top:?}"
    );
    let total_area: f64 = top.iter().map(|b| b.3).sum();
    let total_bytes: u64 = top.iter().map(|b| b.2).sum();
    for b in &top {
        let share = b.2 as f64 / total_bytes as f64;
        assert!(
            (b.3 / total_area - share).abs() < 0.01,
            "{} covers {} of the map for {share} of the bytes",
            b.1,
            b.3 / total_area
        );
    }
    let nested: BTreeSet<&str> = seen["nested"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(
        nested.contains("team/app")
            && nested.contains("team/app:v2")
            && nested.contains("many/tags"),
        "{nested:?}"
    );
    // Hovering names the image, its digest, its unique and shared bytes.
    let row = rows(&v, "tags")[hover];
    let tip = seen["tip"].as_str().unwrap();
    assert!(seen["tipShown"].as_bool().unwrap());
    for part in [
        hover.to_string(),
        row["digest"].as_str().unwrap().to_string(),
        format!(
            "unique {}",
            binary_size(row["unique_bytes"].as_u64().unwrap())
        ),
        format!(
            "shared {} with {} other tags",
            binary_size(row["shared_bytes"].as_u64().unwrap()),
            row["shared_with"]
        ),
    ] {
        assert!(tip.contains(&part), "tip {tip:?} lacks {part:?}");
    }
    // Clicking a namespace zooms into it: its repository fills the map,
    // and the first crumb zooms back out.
    let zoomed: Vec<(String, String, u64, f64)> =
        serde_json::from_value(seen["zoomed"]["top"].clone()).unwrap();
    assert_eq!(
        zoomed.iter().map(|b| b.1.as_str()).collect::<Vec<_>>(),
        ["many/tags"]
    );
    assert!(seen["zoomed"]["crumbs"].as_str().unwrap().contains("many"));
    assert_eq!(seen["unzoomed"].as_u64().unwrap() as usize, top.len());
    // Searching narrows the tables and marks the boxes.
    let found: Vec<&str> = seen["searched"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(found, ["library/alpine:3.19", "library/alpine:latest"]);
    let hits: BTreeSet<&str> = seen["searched"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(hits.contains("library/alpine"), "{hits:?}");

    // A screenshot, kept as an artifact of the test run.
    let artifacts = repo_dir().join("target/test-artifacts");
    fs::create_dir_all(&artifacts).unwrap();
    let shot: PathBuf = artifacts.join("du-treemap.png");
    let _ = fs::remove_file(&shot);
    let url = format!("file://{}", page.display());
    let arg = format!("--screenshot={}", shot.display());
    let r = chromium(&[
        "--window-size=1200,900",
        "--virtual-time-budget=10000",
        &arg,
        &url,
    ]);
    assert_eq!(r.code, 0, "chromium: {}", r.stderr);
    let png = fs::read(&shot).unwrap();
    assert_eq!(png_size(&png), (1200, 900));
    assert!(
        png.len() > 30_000,
        "a near-empty screenshot ({} bytes)",
        png.len()
    );
}
