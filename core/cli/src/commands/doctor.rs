//! `lxc-tmpl doctor`: prints the host library's checks
//! ([`lxc_tmpl_host::doctor`]) as lines or as one JSON object
//! (`docs/schema/doctor.json`), and exits 1 when one failed.

use std::process::ExitCode;

use anyhow::Result;
use lxc_tmpl_host::{
    doctor::{self, Check, Probe, Status, Subjects},
    facts,
    plugin::{PluginDir, PluginSet},
};
use serde_json::{Value, json};

use crate::{
    cli::{DoctorArgs, Format},
    stdout::print,
};

/// `lxc-tmpl doctor`.
pub fn doctor(args: &DoctorArgs, plugin_dirs: &[PluginDir], plugins: &PluginSet) -> Result<ExitCode> {
    let lxcpath = args.lxcpath.clone().unwrap_or_else(facts::default_lxcpath);
    let subjects = Subjects { cache_dir: &args.cache_dir, lxcpath: &lxcpath, plugin_dirs, plugins };
    let checks = doctor::run(&Probe::here(), &subjects);
    let count = |status: Status| checks.iter().filter(|c| c.status == status).count();
    match args.format {
        Format::Json => {
            let report = json!({
                "checks": checks.iter().map(check_json).collect::<Vec<Value>>(),
                "summary": { "ok": count(Status::Ok), "warn": count(Status::Warn), "fail": count(Status::Fail) },
            });
            print(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
        }
        Format::Text => {
            let mut text: String = checks.iter().map(|c| line(c) + "\n").collect();
            text.push_str(&format!(
                "{} ok, {} warning(s), {} failure(s)\n",
                count(Status::Ok),
                count(Status::Warn),
                count(Status::Fail)
            ));
            print(&text)?;
        }
    }
    Ok(if doctor::any_failed(&checks) { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// `fail  debootstrap: not installed (...) — apt-get install debootstrap`.
fn line(check: &Check) -> String {
    let fix = check.fix.as_ref().map(|f| format!(" — {f}")).unwrap_or_default();
    format!("{:4}  {}: {}{fix}", check.status.name(), check.name, check.detail)
}

fn check_json(check: &Check) -> Value {
    json!({ "name": check.name, "status": check.status.name(), "detail": check.detail, "fix": check.fix })
}
