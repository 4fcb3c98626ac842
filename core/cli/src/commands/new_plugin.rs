//! `lxc-tmpl new-plugin NAME`: writes a plugin crate that builds with the
//! plugin API crate as its only dependency, from `templates/new-plugin/`.
//! The skeleton is a complete, working distro (a rootfs tarball unpacked
//! into the container) to grow into a real one.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use lxc_tmpl_host::render::render_template;
use serde_json::json;

const CARGO_TOML: &str = include_str!("../../../../templates/new-plugin/Cargo.toml.j2");
const LIB_RS: &str = include_str!("../../../../templates/new-plugin/lib.rs.j2");
/// The lint rules of lxc-tmpl's own plugins (no fork, no host-path writes),
/// so that `cargo clippy` holds a new plugin to them too.
const CLIPPY_TOML: &str = include_str!("../../../../plugins/clippy.toml");

/// Where this binary's API crate sources were when it was built; used as a
/// path dependency when they are still there (a source checkout).
const BUILT_API_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../plugins/api");

/// Writes `<dir>/<name>/{Cargo.toml,clippy.toml,src/lib.rs}` and returns the crate directory.
pub fn new_plugin(name: &str, dir: &Path, api_path: Option<&Path>) -> Result<PathBuf> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        bail!("plugin name '{name}' must be lowercase letters, digits and '-' (it becomes the distro name)");
    }
    let crate_dir = dir.join(name);
    if crate_dir.exists() {
        bail!("{} already exists: choose another name or --dir", crate_dir.display());
    }
    let api_dependency = match api_path.map(Path::to_owned).or_else(built_api_path) {
        Some(path) => {
            let path = path.canonicalize().with_context(|| format!("API crate not found at {}", path.display()))?;
            format!("{{ path = {:?} }}", path.display().to_string())
        }
        None => format!("\"{}\"", lxc_tmpl_plugin_api::API_VERSION),
    };
    let context = json!({
        "name": name,
        "crate_name": name.replace('-', "_"),
        "api_dependency": api_dependency,
    })
    .to_string();
    let render = |file: &str, source: &str| render_template(file, source, &context).map_err(anyhow::Error::msg);
    let cargo_toml = render("Cargo.toml", CARGO_TOML)?;
    let lib_rs = render("lib.rs", LIB_RS)?;
    std::fs::create_dir_all(crate_dir.join("src")).with_context(|| format!("cannot create {}", crate_dir.display()))?;
    std::fs::write(crate_dir.join("Cargo.toml"), cargo_toml)?;
    std::fs::write(crate_dir.join("src/lib.rs"), lib_rs)?;
    std::fs::write(crate_dir.join("clippy.toml"), CLIPPY_TOML)?;
    Ok(crate_dir)
}

fn built_api_path() -> Option<PathBuf> {
    let path = PathBuf::from(BUILT_API_PATH);
    path.join("Cargo.toml").is_file().then_some(path)
}
