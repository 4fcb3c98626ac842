//! An HTTPS file server on `127.0.0.1`, with a certificate authority made
//! for the test, for the simplestreams remotes LXD and Incus accept only
//! over https.
//!
//! ```no_run
//! use lxc_tmpl_tests::https::{HttpsServer, TestCa};
//!
//! let ca = TestCa::new(); // before the daemon starts: its path goes into SSL_CERT_FILE
//! // lxd --logfile ... with SSL_CERT_FILE=<ca.cert_path()>, and `lxc` with it too
//! let server = HttpsServer::serve_with(std::path::Path::new("/tmp/tree"), &ca);
//! let url = server.base_url(); // https://127.0.0.1:PORT
//! // lxc remote add test <url> --protocol simplestreams --public
//! // curl --cacert <ca.cert_path()> <url>/streams/v1/index.json
//! # let _ = url;
//! ```
//!
//! [`TestCa::new`] makes a CA key and certificate (ECDSA P-256, rcgen) and
//! writes the certificate as PEM into a fresh directory under
//! `/tmp/lxc-tmpl-tests`; [`TestCa::cert_path`] is the file to trust (Go's
//! `SSL_CERT_FILE`, curl's `--cacert`). The server's certificate, signed by
//! it, is for `127.0.0.1` and `localhost` (subjectAltName; Go ignores the
//! common name), for server authentication only.
//!
//! Requests are answered as [`MirrorServer`](crate::MirrorServer) answers
//! them (the same code: `GET` and `HEAD` of files below the root, symlinks
//! only inside it, `Connection: close`), over TLS 1.2 or 1.3 (rustls). LXD
//! and Incus fetch whole files (no `Range`), and try each image file over
//! plain `http://` to the same port first: such a connection does not speak
//! TLS, is closed at once, and the client then asks over https. Every
//! request answered is recorded ([`HttpsServer::served`]); connections that
//! fail the handshake are counted ([`HttpsServer::failed_handshakes`]).
//!
//! Dropping the server stops it (joining its threads); dropping the
//! [`TestCa`] removes its directory.

use std::{
    fs,
    io::Write,
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread::{self, JoinHandle},
};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use rustls::{
    ServerConfig, ServerConnection, StreamOwned,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
};

use crate::mirror::{IO_TIMEOUT, Served, accept_loop, answer, close_gently, stop_accepting};

/// Where the CA directories are made.
const BASE: &str = "/tmp/lxc-tmpl-tests";

/// A certificate authority made for one test: its certificate as a PEM file,
/// and its key, to sign server certificates.
#[derive(Debug)]
pub struct TestCa {
    dir: tempfile::TempDir,
    cert_path: PathBuf,
    cert_der: CertificateDer<'static>,
    issuer: Arc<Issuer<'static, KeyPair>>,
}

impl TestCa {
    /// Makes a CA (`CN=lxc-tmpl test CA <pid>`, a CA certificate that may
    /// sign certificates only) and writes its certificate to
    /// `/tmp/lxc-tmpl-tests/https-ca-XXXXXX/ca.pem`.
    pub fn new() -> TestCa {
        fs::create_dir_all(BASE).unwrap_or_else(|e| panic!("cannot create {BASE}: {e}"));
        let dir = tempfile::Builder::new().prefix("https-ca-").tempdir_in(BASE).expect("cannot make the CA directory");
        let key = KeyPair::generate().expect("cannot generate the CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.distinguished_name.push(DnType::CommonName, format!("lxc-tmpl test CA {}", std::process::id()));
        let cert = params.self_signed(&key).expect("cannot sign the CA certificate");
        let cert_path = dir.path().join("ca.pem");
        fs::write(&cert_path, cert.pem()).unwrap_or_else(|e| panic!("cannot write {}: {e}", cert_path.display()));
        TestCa { cert_path, cert_der: cert.der().clone(), issuer: Arc::new(Issuer::new(params, key)), dir }
    }

    /// The CA certificate (PEM): `SSL_CERT_FILE` for LXD and `lxc`, `curl --cacert`.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// The directory holding [`cert_path`](Self::cert_path), removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A server certificate for `127.0.0.1` and `localhost` signed by this
    /// CA, with the chain to send (server, CA) and its key.
    fn server_identity(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().expect("cannot generate the server key");
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("server parameters");
        params.subject_alt_names.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params.distinguished_name.push(DnType::CommonName, "localhost");
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).expect("cannot sign the server certificate");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (vec![cert.der().clone(), self.cert_der.clone()], key)
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

/// A static HTTPS file server for a directory on `127.0.0.1:<free port>`.
#[derive(Debug)]
pub struct HttpsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    served: Arc<Mutex<Vec<Served>>>,
    failed: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
    /// The CA [`serve`](Self::serve) made, kept for the server's lifetime.
    own_ca: Option<TestCa>,
    ca_path: PathBuf,
}

impl HttpsServer {
    /// Serves `root` with a certificate from a CA of its own
    /// ([`ca_cert`](Self::ca_cert) is its certificate).
    pub fn serve(root: &Path) -> HttpsServer {
        let ca = TestCa::new();
        let mut server = HttpsServer::serve_with(root, &ca);
        server.own_ca = Some(ca);
        server
    }

    /// Serves `root` with a certificate signed by `ca` (which must outlive
    /// the server's clients' use of its file).
    pub fn serve_with(root: &Path, ca: &TestCa) -> HttpsServer {
        let root = root.canonicalize().unwrap_or_else(|e| panic!("cannot serve {}: {e}", root.display()));
        let (chain, key) = ca.server_identity();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("the server certificate and key");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("no local address");
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(Mutex::new(Vec::new()));
        let failed = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, served, failed) = (Arc::clone(&stop), Arc::clone(&served), Arc::clone(&failed));
            thread::Builder::new()
                .name(format!("https-server-{}", addr.port()))
                .spawn(move || {
                    accept_loop(&listener, "https-conn", &stop, move |stream| {
                        handle(stream, &root, Arc::clone(&config), &served, &failed);
                    });
                })
                .expect("cannot spawn the https server thread")
        };
        HttpsServer {
            addr,
            stop,
            served,
            failed,
            thread: Some(thread),
            own_ca: None,
            ca_path: ca.cert_path().to_owned(),
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `https://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// `https://localhost:PORT` (the certificate names both).
    pub fn localhost_url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// `https://127.0.0.1:PORT/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// The PEM certificate of the CA that signed the server's certificate.
    pub fn ca_cert(&self) -> &Path {
        &self.ca_path
    }

    /// Every request answered so far, in order.
    pub fn served(&self) -> Vec<Served> {
        self.served.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Connections closed before a request came over TLS: failed handshakes
    /// (a client that does not trust the CA, plain http to this port).
    pub fn failed_handshakes(&self) -> usize {
        self.failed.load(Ordering::SeqCst)
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        stop_accepting(&self.addr, &self.stop, self.thread.take());
    }
}

/// Answers one request over TLS, then closes the connection (close_notify, then TCP).
fn handle(
    stream: TcpStream,
    root: &Path,
    config: Arc<ServerConfig>,
    served: &Mutex<Vec<Served>>,
    failed: &AtomicUsize,
) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let Ok(conn) = ServerConnection::new(config) else { return };
    let mut tls = StreamOwned::new(conn, stream);
    // The handshake happens on the first read.
    let Some(record) = answer(&mut tls, root) else {
        failed.fetch_add(1, Ordering::SeqCst);
        // A TLS alert the failure queued, if any, then the close.
        let _ = tls.conn.write_tls(&mut tls.sock);
        close_gently(&mut tls.sock);
        return;
    };
    served.lock().unwrap_or_else(|e| e.into_inner()).push(record);
    let _ = tls.flush();
    tls.conn.send_close_notify();
    while tls.conn.wants_write() {
        if tls.conn.write_tls(&mut tls.sock).is_err() {
            break;
        }
    }
    close_gently(&mut tls.sock);
}

/// Fails the test unless `curl` can be run (the tests fetch with it, as a
/// client that checks the certificate by its own rules, not rustls's).
pub fn require_curl() {
    let found = std::process::Command::new("curl").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(found, "this test needs `curl`, which is not installed (apt-get install curl; see .ci/run)");
}

/// `curl` set to fetch quietly, trusting only `ca` (when given), with no
/// proxy and no config file of the caller's.
pub fn curl(ca: Option<&Path>) -> crate::TestCommand {
    let mut cmd = crate::TestCommand::new("curl");
    cmd.args(["-q", "--silent", "--show-error", "--fail", "--noproxy", "*", "--max-time", "20"]);
    cmd.env("CURL_CA_BUNDLE", "").env("SSL_CERT_FILE", "").env("SSL_CERT_DIR", "/nonexistent");
    if let Some(ca) = ca {
        cmd.arg("--cacert").arg(ca);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn tree() -> tempfile::TempDir {
        let tree = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(tree.path().join("streams/v1")).expect("mkdir");
        fs::write(tree.path().join("streams/v1/index.json"), "{\"format\": \"index:1.0\"}\n").expect("write");
        fs::write(tree.path().join("big"), vec![b'x'; 3 << 20]).expect("write");
        tree
    }

    #[test]
    fn curl_fetches_over_https_trusting_the_test_ca() {
        require_curl();
        let tree = tree();
        let server = HttpsServer::serve(tree.path());
        let ca = server.ca_cert().to_owned();
        assert!(fs::read_to_string(&ca).expect("the CA file").starts_with("-----BEGIN CERTIFICATE-----"));

        let index = server.url("/streams/v1/index.json");
        assert!(index.starts_with("https://127.0.0.1:"), "{index}");
        assert_eq!(curl(Some(&ca)).arg(&index).stdout(), "{\"format\": \"index:1.0\"}\n");
        let by_name = format!("{}/streams/v1/index.json", server.localhost_url());
        assert_eq!(curl(Some(&ca)).args(["--ipv4", &by_name]).stdout(), "{\"format\": \"index:1.0\"}\n");
        // A file larger than TLS records and socket buffers comes whole.
        let big = curl(Some(&ca)).arg(server.url("big")).run();
        big.assert_success();
        assert_eq!(big.stdout.len(), 3 << 20);

        let head = curl(Some(&ca)).args(["--head", &index]).stdout();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.to_ascii_lowercase().contains("content-length: 24"), "{head}");
        let missing = curl(Some(&ca)).arg(server.url("nothing")).run();
        assert_eq!(missing.code(), Some(22), "404 is curl's --fail exit 22: {missing}");

        // Without the CA the certificate is refused (curl: 60), and plain
        // http to the port (what LXD tries first) gets no answer.
        let failed_before = server.failed_handshakes();
        let untrusted = curl(None).arg(&index).run();
        assert_eq!(untrusted.code(), Some(60), "{untrusted}");
        let plain = curl(None).arg(format!("http://127.0.0.1:{}/streams/v1/index.json", server.port())).run();
        plain.assert_failed();
        assert!(!plain.stdout.contains("index:1.0"), "{plain}");
        assert!(server.failed_handshakes() >= failed_before + 2, "{}", server.failed_handshakes());

        let served = server.served();
        let gets = served.iter().filter(|s| s.method == "GET" && s.status == 200).count();
        assert_eq!(gets, 3, "{served:?}");
        assert!(served.contains(&Served { method: "GET".into(), target: "/nothing".into(), status: 404 }));
        assert!(served.contains(&Served {
            method: "HEAD".into(),
            target: "/streams/v1/index.json".into(),
            status: 200
        }));
    }

    #[test]
    fn server_stops_on_drop_and_the_ca_directory_goes_with_the_ca() {
        let tree = tree();
        let ca = TestCa::new();
        let ca_dir = ca.dir().to_owned();
        assert!(ca.cert_path().starts_with(&ca_dir) && ca.cert_path().is_file());
        let server = HttpsServer::serve_with(tree.path(), &ca);
        assert_eq!(server.ca_cert(), ca.cert_path());
        let addr = server.addr;
        drop(server);
        let listening = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
            .ok()
            .filter(|s| s.local_addr().ok() != s.peer_addr().ok());
        assert!(listening.is_none(), "still listening on {addr}");
        assert!(ca_dir.is_dir(), "the CA outlives the server that used it");
        drop(ca);
        assert!(!ca_dir.exists(), "{} left behind", ca_dir.display());

        let own = HttpsServer::serve(tree.path());
        let own_dir = own.ca_cert().parent().expect("a directory").to_owned();
        drop(own);
        assert!(!own_dir.exists(), "{} left behind", own_dir.display());
    }
}
