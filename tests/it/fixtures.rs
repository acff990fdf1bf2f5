//! The committed example trees are what the fixture maker builds today.

use crate::common::*;

#[test]
fn committed_fixtures_equal_a_fresh_build_by_the_real_registry() {
    for (name, fresh) in [("sample", sample()), ("edge", edge())] {
        let committed = repo_dir().join("tests/fixtures").join(name);
        let r = run_cmd(
            "python3",
            &[
                repo_dir().join("scripts/fixture.py").to_str().unwrap(),
                "compare",
                "--ignore-empty-dirs",
                committed.to_str().unwrap(),
                fresh.root.to_str().unwrap(),
            ],
        );
        assert_eq!(
            r.code, 0,
            "tests/fixtures/{name} differs from a fresh build:\n{}{}",
            r.stdout, r.stderr
        );
    }
}

#[test]
fn the_fast_generator_writes_what_the_real_registry_writes() {
    // scripts/bench.sh uses `generate` for its 5000-tag tree; this proves the
    // generator's tree equals the real registry's for the same images.
    let t = tempdir();
    let script = repo_dir().join("scripts/fixture.py");
    let script = script.to_str().unwrap();
    let built = t.path().join("built");
    let generated = t.path().join("generated");
    run_cmd(
        "python3",
        &[
            script,
            "build",
            "bench",
            "--tags",
            "60",
            built.to_str().unwrap(),
        ],
    )
    .ok();
    run_cmd(
        "python3",
        &[
            script,
            "generate",
            "bench",
            "--tags",
            "60",
            generated.to_str().unwrap(),
        ],
    )
    .ok();
    let r = run_cmd(
        "python3",
        &[
            script,
            "compare",
            built.to_str().unwrap(),
            generated.to_str().unwrap(),
        ],
    );
    assert_eq!(
        r.code, 0,
        "generator differs from the registry:\n{}",
        r.stdout
    );
    assert!(r.stdout.starts_with("equal: "), "{}", r.stdout);
}
