//! The `--format json` output of `list`, `info` and `doctor` is what the
//! JSON Schemas in `docs/schema/` say, on success and on failure: the real
//! binary's stdout is validated with the `jsonschema` crate.
//!
//! To cover another command: put `docs/schema/<command>.json` next to the
//! others (a `oneOf` of the success shape and the `error` object), add it
//! to [`SCHEMAS`], and add a test per outcome that runs the command and
//! calls [`assert_matches`] with [`Expect::Report`] or [`Expect::Error`].

use std::{fs, sync::OnceLock};

use lxc_tmpl_tests::{Outcome, TestDir, paths};
use serde_json::Value;

/// Every schema in `docs/schema/`, by command.
const SCHEMAS: &[&str] = &["list", "info", "doctor"];

/// Which branch of a schema's `oneOf` the output must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The command's result; its exit status is checked by the caller.
    Report,
    /// `{"error": "..."}`, with a non-zero exit status and the same message
    /// on stderr's `error:` line.
    Error,
}

/// The text of `docs/schema/<command>.json`.
fn schema_text(command: &str) -> Value {
    let path = paths::workspace_root().join(format!("docs/schema/{command}.json"));
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The validator of `command`'s schema, built once per command.
fn validator(command: &str) -> &'static jsonschema::Validator {
    static VALIDATORS: OnceLock<Vec<(&'static str, jsonschema::Validator)>> = OnceLock::new();
    let all = VALIDATORS.get_or_init(|| {
        SCHEMAS
            .iter()
            .map(|name| {
                let schema = schema_text(name);
                let validator = jsonschema::validator_for(&schema)
                    .unwrap_or_else(|e| panic!("docs/schema/{name}.json is not a usable schema: {e}"));
                (*name, validator)
            })
            .collect()
    });
    &all.iter().find(|(name, _)| *name == command).unwrap_or_else(|| panic!("no schema for {command} in SCHEMAS")).1
}

/// The problems `value` has against `command`'s schema, one per line.
fn violations(command: &str, value: &Value) -> Vec<String> {
    validator(command).iter_errors(value).map(|e| format!("{} at {}", e, e.instance_path())).collect()
}

/// Asserts that `outcome`'s stdout is exactly one JSON value valid against
/// `command`'s schema, in the branch `expect` names.
#[track_caller]
fn assert_matches(command: &str, outcome: &Outcome, expect: Expect) -> Value {
    let value: Value = serde_json::from_str(&outcome.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}):\n{outcome}"));
    let problems = violations(command, &value);
    assert!(
        problems.is_empty(),
        "{command}: output does not match docs/schema/{command}.json:\n{}\n{outcome}",
        problems.join("\n")
    );
    let is_error = value.get("error").is_some();
    match expect {
        Expect::Report => assert!(!is_error, "expected {command}'s result, got an error object:\n{outcome}"),
        Expect::Error => {
            assert!(is_error, "expected an error object:\n{outcome}");
            outcome.assert_failed();
            let message = value["error"].as_str().expect("a string, as the schema says");
            let line = lxc_tmpl_tests::error_line(&outcome.stderr);
            assert_eq!(line, format!("error: {message}"), "stdout's error and stderr's line differ:\n{outcome}");
        }
    }
    value
}

#[test]
fn schemas_are_valid_json_schemas() {
    for name in SCHEMAS {
        let schema = schema_text(name);
        if let Err(e) = jsonschema::meta::validate(&schema) {
            panic!("docs/schema/{name}.json violates its meta-schema: {e}");
        }
        validator(name);
    }
}

#[test]
fn schemas_reject_what_is_not_the_output() {
    // Without this a schema that accepts anything would pass every test below.
    let not_a_check = serde_json::json!({ "checks": [{ "name": "x", "status": "maybe", "detail": "d", "fix": null }],
                                          "summary": { "ok": 0, "warn": 0, "fail": 0 } });
    assert!(!violations("doctor", &not_a_check).is_empty(), "doctor.json accepts the status 'maybe'");
    let fail_without_fix = serde_json::json!({ "checks": [{ "name": "x", "status": "fail", "detail": "d", "fix": null }],
                                                "summary": { "ok": 0, "warn": 0, "fail": 1 } });
    assert!(!violations("doctor", &fail_without_fix).is_empty(), "doctor.json accepts a failure without a fix");
    assert!(!violations("list", &serde_json::json!({ "error": "" })).is_empty(), "an empty error message");
    assert!(!violations("info", &serde_json::json!([])).is_empty(), "info.json accepts a list");
}

#[test]
fn list_json_matches_its_schema() {
    let dir = TestDir::new("schema-list");
    let outcome = dir.command().args(["list", "--format", "json"]).run();
    outcome.assert_success();
    let list = assert_matches("list", &outcome, Expect::Report);
    assert!(list.as_array().is_some_and(|l| l.iter().any(|p| p["name"] == "busybox")), "{outcome}");
}

#[test]
fn list_json_usage_error_matches_its_schema() {
    let dir = TestDir::new("schema-list-error");
    let outcome = dir.command().args(["list", "--format", "json", "--no-such-option"]).run();
    assert_eq!(outcome.code(), Some(2), "a usage error:\n{outcome}");
    assert_matches("list", &outcome, Expect::Error);
}

#[test]
fn info_json_matches_its_schema() {
    let dir = TestDir::new("schema-info");
    for distro in ["busybox", "debian", "ubuntu", "sshd"] {
        let outcome = dir.command().args(["info", distro, "--format", "json"]).run();
        outcome.assert_success();
        let info = assert_matches("info", &outcome, Expect::Report);
        assert_eq!(info["name"], distro);
    }
}

#[test]
fn info_json_unknown_distro_matches_its_schema() {
    let dir = TestDir::new("schema-info-error");
    let outcome = dir.command().args(["info", "nosuchdistro", "--format", "json"]).run();
    assert_eq!(outcome.code(), Some(1), "{outcome}");
    let error = assert_matches("info", &outcome, Expect::Error);
    assert!(error["error"].as_str().unwrap().contains("nosuchdistro"), "{outcome}");
    let usage = dir.command().args(["info", "--format=json"]).run();
    assert_eq!(usage.code(), Some(2), "no distro given:\n{usage}");
    assert_matches("info", &usage, Expect::Error);
}

#[test]
fn doctor_json_matches_its_schema() {
    let dir = TestDir::new("schema-doctor");
    let outcome = dir
        .command()
        .args(["doctor", "--format", "json", "--cache-dir"])
        .arg(dir.cache())
        .arg("-P")
        .arg(dir.lxcpath())
        .run();
    let report = assert_matches("doctor", &outcome, Expect::Report);
    let failed = report["summary"]["fail"].as_u64().unwrap();
    assert_eq!(outcome.code(), Some(if failed > 0 { 1 } else { 0 }), "exit status and failures disagree:\n{outcome}");
}

#[test]
fn doctor_json_usage_error_matches_its_schema() {
    let dir = TestDir::new("schema-doctor-error");
    let outcome = dir.command().args(["doctor", "--format", "json", "-P"]).run();
    assert_eq!(outcome.code(), Some(2), "-P without a value:\n{outcome}");
    assert_matches("doctor", &outcome, Expect::Error);
}
