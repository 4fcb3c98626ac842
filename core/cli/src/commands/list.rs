//! `lxc-tmpl list` and `lxc-tmpl info`: what plugins are there and what they take.

use std::fmt::Write;

use anyhow::{Result, bail};
use lxc_tmpl_host::plugin::{LoadedPlugin, PluginSet};
use serde_json::{Value, json};

use crate::{
    cli::{Format, InfoArgs, ListArgs},
    stdout::print,
};

/// `lxc-tmpl list`.
pub fn list(args: &ListArgs, plugins: &PluginSet) -> Result<()> {
    let mut out = String::new();
    match args.format {
        Format::Json => {
            let list: Vec<Value> = plugins.plugins.iter().map(summary_json).collect();
            writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
        }
        Format::Text => {
            if plugins.plugins.is_empty() {
                eprintln!("no distro plugins found (set LXC_TMPL_PLUGIN_PATH or install plugins)");
            }
            let name_width = plugins.plugins.iter().map(|p| p.manifest.name.len()).max().unwrap_or(4).max(4);
            writeln!(out, "{:name_width$}  {:8}  {:5}  SUMMARY", "NAME", "VERSION", "API")?;
            for p in &plugins.plugins {
                writeln!(
                    out,
                    "{:name_width$}  {:8}  {:5}  {} ({})",
                    p.manifest.name,
                    p.manifest.version,
                    format!("{}.{}", p.api_version.major, p.api_version.minor),
                    p.manifest.summary,
                    p.file.display()
                )?;
            }
        }
    }
    print(&out)
}

/// `lxc-tmpl info D`.
pub fn info(args: &InfoArgs, plugins: &PluginSet) -> Result<()> {
    let Some(plugin) = plugins.find(&args.distro) else {
        bail!(crate::commands::create::unknown_distro(&args.distro, plugins));
    };
    let details = details_json(plugin);
    let text = match args.format {
        Format::Json => format!("{}\n", serde_json::to_string_pretty(&details)?),
        Format::Text => details_text(plugin)?,
    };
    print(&text)
}

fn summary_json(p: &LoadedPlugin) -> Value {
    json!({
        "name": p.manifest.name.as_str(),
        "version": p.manifest.version.as_str(),
        "api_version": p.api_version.to_string(),
        "file": p.file.display().to_string(),
        "summary": p.manifest.summary.as_str(),
    })
}

fn details_json(p: &LoadedPlugin) -> Value {
    let m = &p.manifest;
    let mut v = summary_json(p);
    v["arches"] = json!(m.arches.iter().map(|a| a.as_str()).collect::<Vec<_>>());
    v["default_release"] = json!(m.default_release.as_str());
    v["releases"] = m
        .releases
        .iter()
        .map(|r| {
            json!({
                "codename": r.codename.as_str(),
                "version": r.version.as_str(),
                "aliases": r.aliases.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
                "lts": r.lts,
                "eol": r.eol.as_str(),
            })
        })
        .collect();
    v["options"] = m
        .options
        .iter()
        .map(|o| {
            json!({
                "long": o.long.as_str(),
                "short": o.short.map(|c| c.to_string()),
                "value_name": o.value_name.as_deref(),
                "help": o.help.as_str(),
                "default": o.default.as_deref(),
                "env": o.env.as_deref(),
                "repeatable": o.repeatable,
                "secret": o.secret,
            })
        })
        .collect();
    v
}

/// `info`'s text: the plugin, its architectures, releases and options.
fn details_text(p: &LoadedPlugin) -> Result<String, std::fmt::Error> {
    let m = &p.manifest;
    let mut out = String::new();
    writeln!(out, "{} {} (plugin API {}): {}", m.name, m.version, p.api_version, m.summary)?;
    writeln!(out, "file: {}", p.file.display())?;
    if !m.arches.is_empty() {
        writeln!(out, "architectures: {}", m.arches.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(" "))?;
    }
    if !m.releases.is_empty() {
        writeln!(out, "releases (default: {}):", m.default_release)?;
        for r in m.releases.iter() {
            let lts = if r.lts { " LTS" } else { "" };
            let eol = if r.eol.is_empty() { String::new() } else { format!(", EOL {}", r.eol) };
            writeln!(out, "  {:12} {}{lts}{eol}", r.codename, r.version)?;
        }
    }
    writeln!(out, "options:")?;
    for o in m.options.iter() {
        let short = o.short.map(|c| format!("-{c}, ")).unwrap_or_default();
        let value = o.value_name.as_ref().map(|v| format!(" {v}")).unwrap_or_default();
        let default = o.default.as_ref().map(|d| format!(" [default: {d}]")).unwrap_or_default();
        let env = o.env.as_ref().map(|e| format!(" [env: {e}]")).unwrap_or_default();
        writeln!(out, "  {short}--{}{value}\n      {}{default}{env}", o.long, o.help)?;
    }
    Ok(out)
}
