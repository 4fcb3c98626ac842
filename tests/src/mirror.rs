//! The local apt mirror the debian and ubuntu plugin tests debootstrap from,
//! offline from the public mirrors.
//!
//! [`apt_fixture`] builds it (once per machine, with
//! `tests/fixtures/apt-mirror/build.sh`) and says where it is;
//! [`MirrorServer`] serves it over HTTP on `127.0.0.1`:
//!
//! ```no_run
//! use lxc_tmpl_tests::mirror::{MirrorServer, apt_fixture};
//!
//! let fixture = apt_fixture(); // builds it the first time: ~1.5 min
//! let server = MirrorServer::start(); // serves fixture.dir
//! let debian = server.url("debian"); // http://127.0.0.1:PORT/debian (bookworm)
//! let ubuntu = server.url("ubuntu"); // http://127.0.0.1:PORT/ubuntu (jammy, noble)
//! // debootstrap --keyring=<fixture.keyring> bookworm ROOTFS <debian>
//! // debootstrap --keyring=<fixture.keyring> --components=main,universe jammy ROOTFS <ubuntu>
//! // debootstrap --keyring=<fixture.keyring> --components=main,universe noble ROOTFS <ubuntu> gutsy
//! # let _ = (debian, ubuntu);
//! ```
//!
//! The mirror holds real Debian 12 packages under both names: the "ubuntu"
//! suites (`jammy`, `noble`, each with `-updates` and `-security`) serve the
//! same bookworm .debs, plus empty stubs for Ubuntu-only names
//! (`language-pack-en`, `ubuntu-keyring`). The `-updates` and `-security`
//! suites are empty but signed. Everything is signed with a throwaway key:
//! pass [`AptFixture::keyring`] to `debootstrap --keyring=` and copy it to
//! `ROOTFS/etc/apt/trusted.gpg.d/` before `apt-get update` in the chroot.
//!
//! Traps (see `research/test-fixtures.md`):
//! - `apt-get update` exits 0 when it cannot fetch anything: use
//!   `apt-get update --error-on=any`, and check with `apt-get check`.
//! - apt resolves `127.0.0.1` with `AI_ADDRCONFIG`: on a host whose only IPv4
//!   address is on `lo` it cannot connect (`Address family for hostname not
//!   supported`); `-o Acquire::Connect::AddrConfig=false` fixes that.
//! - `noble` is unknown to bookworm's debootstrap: pass `gutsy` as its 4th
//!   argument.
//! - Without `/dev/pts` in the chroot, apt prints `E: Can not write log (Is
//!   /dev/pts mounted?)` and still succeeds.

use std::{
    env,
    ffi::OsStr,
    fmt,
    fs::{self, File},
    io::{self, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::Duration,
};

use crate::{TestCommand, paths};

/// Overrides where the fixture is built (read by `build.sh` too).
pub const FIXTURE_ENV: &str = "LXC_TMPL_APT_FIXTURE";

/// Where the fixture is built unless [`FIXTURE_ENV`] says otherwise.
pub const DEFAULT_FIXTURE_DIR: &str = "/var/cache/lxc-tmpl-fixture";

/// The Debian suite the mirror serves under `url("debian")`.
pub const DEBIAN_SUITE: &str = "bookworm";

/// The Ubuntu suites the mirror serves under `url("ubuntu")` (Debian
/// content). Bookworm's debootstrap knows `jammy`; `noble` needs `gutsy` as
/// its 4th argument.
pub const UBUNTU_SUITES: &[&str] = &["jammy", "noble"];

/// Taken while `build.sh` runs, so that parallel test processes build once
/// (build.sh also locks `<dir>.lock` itself).
const BUILD_LOCK: &str = "/tmp/lxc-tmpl-tests/.apt-fixture.lock";

/// The output of the last `build.sh` run.
const BUILD_LOG: &str = "/tmp/lxc-tmpl-tests/apt-fixture-build.log";

/// The built mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptFixture {
    /// The mirror's root: `dists/`, `pool/`, `debian -> .`, `ubuntu -> .`.
    pub dir: PathBuf,
    /// The binary keyring that verifies every suite
    /// (`<dir>/fixture-archive-keyring.gpg`).
    pub keyring: PathBuf,
}

impl AptFixture {
    /// Adds the options of a debian or ubuntu create from the local mirror
    /// at `mirror` (`server.url(distro)`) to `cmd`: `--release`, `--mirror`
    /// and `--security-mirror`, this fixture's keyring; and an environment
    /// that does not depend on the caller's (no proxy, `LANG=C.UTF-8`).
    pub fn from_mirror<'c>(&self, cmd: &'c mut TestCommand, mirror: &str, release: &str) -> &'c mut TestCommand {
        cmd.args(["--release", release, "--mirror", mirror, "--security-mirror", mirror]);
        cmd.arg("--keyring").arg(&self.keyring);
        cmd.env("HTTP_PROXY", "none").env("LANG", "C.UTF-8")
    }

    /// The names of the packages in the mirror (one .deb each), sorted.
    pub fn packages(&self) -> Vec<String> {
        let list = self.dir.join("packages.txt");
        let text = fs::read_to_string(&list).unwrap_or_else(|e| panic!("cannot read {}: {e}", list.display()));
        text.lines().map(str::to_owned).collect()
    }
}

/// The mirror, built by `tests/fixtures/apt-mirror/build.sh` the first time
/// a test process asks (the script returns at once when the fixture is up to
/// date). Fails the test, naming the build log, when it cannot be built;
/// building needs root and the host's apt sources (`apt-get update` done).
pub fn apt_fixture() -> AptFixture {
    static FIXTURE: OnceLock<Result<AptFixture, String>> = OnceLock::new();
    match FIXTURE.get_or_init(build_fixture) {
        Ok(fixture) => fixture.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// The directory the fixture lives in: `$LXC_TMPL_APT_FIXTURE` or
/// [`DEFAULT_FIXTURE_DIR`].
pub fn fixture_dir() -> PathBuf {
    let dir = env::var_os(FIXTURE_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_FIXTURE_DIR), PathBuf::from);
    std::path::absolute(&dir).unwrap_or(dir)
}

/// The host tools that building the fixture and debootstrapping from it need.
pub const FIXTURE_TOOLS: &[&str] = &["debootstrap", "wget", "gpg", "gpgv", "dpkg-scanpackages", "dpkg-name", "chroot"];

/// Fails the test unless every program in [`FIXTURE_TOOLS`] can be run,
/// naming the packages to install.
pub fn require_fixture_tools() {
    for tool in FIXTURE_TOOLS {
        let found =
            Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success());
        assert!(
            found,
            "this test needs `{tool}`, which is not installed \
             (apt-get install debootstrap wget dpkg-dev gnupg gpgv; see .ci/run)"
        );
    }
}

fn build_fixture() -> Result<AptFixture, String> {
    let dir = fixture_dir();
    let script = paths::source_file("fixtures/apt-mirror/build.sh");
    fs::create_dir_all("/tmp/lxc-tmpl-tests").map_err(|e| format!("cannot create /tmp/lxc-tmpl-tests: {e}"))?;
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(BUILD_LOCK)
        .map_err(|e| format!("cannot open {BUILD_LOCK}: {e}"))?;
    lock.lock().map_err(|e| format!("cannot lock {BUILD_LOCK}: {e}"))?;
    let log = File::create(BUILD_LOG).map_err(|e| format!("cannot create {BUILD_LOG}: {e}"))?;
    let log_err = log.try_clone().map_err(|e| format!("cannot dup {BUILD_LOG}: {e}"))?;
    let status = Command::new("bash")
        .arg(&script)
        .env(FIXTURE_ENV, &dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .status()
        .map_err(|e| format!("cannot run bash {}: {e}", script.display()))?;
    drop(lock);
    if !status.success() {
        let text = fs::read_to_string(BUILD_LOG).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(25).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "cannot build the apt fixture in {} ({} {status}; it needs root, debootstrap, dpkg-dev, gnupg, \
             wget and a fresh `apt-get update`); full log: {BUILD_LOG}; last lines:\n{}",
            dir.display(),
            script.display(),
            tail.join("\n")
        ));
    }
    let fixture = AptFixture { keyring: dir.join("fixture-archive-keyring.gpg"), dir };
    for needed in [fixture.dir.join(".stamp"), fixture.keyring.clone(), fixture.dir.join("dists/bookworm/InRelease")] {
        if !needed.is_file() {
            return Err(format!(
                "{} succeeded but {} is missing; log: {BUILD_LOG}",
                script.display(),
                needed.display()
            ));
        }
    }
    Ok(fixture)
}

/// One request the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The request target as sent (`/debian/dists/bookworm/InRelease`).
    pub target: String,
    /// The status code of the answer.
    pub status: u16,
}

impl fmt::Display for Served {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} -> {}", self.method, self.target, self.status)
    }
}

/// A static HTTP/1.1 file server for a directory (by default the apt
/// fixture) on `127.0.0.1:<free port>`, for debootstrap's wget and apt.
///
/// It answers `GET` and `HEAD` of regular files below its root, following
/// symlinks (`debian -> .`) only as long as they stay below the root: the
/// path is percent-decoded first, `..` is refused (400), anything else that
/// is not a file below the root is 404. Every answer has `Content-Length`
/// and `Connection: close` (apt then reconnects for the next file). One
/// thread per connection. Dropping the server stops it and joins its
/// threads.
#[derive(Debug)]
pub struct MirrorServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    served: Arc<Mutex<Vec<Served>>>,
    thread: Option<JoinHandle<()>>,
}

/// How long a connection may stay silent.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest request head accepted.
const MAX_HEAD: usize = 64 * 1024;

impl MirrorServer {
    /// Serves the apt fixture (building it first if needed, see [`apt_fixture`]).
    pub fn start() -> MirrorServer {
        MirrorServer::serve(&apt_fixture().dir)
    }

    /// Serves `root`.
    pub fn serve(root: &Path) -> MirrorServer {
        let root = root.canonicalize().unwrap_or_else(|e| panic!("cannot serve {}: {e}", root.display()));
        let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("no local address");
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, served) = (Arc::clone(&stop), Arc::clone(&served));
            thread::Builder::new()
                .name(format!("mirror-server-{}", addr.port()))
                .spawn(move || {
                    accept_loop(&listener, "mirror-conn", &stop, move |stream| handle(stream, &root, &served));
                })
                .expect("cannot spawn the mirror server thread")
        };
        MirrorServer { addr, stop, served, thread: Some(thread) }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The mirror URL for `distro` (a path below the root, `"debian"` or
    /// `"ubuntu"` for the fixture): `http://127.0.0.1:PORT/ubuntu`.
    pub fn url(&self, distro: &str) -> String {
        format!("http://{}/{}", self.addr, distro.trim_matches('/'))
    }

    /// Every request answered so far, in order.
    pub fn served(&self) -> Vec<Served> {
        self.served.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A mirror URL on `127.0.0.1` where nothing listens (connecting is
    /// refused), for the "unreachable mirror" tests: a port below the
    /// kernel's ephemeral range, so no `bind(:0)` gets it meanwhile.
    pub fn unreachable_url() -> String {
        let first_ephemeral = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|r| r.split_whitespace().next().and_then(|p| p.parse::<u16>().ok()))
            .unwrap_or(32768);
        let port = (1..first_ephemeral.min(1024))
            .find(|&port| {
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                matches!(
                    TcpStream::connect_timeout(&addr, Duration::from_secs(1)),
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused
                )
            })
            .expect("every port below 1024 on 127.0.0.1 is in use");
        format!("http://127.0.0.1:{port}/debian")
    }
}

impl Drop for MirrorServer {
    fn drop(&mut self) {
        stop_accepting(&self.addr, &self.stop, self.thread.take());
    }
}

/// Stops a server's accept loop: raises `stop`, wakes the blocking
/// `accept()` with a connection of its own, and joins the loop's thread.
pub(crate) fn stop_accepting(addr: &SocketAddr, stop: &AtomicBool, thread: Option<JoinHandle<()>>) {
    stop.store(true, Ordering::SeqCst);
    let _ = TcpStream::connect_timeout(addr, Duration::from_secs(1));
    if let Some(thread) = thread {
        let _ = thread.join();
    }
}

/// Accepts connections until `stop` is raised, each handled by `handle` on
/// a thread of its own named `name`; joins them all before returning.
pub(crate) fn accept_loop<H>(listener: &TcpListener, name: &str, stop: &AtomicBool, handle: H)
where
    H: Fn(TcpStream) + Clone + Send + 'static,
{
    let mut connections: Vec<JoinHandle<()>> = Vec::new();
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        connections.retain(|c| !c.is_finished());
        let handle = handle.clone();
        match thread::Builder::new().name(name.to_owned()).spawn(move || handle(stream)) {
            Ok(thread) => connections.push(thread),
            Err(e) => eprintln!("{name}: cannot spawn a connection thread: {e}"),
        }
    }
    for connection in connections {
        let _ = connection.join();
    }
}

/// Answers one request, then closes the connection.
fn handle(mut stream: TcpStream, root: &Path, served: &Mutex<Vec<Served>>) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let Some(record) = answer(&mut stream, root) else { return };
    served.lock().unwrap_or_else(|e| e.into_inner()).push(record);
    let _ = stream.flush();
    close_gently(&mut stream);
}

/// Reads one request from `stream` and answers it: `GET` and `HEAD` of the
/// regular files below `root` (see [`resolve`]), 400, 404 or 405 otherwise,
/// always with `Connection: close`. `None` when no request head came (the
/// client went away, or did not speak HTTP). The transport is the
/// caller's: plain TCP here, TLS in [`crate::https`].
pub(crate) fn answer<S: Read + Write>(stream: &mut S, root: &Path) -> Option<Served> {
    let head = read_head(stream)?;
    let request_line = head.lines().next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let status = match (method, resolve(root, target)) {
        ("GET" | "HEAD", Ok(file)) => send_file(stream, &file, method == "HEAD"),
        ("GET" | "HEAD", Err(reject)) => send_status(stream, reject.status()),
        _ if method.is_empty() || target.is_empty() => send_status(stream, 400),
        _ => send_status(stream, 405),
    };
    Some(Served { method: method.to_owned(), target: target.to_owned(), status })
}

/// Half-closes `stream`, then drains what the client still sends
/// (pipelined requests): closing with unread data would send a RST, and the
/// client could lose the answer.
pub(crate) fn close_gently(stream: &mut TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut sink = [0u8; 8192];
    let mut drained = 0;
    while let Ok(n) = stream.read(&mut sink) {
        drained += n;
        if n == 0 || drained > 1 << 20 {
            break;
        }
    }
}

/// Reads up to the blank line that ends the request head.
fn read_head(stream: &mut impl Read) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Internal Server Error",
    }
}

fn send_status(stream: &mut impl Write, status: u16) -> u16 {
    let body = format!("{status} {}\n", reason(status));
    let allow = if status == 405 { "Allow: GET, HEAD\r\n" } else { "" };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n{body}",
        reason(status),
        body.len()
    );
    status
}

fn send_file(stream: &mut impl Write, path: &Path, head_only: bool) -> u16 {
    let Ok(mut file) = File::open(path) else { return send_status(stream, 404) };
    let Ok(len) = file.metadata().map(|m| m.len()) else { return send_status(stream, 500) };
    let header = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(header.as_bytes()).is_ok() && !head_only {
        let _ = io::copy(&mut file, stream);
    }
    200
}

/// Why a request target was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Not a path, a bad percent escape, a NUL or a `..` segment: 400.
    BadRequest,
    /// No regular file below the root: 404.
    NotFound,
}

impl Reject {
    /// The HTTP status code.
    pub fn status(self) -> u16 {
        match self {
            Reject::BadRequest => 400,
            Reject::NotFound => 404,
        }
    }
}

/// The relative path a request target names: query and fragment dropped,
/// percent-decoded, then split on `/`; empty and `.` segments are skipped,
/// a `..` segment (also `%2e%2e`, also one made by decoding `%2f`) refuses
/// the request. An absolute-form target (`http://host/path`) is reduced to
/// its path.
pub fn request_path(target: &str) -> Result<PathBuf, Reject> {
    let target = target.split(['?', '#']).next().unwrap_or_default();
    let path = match target.strip_prefix("http://") {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    if !path.starts_with('/') {
        return Err(Reject::BadRequest);
    }
    let bytes = percent_decode(path)?;
    if bytes.contains(&0) {
        return Err(Reject::BadRequest);
    }
    let mut relative = PathBuf::new();
    for segment in bytes.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => return Err(Reject::BadRequest),
            name => relative.push(OsStr::from_bytes(name)),
        }
    }
    Ok(relative)
}

/// The file below `root` (canonical) that `target` names, symlinks
/// resolved; never a path outside `root`.
pub fn resolve(root: &Path, target: &str) -> Result<PathBuf, Reject> {
    let relative = request_path(target)?;
    let file = root.join(relative).canonicalize().map_err(|_| Reject::NotFound)?;
    if !file.starts_with(root) || !file.is_file() {
        return Err(Reject::NotFound);
    }
    Ok(file)
}

/// Decodes `%XX` escapes; a `%` without two hex digits is a bad request.
fn percent_decode(text: &str) -> Result<Vec<u8>, Reject> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(Reject::BadRequest)?;
            let hex = std::str::from_utf8(hex).map_err(|_| Reject::BadRequest)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Reject::BadRequest);
            }
            out.push(u8::from_str_radix(hex, 16).map_err(|_| Reject::BadRequest)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::{TestCommand, TestDir, heavy_lock, require_root, snapshot};

    #[test]
    fn request_paths_are_decoded_and_never_climb() {
        let ok = |t: &str| request_path(t).unwrap_or_else(|e| panic!("{t}: {e:?}"));
        assert_eq!(ok("/debian/dists/bookworm/InRelease"), Path::new("debian/dists/bookworm/InRelease"));
        assert_eq!(ok("/"), Path::new(""));
        assert_eq!(ok("//a/./b//c/"), Path::new("a/b/c"));
        assert_eq!(ok("/pool/main/zlib1g_1%3a1.2.13_amd64.deb"), Path::new("pool/main/zlib1g_1:1.2.13_amd64.deb"));
        assert_eq!(ok("/a%20b%2Fc"), Path::new("a b/c"));
        assert_eq!(ok("/a+b"), Path::new("a+b"));
        assert_eq!(ok("/a?x=/../..#frag"), Path::new("a"));
        assert_eq!(ok("http://127.0.0.1:80/debian/x"), Path::new("debian/x"));
        assert_eq!(ok("/a..b/..c/c.."), Path::new("a..b/..c/c.."));
        for bad in [
            "/..",
            "/../etc/passwd",
            "/debian/../../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2e",
            "/debian%2f..%2f..%2fetc",
            "/a/%2e%2e%2fb",
            "/%",
            "/%4",
            "/%zz",
            "/%+1",
            "/a%00b",
            "relative",
            "",
            "*",
        ] {
            assert_eq!(request_path(bad), Err(Reject::BadRequest), "{bad:?}");
        }
    }

    /// A served tree: `file`, `debian -> .`, `escape -> /etc` and
    /// `passwd-link -> /etc/passwd`, `dir/`.
    fn served_tree() -> tempfile::TempDir {
        let tree = tempfile::tempdir().expect("tempdir");
        fs::write(tree.path().join("file"), "hello\n").expect("write");
        fs::create_dir(tree.path().join("dir")).expect("mkdir");
        fs::write(tree.path().join("dir/a b:c"), "spaced\n").expect("write");
        symlink(".", tree.path().join("debian")).expect("symlink");
        symlink("/etc", tree.path().join("escape")).expect("symlink");
        symlink("/etc/passwd", tree.path().join("passwd-link")).expect("symlink");
        tree
    }

    #[test]
    fn resolve_follows_symlinks_only_inside_the_root() {
        let tree = served_tree();
        let root = tree.path().canonicalize().expect("canonicalize");
        assert_eq!(resolve(&root, "/debian/debian/file"), Ok(root.join("file")));
        assert_eq!(resolve(&root, "/dir/a%20b%3ac"), Ok(root.join("dir/a b:c")));
        assert_eq!(resolve(&root, "/escape/passwd"), Err(Reject::NotFound));
        assert_eq!(resolve(&root, "/passwd-link"), Err(Reject::NotFound));
        assert_eq!(resolve(&root, "/dir"), Err(Reject::NotFound));
        assert_eq!(resolve(&root, "/missing"), Err(Reject::NotFound));
        assert_eq!(resolve(&root, "/debian/../file"), Err(Reject::BadRequest));
    }

    /// Sends `request` raw, reads the whole answer until the server closes.
    fn raw(server: &MirrorServer, request: &str) -> String {
        let mut stream = TcpStream::connect(server.addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        stream.write_all(request.as_bytes()).expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("the answer, then a clean close (no reset)");
        answer
    }

    fn get(server: &MirrorServer, method: &str, target: &str) -> String {
        raw(server, &format!("{method} {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: test\r\n\r\n", server.addr))
    }

    #[test]
    fn server_answers_get_and_head_and_refuses_the_rest() {
        let tree = served_tree();
        let server = MirrorServer::serve(tree.path());
        assert!(server.url("/ubuntu/").ends_with("/ubuntu") && server.url("debian").starts_with("http://127.0.0.1:"));

        let answer = get(&server, "GET", "/debian/file");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(
            answer.contains("\r\nContent-Length: 6\r\n") && answer.contains("\r\nConnection: close\r\n"),
            "{answer}"
        );
        assert!(answer.ends_with("\r\n\r\nhello\n"), "{answer}");

        let answer = get(&server, "HEAD", "/file");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.contains("Content-Length: 6\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\n"), "HEAD has no body: {answer}");

        assert!(get(&server, "GET", "/dir/a%20b%3Ac").ends_with("spaced\n"));
        for (target, status) in [
            ("/../etc/passwd", "400"),
            ("/%2e%2e/%2e%2e/etc/passwd", "400"),
            ("/escape/passwd", "404"),
            ("/passwd-link", "404"),
            ("/dir", "404"),
            ("/nothing", "404"),
            ("/%zz", "400"),
        ] {
            let answer = get(&server, "GET", target);
            assert!(answer.starts_with(&format!("HTTP/1.1 {status} ")), "{target}: {answer}");
            assert!(!answer.contains("root:"), "{target} leaked /etc/passwd: {answer}");
        }
        let answer = get(&server, "POST", "/file");
        assert!(answer.starts_with("HTTP/1.1 405 ") && answer.contains("Allow: GET, HEAD\r\n"), "{answer}");
        assert!(raw(&server, "garbage\r\n\r\n").starts_with("HTTP/1.1 400 "));

        // Pipelined requests (apt does that): the first is answered, then the
        // connection is closed cleanly; the client asks again.
        let two = "GET /file HTTP/1.1\r\nHost: x\r\n\r\nGET /dir/a%20b%3Ac HTTP/1.1\r\nHost: x\r\n\r\n";
        let answer = raw(&server, two);
        assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
        assert!(answer.ends_with("hello\n"), "{answer}");

        let served = server.served();
        assert!(served.contains(&Served { method: "GET".into(), target: "/debian/file".into(), status: 200 }));
        assert!(served.contains(&Served { method: "GET".into(), target: "/escape/passwd".into(), status: 404 }));
        drop(server); // stops and joins
    }

    #[test]
    fn server_stops_on_drop_and_unreachable_url_refuses() {
        let tree = served_tree();
        let server = MirrorServer::serve(tree.path());
        let addr = server.addr;
        drop(server);
        // A connect to a free port of the ephemeral range can meet itself
        // (TCP self-connect: source port == destination port); that is no
        // listener.
        let listening = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
            .ok()
            .filter(|s| s.local_addr().ok() != s.peer_addr().ok());
        assert!(listening.is_none(), "still listening on {addr}");

        let url = MirrorServer::unreachable_url();
        let authority = url.strip_prefix("http://").and_then(|r| r.split('/').next()).expect("an http URL");
        let addr: SocketAddr = authority.parse().expect("host:port");
        let refused = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        assert!(refused.is_err_and(|e| e.kind() == io::ErrorKind::ConnectionRefused), "{url} is reachable");
    }

    /// The real thing: build the fixture, serve it, debootstrap bookworm
    /// (minbase) from it with the fixture keyring, then apt in the chroot
    /// (update + download) against the same server.
    #[test]
    fn debootstrap_and_apt_work_against_the_served_fixture() {
        require_root();
        require_fixture_tools();
        let fixture = apt_fixture();
        let server = MirrorServer::start();
        let dir = TestDir::new("apt-fixture");
        let rootfs = dir.path().join("rootfs");
        let url = server.url("debian");
        // debootstrap mounts /proc and /sys in the rootfs: not while another
        // test compares mount tables.
        let _heavy = heavy_lock();

        let keyring = format!("--keyring={}", fixture.keyring.display());
        let bootstrapped = TestCommand::new("debootstrap")
            .args(["--variant=minbase", &keyring, DEBIAN_SUITE])
            .arg(&rootfs)
            .arg(&url)
            .run();
        let leftover = snapshot::mounts_under(&rootfs);
        assert!(leftover.is_empty(), "debootstrap left mounts: {leftover:?}");
        bootstrapped.assert_success();
        assert!(
            !bootstrapped.stderr.contains("Cannot check Release signature"),
            "the Release signature was not checked:\n{bootstrapped}"
        );
        let served = server.served();
        let failed: Vec<String> = served.iter().filter(|s| s.status != 200).map(ToString::to_string).collect();
        assert!(failed.is_empty(), "debootstrap asked for missing files: {failed:?}");
        assert!(served.iter().any(|s| s.target.ends_with("/dists/bookworm/InRelease")), "no InRelease fetched");
        assert!(served.iter().filter(|s| s.target.ends_with(".deb")).count() > 50, "few .debs fetched: {served:?}");
        assert!(rootfs.join("etc/debian_version").is_file(), "no etc/debian_version in the rootfs");
        let sources = fs::read_to_string(rootfs.join("etc/apt/sources.list")).expect("etc/apt/sources.list");
        assert!(sources.contains(&url), "sources.list does not point at the mirror:\n{sources}");

        // apt in the chroot, through this server: signed update of all three
        // suites, then a download (apt pipelines; the server closes each time).
        let lines: String =
            ["", "-updates", "-security"].iter().map(|s| format!("deb {url} {DEBIAN_SUITE}{s} main\n")).collect();
        fs::write(rootfs.join("etc/apt/sources.list"), lines).expect("write sources.list");
        fs::copy(&fixture.keyring, rootfs.join("etc/apt/trusted.gpg.d/lxc-tmpl-fixture.gpg")).expect("copy keyring");
        let before = server.served().len();
        TestCommand::new("chroot")
            .arg(&rootfs)
            .args(["apt-get", "-q", "update", "--error-on=any"])
            .run()
            .assert_success();
        let downloaded = TestCommand::new("chroot")
            .arg(&rootfs)
            .args(["apt-get", "-q", "-y", "install", "--download-only", "--no-install-recommends", "less", "file"])
            .run();
        downloaded.assert_success();
        TestCommand::new("chroot").arg(&rootfs).args(["apt-get", "check"]).run().assert_success();
        let by_apt = &server.served()[before..];
        assert!(by_apt.iter().any(|s| s.target.contains("/pool/main/less_") && s.status == 200), "{by_apt:?}");
        assert!(by_apt.iter().any(|s| s.target.contains("/dists/bookworm-security/InRelease")), "{by_apt:?}");
        let cached = fs::read_dir(rootfs.join("var/cache/apt/archives")).expect("apt archives").count();
        assert!(cached >= 3, "apt downloaded nothing:\n{downloaded}");
        assert!(snapshot::mounts_under(dir.path()).is_empty(), "mounts left under {}", dir.path().display());
    }
}
