//! The last step in the command's process: `execve` with the request's environment, searching
//! the `PATH` of that environment (after `chroot`, inside the root).

use std::ffi::CString;

use nix::errno::Errno;
use nix::unistd::execve;

use super::BASE_ENV;
use super::protocol::{CANNOT_EXECUTE, HelperRequest, NOT_FOUND};
use crate::sys;

/// In the command's process (after `chroot` for a rootfs): exec the request's command with its
/// environment, searching the `PATH` of that environment. Never returns.
pub(super) fn exec_command(request: &HelperRequest) -> ! {
    if let Err(e) = sys::reset_signals_for_exec() {
        eprintln!("lxc-tmpl: cannot reset signal handling: {e}");
        sys::exit_immediately(CANNOT_EXECUTE);
    }
    // A fixed umask, so what the command creates (and a cache built from it) does not depend
    // on the umask of whoever ran lxc-tmpl.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let program = &request.argv[0];
    let (Some(argv), Some(env)) = (request.c_argv(), request.c_env()) else {
        eprintln!("lxc-tmpl: cannot run {program:?}: an argument contains a NUL byte");
        sys::exit_immediately(CANNOT_EXECUTE);
    };
    let path = request.path_var().unwrap_or(BASE_ENV[0].1);
    let errno = exec_in_path(program, path, &argv, &env);
    eprintln!("lxc-tmpl: cannot run {program} inside {}: {}", request.place_name(), errno.desc());
    sys::exit_immediately(match errno {
        Errno::ENOENT | Errno::ENOTDIR => NOT_FOUND,
        _ => CANNOT_EXECUTE,
    })
}

/// `execvpe` with `path` as the search path (glibc's would use our own `PATH`). Returns the
/// error that ended the search, as execvp(3) reports it.
fn exec_in_path(program: &str, path: &str, argv: &[CString], env: &[CString]) -> Errno {
    let candidates: Vec<String> = if program.contains('/') {
        vec![program.to_owned()]
    } else {
        path.split(':').map(|dir| format!("{}/{program}", if dir.is_empty() { "." } else { dir })).collect()
    };
    let mut result = Errno::ENOENT;
    let mut saw_eacces = false;
    for candidate in candidates {
        let Ok(path) = CString::new(candidate) else {
            continue;
        };
        let Err(errno) = execve(&path, argv, env);
        match errno {
            // Not here: try the next directory.
            Errno::ENOENT | Errno::ENOTDIR | Errno::ESTALE | Errno::ENODEV | Errno::ETIMEDOUT => {}
            // Found but not executable: remember, keep looking (as execvp does).
            Errno::EACCES => saw_eacces = true,
            other => {
                result = other;
                break;
            }
        }
    }
    if saw_eacces && result == Errno::ENOENT { Errno::EACCES } else { result }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_exec_in_path_reports_not_found() {
        // Candidates that do not exist never exec; the search ends with ENOENT. The PATH
        // entries are inside an empty temp dir, so nothing can actually be executed.
        let tmp = tempfile::tempdir().unwrap();
        let path = format!("{0}/a:{0}/b", tmp.path().display());
        let argv = [CString::new("no-such-program").unwrap()];
        let errno = exec_in_path("no-such-program", &path, &argv, &[]);
        assert_eq!(errno, Errno::ENOENT);
        assert_eq!(errno.desc(), "No such file or directory");
    }
}
