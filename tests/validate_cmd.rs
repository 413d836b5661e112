//! `mailshift validate`: every rule's exact rendered output, one fixture per rule family.

use crate::common::{mailshift, repo_root};

#[test]
fn fixtures_render_exactly() {
    let dir = repo_root().join("tests/fixtures/invalid");
    insta::glob!("fixtures/invalid/*.*", |path| {
        let name = path.file_name().unwrap().to_str().unwrap();
        let out = mailshift(&dir, &["validate", name]);
        // Only the one fixture that opts in is valid; every other must fail.
        let expect_valid = name.starts_with("inline-allowed");
        assert_eq!(
            out.code,
            if expect_valid { 0 } else { 1 },
            "{name}:\n{}",
            out.transcript()
        );
        insta::assert_snapshot!(out.transcript());
    });
}

#[test]
fn minimal_plan_is_valid_in_both_formats() {
    let dir = repo_root().join("examples");
    for f in ["imap-to-imap.yaml", "imap-to-imap.toml"] {
        let out = mailshift(&dir, &["validate", f]);
        assert_eq!(out.code, 0, "{}", out.transcript());
        assert_eq!(
            out.stdout,
            format!("{f} is valid: 1 account, 2 platforms, 0 domains\n")
        );
        assert_eq!(out.stderr, "");
    }
}

#[test]
fn unreadable_or_unknown_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = mailshift(dir.path(), &["validate", "missing.yaml"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with("error: cannot read plan missing.yaml: "),
        "{}",
        out.stderr
    );
    std::fs::write(dir.path().join("plan.json"), "{}").unwrap();
    let out = mailshift(dir.path(), &["validate", "plan.json"]);
    assert_eq!(
        out.stderr,
        "error: cannot tell the format of plan.json: name plan files `.yaml`, `.yml` or `.toml`\n"
    );
    std::fs::write(dir.path().join("latin1.yaml"), b"version: 1 # \xe9\n").unwrap();
    let out = mailshift(dir.path(), &["validate", "latin1.yaml"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("is not valid UTF-8"), "{}", out.stderr);
}

#[test]
fn a_bom_is_accepted_and_positions_stay_right() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo_root().join("examples/imap-to-imap.yaml")).unwrap();
    std::fs::write(dir.path().join("bom.yaml"), format!("\u{feff}{text}")).unwrap();
    assert_eq!(mailshift(dir.path(), &["validate", "bom.yaml"]).code, 0);
    std::fs::write(
        dir.path().join("bom-bad.yaml"),
        "\u{feff}version: 1\nplatforms: {}\nbogus: 1\n",
    )
    .unwrap();
    let out = mailshift(dir.path(), &["validate", "bom-bad.yaml"]);
    assert!(
        out.stderr.contains("--> bom-bad.yaml:3:1"),
        "{}",
        out.stderr
    );
}
