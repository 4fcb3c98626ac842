//! `create --format json` prints exactly one JSON object on stdout, valid
//! against `docs/schema/create.json`, whether the create succeeds or fails.

use std::fs;

use lxc_tmpl_tests::{Fixture, Outcome, TestDir, paths::workspace_root, require_root};
use serde_json::Value;

/// The schema's validator.
fn validator() -> jsonschema::Validator {
    let path = workspace_root().join("docs/schema/create.json");
    let schema: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{} is no valid schema: {e}", path.display()))
}

/// The one JSON value stdout holds, checked against the schema.
fn result_of(outcome: &Outcome) -> Value {
    // from_str refuses anything after the first value: one object, nothing else.
    let value: Value = serde_json::from_str(&outcome.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}):\n{outcome}"));
    let errors: Vec<String> =
        validator().iter_errors(&value).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "the result does not match docs/schema/create.json:\n{}\n{value:#}", errors.join("\n"));
    value
}

#[test]
fn success_is_one_object_with_paths_steps_cache_and_log() {
    require_root();
    let dir = TestDir::new("create-json");
    dir.add_plugin(Fixture::Faulty);
    let _cts = [dir.container("j1"), dir.container("j2"), dir.container("j3")];

    let outcome = dir.create("busybox", "j1").args(["--format", "json"]).run();
    outcome.assert_success();
    let result = result_of(&outcome);
    assert_eq!(result["ok"], true);
    assert_eq!(result["name"], "j1");
    assert_eq!(result["distro"], "busybox");
    assert_eq!(result["container_path"], dir.lxcpath().join("j1").display().to_string());
    assert_eq!(result["config_path"], dir.lxcpath().join("j1/config").display().to_string());
    assert_eq!(result["backing"], "dir");
    assert_eq!(result["cache"], Value::Null, "busybox keeps no cache");
    assert!(result["message"].as_str().is_some_and(|m| m.contains("lxc-attach")), "{result:#}");
    let steps: Vec<&str> = result["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    for step in ["validate", "download", "configure", "check init"] {
        assert!(steps.contains(&step), "step {step} is missing: {steps:?}");
    }
    let log = result["log"].as_str().unwrap();
    assert!(fs::read_to_string(log).unwrap().contains("==> configure"), "{log} is not the create's log");

    // Through a cache entry: built by the first create, reused by the second.
    for (name, built) in [("j2", true), ("j3", false)] {
        let outcome = dir.create("faulty", name).args(["--cache-key", "json-test", "--format", "json"]).run();
        outcome.assert_success();
        let result = result_of(&outcome);
        let cache = &result["cache"];
        assert_eq!(cache["built"], built, "{result:#}");
        assert_eq!(cache["key"], "json-test", "{result:#}");
        assert!(cache["path"].as_str().unwrap().starts_with(&dir.cache().display().to_string()), "{result:#}");
        assert!(result["steps"].as_array().unwrap().iter().any(|s| s["name"] == "copy rootfs"), "{result:#}");
    }
}

#[test]
fn failure_is_one_object_with_the_error_and_the_log() {
    require_root();
    let dir = TestDir::new("create-json-fail");
    dir.add_plugin(Fixture::Faulty);
    let _ct = dir.container("jf");
    let outcome =
        dir.create("faulty", "jf").args(["--fail-in", "configure", "--format", "json"]).assert_exit(1).clone();
    let result = result_of(&outcome);
    assert_eq!(result["ok"], false);
    assert_eq!(result["name"], "jf");
    let error = result["error"].as_str().unwrap();
    assert!(error.contains("deliberate failure in configure"), "{result:#}");
    let log = result["log"].as_str().unwrap();
    assert!(fs::read_to_string(log).unwrap().contains(&format!("error: {error}")), "the log does not end in the error");
    let steps = result["steps"].as_array().unwrap();
    assert_eq!(steps.last().unwrap()["name"], "configure", "the failing step is not last: {result:#}");
    // The error line on stderr is there too, and names the same log.
    assert!(outcome.stderr.contains(&format!("(log: {log})")), "{outcome}");
}

#[test]
fn refusal_before_the_log_is_one_object_too() {
    require_root();
    let dir = TestDir::new("create-json-refused");
    let elsewhere = dir.lxcpath().join("other");
    let outcome =
        dir.create("busybox", "jr").arg("--path").arg(&elsewhere).args(["--format", "json"]).assert_exit(2).clone();
    let result = result_of(&outcome);
    assert_eq!(result["ok"], false);
    assert_eq!(result["log"], Value::Null, "a usage error keeps no log: {result:#}");
    assert!(result["error"].as_str().unwrap().contains("--path"), "{result:#}");
}

/// A dry run promises no JSON shape: asking for one is a usage error, answered as one object.
#[test]
fn dry_run_with_json_is_a_usage_error() {
    require_root();
    let dir = TestDir::new("create-json-dry");
    let outcome = dir.create("busybox", "jd").args(["--dry-run", "--format", "json"]).assert_exit(2).clone();
    let result = result_of(&outcome);
    assert_eq!(result["ok"], false);
    assert!(result["error"].as_str().unwrap().contains("--dry-run prints text only"), "{result:#}");
    assert!(!dir.lxcpath().join("jd").exists(), "a refused dry run made the container dir");
}
