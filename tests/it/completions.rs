//! `lxc-tmpl completions SHELL`: the scripts load in their shell and complete
//! subcommands, create's options, each distro's options and the distro names.

use std::process::Command;

use lxc_tmpl_tests::{TestDir, paths, require_tools};

/// Sources the bash script the way a user's `.bashrc` would, prints what
/// `complete -p` says about lxc-tmpl, then asks the completion function for
/// each line given after the binary (one line per word list, the last word
/// being completed) and prints its answers as `<line>: <reply> <reply> ...`.
const BASH_DRIVER: &str = r#"
set -e
source <("$1" completions bash)
spec=$(complete -p lxc-tmpl)
echo "$spec"
fn=${spec##*-F }; fn=${fn%% *}
shift
for line in "$@"; do
    read -ra COMP_WORDS <<<"$line"
    case "$line" in *' ') COMP_WORDS+=('') ;; esac
    COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); COMP_LINE=$line; COMP_POINT=${#line}; COMPREPLY=()
    "$fn" lxc-tmpl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    echo "$line: ${COMPREPLY[*]}"
done
"#;

/// Runs [`BASH_DRIVER`] on the built binary; returns its stdout lines.
fn bash_completions(dir: &TestDir, lines: &[&str]) -> Vec<String> {
    let mut bash = Command::new("bash");
    bash.args(["-c", BASH_DRIVER, "driver"]).arg(paths::binary()).args(lines);
    // The plugins are found next to the binary, as a fresh build finds them.
    bash.env("LXC_TMPL_PLUGIN_PATH", dir.plugins()).env_remove("LXC_CACHE_PATH");
    let out = bash.output().expect("cannot run bash");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the bash driver failed ({}):\n{stdout}\n{stderr}", out.status);
    assert!(stderr.is_empty(), "sourcing the script or completing printed on stderr:\n{stderr}");
    stdout.lines().map(str::to_owned).collect()
}

#[test]
fn bash_script_loads_and_completes_create_and_distro_options() {
    require_tools(&["bash"]);
    let dir = TestDir::new("completions-bash");
    let lines = bash_completions(
        &dir,
        &[
            "lxc-tmpl cre",
            "lxc-tmpl create --distro ",
            "lxc-tmpl create --distro busybox --busybox-p",
            "lxc-tmpl create --lxc",
        ],
    );
    let spec = &lines[0];
    assert!(
        spec.starts_with("complete ") && spec.contains(" -F ") && spec.ends_with(" lxc-tmpl"),
        "complete -p lxc-tmpl does not show a completion function:\n{}",
        lines.join("\n")
    );
    let answers = |line: &str| -> Vec<String> {
        let prefix = format!("{line}: ");
        let found = lines.iter().find_map(|l| l.strip_prefix(&prefix));
        let found = found.unwrap_or_else(|| panic!("no answer for {line:?}:\n{}", lines.join("\n")));
        found.split_whitespace().map(str::to_owned).collect()
    };
    assert_eq!(answers("lxc-tmpl cre"), ["create"], "a subcommand completes");
    let distros = answers("lxc-tmpl create --distro ");
    assert!(distros.contains(&"busybox".to_owned()), "--distro does not offer busybox: {distros:?}");
    assert_eq!(
        answers("lxc-tmpl create --distro busybox --busybox-p"),
        ["--busybox-path"],
        "a distro option completes"
    );
    assert_eq!(answers("lxc-tmpl create --lxc"), ["--lxcpath", "--lxc-version"], "create's own options complete");
}

#[test]
fn zsh_and_fish_scripts_know_create_and_the_distro_options() {
    let dir = TestDir::new("completions-other");
    for shell in ["zsh", "fish"] {
        let script = dir.command().args(["completions", shell]).stdout();
        assert!(!script.trim().is_empty(), "the {shell} script is empty");
        assert!(script.contains("create"), "the {shell} script does not mention create:\n{script}");
        assert!(script.contains("busybox-path"), "the {shell} script does not offer --busybox-path:\n{script}");
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let dir = TestDir::new("completions-bad");
    let outcome = dir.command().args(["completions", "tcsh"]).assert_exit(2);
    let error = lxc_tmpl_tests::error_line(&outcome.stderr);
    lxc_tmpl_tests::assert_mentions(&error, &["tcsh", "bash", "zsh", "fish"]);
    assert!(outcome.stdout.is_empty(), "a script was printed anyway:\n{}", outcome.stdout);
}
