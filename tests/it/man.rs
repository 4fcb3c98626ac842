//! `lxc-tmpl man --output DIR`: a page per command, each rendered by `man`
//! and `groff` without a warning, create's with a section per distro.

use std::{collections::BTreeSet, fs, path::Path, process::Command};

use lxc_tmpl_tests::{TestDir, require_tools};

/// The commands `lxc-tmpl --help` lists, as their pages' file names
/// (`create` -> `lxc-tmpl-create.1`), plus `lxc-tmpl.1` and the pages of
/// `cache`'s and `image`'s own subcommands.
fn expected_pages(dir: &TestDir) -> BTreeSet<String> {
    let mut pages = BTreeSet::from(["lxc-tmpl.1".to_owned()]);
    for (parent, prefix) in [(vec![], "lxc-tmpl"), (vec!["cache"], "lxc-tmpl-cache"), (vec!["image"], "lxc-tmpl-image")]
    {
        let help = dir.command().args(parent).arg("--help").stdout();
        let commands = help.lines().skip_while(|l| !l.starts_with("Commands:")).skip(1);
        for line in commands.take_while(|l| l.starts_with("  ")).filter(|l| !l.starts_with("   ")) {
            let name = line.split_whitespace().next().expect("a command line has a name");
            if name != "help" {
                pages.insert(format!("{prefix}-{name}.1"));
            }
        }
    }
    pages
}

/// `MANWIDTH=80 man -l FILE`: the rendered text, without the overstrikes
/// that make bold and underline (`X\bX`); asserts that nothing was said on stderr.
fn man_render(page: &Path) -> String {
    let out = Command::new("man").arg("-l").arg(page).env("MANWIDTH", "80").output().expect("cannot run man");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.is_empty(), "man -l {} failed or warned:\n{stderr}", page.display());
    let mut text = String::new();
    for c in String::from_utf8_lossy(&out.stdout).chars() {
        if c == '\u{8}' {
            text.pop();
        } else {
            text.push(c);
        }
    }
    text
}

/// `groff -man -Tutf8 -ww -z FILE`: every groff warning enabled; asserts there is none.
fn groff_check(page: &Path) {
    let out = Command::new("groff").args(["-man", "-Tutf8", "-ww", "-z"]).arg(page).output().expect("cannot run groff");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.is_empty(), "groff warns about {}:\n{stderr}", page.display());
}

#[test]
fn every_command_has_a_page_that_renders_without_warnings() {
    require_tools(&["man", "groff"]);
    let dir = TestDir::new("man-pages");
    let out = dir.path().join("man/man1");
    let printed = dir.command().args(["man", "--output"]).arg(&out).stdout();
    let written: BTreeSet<String> = fs::read_dir(&out)
        .expect("the output dir exists")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(written, expected_pages(&dir), "the pages written are not one per command");
    assert_eq!(printed.lines().count(), written.len(), "man does not print each page it wrote:\n{printed}");
    for page in &written {
        let path = out.join(page);
        groff_check(&path);
        let text = man_render(&path);
        let title = page.trim_end_matches(".1");
        assert!(text.contains("NAME") && text.contains(title), "{page} has no NAME naming {title}:\n{text}");
    }
}

#[test]
fn create_page_has_a_section_per_distro_with_its_options() {
    require_tools(&["man", "groff"]);
    let dir = TestDir::new("man-create");
    let out = dir.path().join("man");
    dir.command().args(["man", "-o"]).arg(&out).stdout();
    let text = man_render(&out.join("lxc-tmpl-create.1"));
    // The busybox plugin is found next to the binary; the others too.
    let listed = dir.command().arg("list").stdout();
    assert!(listed.lines().any(|l| l.starts_with("busybox ")), "the busybox plugin is not on the path:\n{listed}");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let section = |title: &str| -> Vec<&str> {
        let start = lines.iter().position(|l| *l == title).unwrap_or_else(|| panic!("no {title} section:\n{text}"));
        lines[start + 1..]
            .iter()
            .take_while(|l| l.is_empty() || !l.chars().all(|c| c.is_ascii_uppercase() || c == ' '))
            .copied()
            .collect()
    };
    assert!(section("DISTROS").iter().any(|l| l.starts_with("busybox")), "DISTROS does not list busybox:\n{text}");
    assert!(
        section("BUSYBOX OPTIONS").iter().any(|l| l.starts_with("--busybox-path")),
        "BUSYBOX OPTIONS does not describe --busybox-path:\n{text}"
    );
    assert!(section("OPTIONS").iter().any(|l| l.starts_with("--distro")), "create's own options are missing:\n{text}");
}

#[test]
fn an_output_that_is_a_file_is_an_error() {
    let dir = TestDir::new("man-bad");
    let file = dir.write("taken", "not a directory");
    let stderr = dir.command().args(["man", "--output"]).arg(&file).assert_fail();
    lxc_tmpl_tests::assert_mentions(&lxc_tmpl_tests::error_line(&stderr), &[&file.display().to_string()]);
}
