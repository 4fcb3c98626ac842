//! Run one command inside a rootfs with the lxc-tmpl runner (needs root).
//!
//! ```text
//! cargo run -p lxc-tmpl-host --example run_in_rootfs -- ROOTFS [--hostname H] [--resolv] \
//!     [--stdin TEXT] -- PROGRAM [ARGS...]
//! ```
//!
//! The example shows the two halves every binary using the runner needs: `main` first hands
//! the hidden `__run-in-rootfs` subcommand to [`runner::helper_main`] (the runner re-executes
//! the current binary as its namespace helper), and otherwise uses [`runner::Runner`] with
//! `current_exe()` as the helper.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use lxc_tmpl_host::runner::{self, RunRequest, Runner};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    // Must come first, before any thread is started: the helper forks.
    if args.get(1).is_some_and(|a| a == runner::HELPER_SUBCOMMAND) {
        std::process::exit(runner::helper_main());
    }

    let usage = "usage: run_in_rootfs ROOTFS [--hostname H] [--resolv] [--stdin TEXT] -- PROGRAM [ARGS...]";
    let mut iter = args.into_iter().skip(1).map(|a| a.to_string_lossy().into_owned());
    let Some(root) = iter.next().map(PathBuf::from) else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let (mut hostname, mut resolv, mut stdin) = (None, false, String::new());
    let mut argv = Vec::new();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--hostname" => hostname = iter.next(),
            "--resolv" => resolv = true,
            "--stdin" => stdin = iter.next().unwrap_or_default(),
            "--" => {
                argv = iter.by_ref().collect();
            }
            _ => {
                eprintln!("{usage}");
                return ExitCode::from(2);
            }
        }
    }

    let helper = match std::env::current_exe() {
        Ok(helper) => helper,
        Err(e) => {
            eprintln!("cannot find the current executable: {e}");
            return ExitCode::from(1);
        }
    };
    let request = RunRequest {
        root: &root,
        argv: &argv,
        env: &[("LXC_TMPL_EXAMPLE".to_owned(), "1".to_owned())],
        stdin: stdin.as_bytes(),
        hostname: hostname.as_deref(),
        bind_resolv_conf: resolv,
    };
    match Runner::new(helper).run(&request) {
        Ok(output) => {
            let _ = std::io::stdout().write_all(&output.stdout);
            let _ = std::io::stderr().write_all(&output.stderr);
            println!("[status {}]", output.status);
            ExitCode::from(u8::try_from(output.status).unwrap_or(1))
        }
        Err(e) => {
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}
