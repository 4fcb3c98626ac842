//! The process table, to find what a command left running: by process
//! group, by command line, by root/cwd/executable below a directory, and
//! by the descendants it had before it was killed.
//!
//! A process is identified by its pid *and* its start time, so that a pid
//! reused by an unrelated process is never taken for a survivor.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt, fs,
    path::Path,
    thread,
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

use crate::snapshot;

/// One process, as `/proc/PID/stat` and `/proc/PID/cmdline` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    /// Its pid (in this test's PID namespace).
    pub pid: u32,
    /// Its parent's pid.
    pub ppid: u32,
    /// Its process group.
    pub pgid: u32,
    /// Its state letter (`R`, `S`, `Z`, ...).
    pub state: char,
    /// When it started, in clock ticks after boot: with the pid, its identity.
    pub start: u64,
    /// Its command line, NULs shown as spaces (empty for kernel threads and zombies).
    pub cmdline: String,
    /// Its command name (`comm`).
    pub comm: String,
}

impl fmt::Display for Proc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.cmdline.is_empty() { format!("[{}]", self.comm) } else { self.cmdline.clone() };
        write!(f, "pid {} (ppid {}, pgid {}, state {}): {what}", self.pid, self.ppid, self.pgid, self.state)
    }
}

/// Reads one process; `None` if it is gone.
pub fn read(pid: u32) -> Option<Proc> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid pgrp ...`: comm may hold spaces and parentheses.
    let (head, rest) = stat.rsplit_once(')')?;
    let comm = head.split_once('(').map(|(_, c)| c.to_owned()).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the comm: state is field 3 of stat(5), ppid 4, pgrp 5, starttime 22.
    let state = fields.first()?.chars().next()?;
    let ppid = fields.get(1)?.parse().ok()?;
    let pgid = fields.get(2)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " ").trim().to_owned())
        .unwrap_or_default();
    Some(Proc { pid, ppid, pgid, state, start, cmdline, comm })
}

/// Every process now.
pub fn all() -> Vec<Proc> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter_map(read)
        .collect()
}

/// Whether `p` is still there: the same pid with the same start time.
pub fn alive(p: &Proc) -> bool {
    read(p.pid).is_some_and(|now| now.start == p.start)
}

/// The descendants of `pid` now (children, their children, ...), not `pid` itself.
pub fn descendants(pid: u32) -> Vec<Proc> {
    let table = all();
    let mut children: BTreeMap<u32, Vec<&Proc>> = BTreeMap::new();
    for p in &table {
        children.entry(p.ppid).or_default().push(p);
    }
    let mut found = Vec::new();
    let mut todo = vec![pid];
    while let Some(parent) = todo.pop() {
        for child in children.get(&parent).into_iter().flatten() {
            found.push((*child).clone());
            todo.push(child.pid);
        }
    }
    found
}

/// The processes that belong to a command run in test dir `dir`: those in
/// process group `pgid` (the command's own pid, see
/// [`Running`](crate::running::Running)), those whose command line names
/// `dir`, and those whose root, cwd or executable lies below it. The
/// test process itself is left out.
pub fn related(dir: &Path, pgid: Option<u32>) -> Vec<Proc> {
    let me = std::process::id();
    let needle = dir.display().to_string();
    let under: BTreeSet<u32> = snapshot::processes_under(dir).into_iter().map(|p| p.pid).collect();
    all()
        .into_iter()
        .filter(|p| p.pid != me)
        .filter(|p| pgid == Some(p.pgid) || p.cmdline.contains(&needle) || under.contains(&p.pid))
        .collect()
}

/// Waits up to `grace` for every process that belongs to a command to be
/// gone: the ones in `known` (what it had running before it was signalled)
/// and the ones [`related`] finds, except those in `preexisting` (found
/// before the command started, such as a test container's monitor).
/// Returns the ones still there after `grace`, as they are now.
///
/// Zombies are not counted: a zombie runs nothing, and one whose parent
/// died waits for the machine's init to reap it, which is outside the
/// command's control. [`zombies`] lists them.
pub fn survivors(dir: &Path, pgid: u32, known: &[Proc], preexisting: &[Proc], grace: Duration) -> Vec<Proc> {
    let deadline = Instant::now() + grace;
    loop {
        let left: Vec<Proc> =
            remaining(dir, pgid, known, preexisting).into_iter().filter(|p| !matches!(p.state, 'Z' | 'X')).collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The zombies among what a command left (see [`survivors`]).
pub fn zombies(dir: &Path, pgid: u32, known: &[Proc], preexisting: &[Proc]) -> Vec<Proc> {
    remaining(dir, pgid, known, preexisting).into_iter().filter(|p| matches!(p.state, 'Z' | 'X')).collect()
}

/// What is left of a command now, re-read from `/proc`.
fn remaining(dir: &Path, pgid: u32, known: &[Proc], preexisting: &[Proc]) -> Vec<Proc> {
    let mut left: Vec<Proc> = known.iter().filter_map(|p| read(p.pid).filter(|now| now.start == p.start)).collect();
    for p in related(dir, Some(pgid)) {
        let old = preexisting.iter().any(|q| q.pid == p.pid && q.start == p.start);
        if !old && !left.iter().any(|q| q.pid == p.pid) {
            left.push(p);
        }
    }
    left
}

/// SIGKILLs processes a test started (its survivors), each by its pid and
/// only if it is still the same process.
pub fn kill_all(procs: &[Proc]) {
    for p in procs {
        if alive(p) {
            let _ = kill(Pid::from_raw(p.pid as i32), Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = read(std::process::id()).expect("this process is in /proc");
        assert!(me.cmdline.contains("lxc_tmpl_tests") || !me.cmdline.is_empty(), "{me}");
        assert!(alive(&me));
        assert!(descendants(std::process::id()).iter().all(|p| p.pid != me.pid));
    }

    #[test]
    fn a_child_is_a_descendant_and_dies() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().expect("run sleep");
        let found = descendants(std::process::id());
        let sleeper = found.iter().find(|p| p.pid == child.id()).cloned().expect("sleep is a descendant");
        assert_eq!(sleeper.comm, "sleep");
        let _ = child.kill();
        let _ = child.wait();
        assert!(!alive(&sleeper));
    }
}
