//! The kit passes conforming plugins and fails broken ones.

use std::path::{Path, PathBuf};

use herald_plugin_check::{Options, check};

fn plugin(name: &str) -> PathBuf {
    let dir = std::env::var_os("HERALD_TEST_PLUGIN_DIR").map(PathBuf::from).expect("HERALD_TEST_PLUGIN_DIR (run `make test`)");
    dir.join(format!("{name}.wasm"))
}

fn fixtures(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins").join(name).join("conformance")
}

#[test]
fn first_party_plugins_pass_with_their_fixtures() {
    for name in ["webhook", "email"] {
        let report = check(&plugin(name), &Options { fixtures: Some(fixtures(name)), ..Default::default() });
        assert!(report.ok(), "{}", report.render());
        assert!(report.checks.iter().any(|c| c.name.starts_with("recorded answer")), "fixtures were used");
    }
}

#[test]
fn a_1_0_plugin_passes_too() {
    let report = check(&plugin("legacy"), &Options { account: Some(r#"{"url":"http://127.0.0.1:9/x"}"#.into()), ..Default::default() });
    assert!(report.ok(), "{}", report.render());
}

#[test]
fn misbehaving_plugins_fail_with_the_reason() {
    for (mode, reason) in [("loop", "deadline"), ("badhost", "evil.test"), ("duplicate", "two requests"), ("missing", "no request for")] {
        let report = check(&plugin("hostile"), &Options { account: Some(format!(r#"{{"mode":"{mode}"}}"#)), ..Default::default() });
        assert!(!report.ok(), "{mode} passed:\n{}", report.render());
        assert!(report.checks.iter().any(|c| !c.passed && c.detail.contains(reason)), "{mode}:\n{}", report.render());
        assert!(report.render().ends_with(&format!("{} passed, {} failed\n", report.passed(), report.failed())));
    }
}

#[test]
fn a_wrong_recorded_expectation_fails() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("responses")).unwrap();
    std::fs::copy(fixtures("webhook").join("account.json"), dir.path().join("account.json")).unwrap();
    std::fs::write(
        dir.path().join("responses/wrong.json"),
        r#"{"response": {"http": {"status": 500, "headers": [], "body": ""}}, "expect": "sent"}"#,
    )
    .unwrap();
    let report = check(&plugin("webhook"), &Options { fixtures: Some(dir.path().to_path_buf()), ..Default::default() });
    assert!(!report.ok());
    assert!(report.checks.iter().any(|c| c.name == "recorded answer wrong.json" && !c.passed), "{}", report.render());
}

#[test]
fn not_a_component_fails_to_load() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.wasm");
    std::fs::write(&f, b"nope").unwrap();
    let report = check(&f, &Options::default());
    assert!(!report.ok());
    assert!(report.checks[0].detail.contains("not a valid component"), "{}", report.render());
}
