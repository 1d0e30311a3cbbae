// Why one file: one subject, --web.config.file: TLS, client certificates,
// basic auth and headers against real servers, sharing one certificate
// maker.
//! `--web.config.file`: real servers on 127.0.0.1:0, real TLS with a CA and
//! certificates made here, basic auth against bcrypt hashes made here.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use badgateway_exporter::web::{serve, WebConfig, WebConfigError};
use common::http::base64;
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------
// Certificates.

/// A CA with a server certificate for localhost and a client certificate,
/// written as PEM files in a temporary directory; plus a second CA with its
/// own client certificate, which the server does not trust.
struct Pki {
    dir: tempfile::TempDir,
    ca: CertificateDer<'static>,
    client_chain: Vec<CertificateDer<'static>>,
    client_key: PrivateKeyDer<'static>,
    stranger_chain: Vec<CertificateDer<'static>>,
    stranger_key: PrivateKeyDer<'static>,
}

fn make_ca() -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    (cert, key)
}

fn make_client(
    ca: &rcgen::Certificate,
    ca_key: &KeyPair,
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["client.example.test".to_owned()]).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, ca, ca_key).unwrap();
    (
        vec![cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let (ca, ca_key) = make_ca();
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&server_key, &ca, &ca_key)
            .unwrap();
        std::fs::write(dir.path().join("ca.crt"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("server.crt"), server.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), server_key.serialize_pem()).unwrap();
        let (client_chain, client_key) = make_client(&ca, &ca_key);
        let (other_ca, other_key) = make_ca();
        let (stranger_chain, stranger_key) = make_client(&other_ca, &other_key);
        Pki {
            dir,
            ca: ca.der().clone(),
            client_chain,
            client_key,
            stranger_chain,
            stranger_key,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write `web.yml` in the directory and load it.
    fn load(&self, yaml: &str) -> Result<WebConfig, WebConfigError> {
        let file = write_config(self.path(), yaml);
        WebConfig::load(&file)
    }
}

fn write_config(dir: &Path, yaml: &str) -> PathBuf {
    let file = dir.join("web.yml");
    std::fs::write(&file, yaml).unwrap();
    file
}

// ---------------------------------------------------------------------------
// A server and clients.

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(web: Option<WebConfig>) -> Server {
        let router = Router::new()
            .route("/", get(|| async { "hello\n" }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "slow\n"
                }),
            )
            .route(
                "/forever",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    "never\n"
                }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, router, web.map(Arc::new), async {
            let _ = rx.await;
        }));
        Server {
            addr,
            stop: Some(tx),
            task,
        }
    }

    /// Shut down and wait; returns how long serve took to return.
    async fn shutdown(mut self) -> Duration {
        let started = Instant::now();
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(15), &mut self.task)
            .await
            .expect("serve did not return after shutdown")
            .unwrap()
            .unwrap();
        started.elapsed()
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request, `Connection: close`, read to the end. `Err` when
/// the stream fails or does not hold an HTTP response.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    path: &str,
    auth: Option<(&str, &str)>,
) -> Result<Reply, String> {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some((user, pass)) = auth {
        let token = base64(format!("{user}:{pass}").as_bytes());
        req.push_str(&format!("Authorization: Basic {token}\r\n"));
    }
    req.push_str("\r\n");
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| format!("writing: {e}"))?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .map_err(|_| "timed out reading".to_owned())?
        .map_err(|e| format!("reading: {e}"))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP response: {text:?}"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    if !status_line.starts_with("HTTP/1.") {
        return Err(format!("no HTTP response: {text:?}"));
    }
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok(Reply {
        status,
        headers,
        body: body.to_owned(),
    })
}

async fn http_get(
    addr: SocketAddr,
    path: &str,
    auth: Option<(&str, &str)>,
) -> Result<Reply, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    exchange(tcp, path, auth).await
}

fn tls_client(
    ca: &CertificateDer<'static>,
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match client {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn https_get(
    addr: SocketAddr,
    connector: &tokio_rustls::TlsConnector,
    path: &str,
    auth: Option<(&str, &str)>,
) -> Result<Reply, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    exchange(tls, path, auth).await
}

const TLS_YAML: &str = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";

// ---------------------------------------------------------------------------
// Serving.

#[tokio::test]
async fn without_web_config_serves_plain_http() {
    let server = Server::start(None).await;
    let reply = http_get(server.addr, "/", None).await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "hello\n");
    assert!(server.shutdown().await < Duration::from_secs(2));
}

#[tokio::test]
async fn tls_serves_clients_trusting_the_ca_and_refuses_plain_http() {
    let pki = Pki::new();
    let web = pki.load(TLS_YAML).unwrap();
    assert!(web.tls_enabled());
    assert!(!web.basic_auth_enabled());
    let server = Server::start(Some(web)).await;

    let reply = https_get(server.addr, &tls_client(&pki.ca, None), "/", None)
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "hello\n");

    let plain = http_get(server.addr, "/", None).await;
    assert!(plain.is_err(), "plain HTTP got an HTTP answer: {plain:?}");

    // A failed handshake drops only that connection.
    let again = https_get(server.addr, &tls_client(&pki.ca, None), "/", None)
        .await
        .unwrap();
    assert_eq!(again.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn inline_cert_and_key_work_too() {
    let pki = Pki::new();
    let indent = |s: String| s.lines().map(|l| format!("    {l}\n")).collect::<String>();
    let cert = std::fs::read_to_string(pki.path().join("server.crt")).unwrap();
    let key = std::fs::read_to_string(pki.path().join("server.key")).unwrap();
    let yaml = format!(
        "tls_server_config:\n  cert: |\n{}  key: |\n{}",
        indent(cert),
        indent(key)
    );
    let server = Server::start(Some(pki.load(&yaml).unwrap())).await;
    let reply = https_get(server.addr, &tls_client(&pki.ca, None), "/", None)
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn tls13_only_still_serves() {
    let pki = Pki::new();
    let yaml = format!(
        "{TLS_YAML}  min_version: TLS13\n  curve_preferences: [X25519, CurveP256]\n  \
         cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n"
    );
    let server = Server::start(Some(pki.load(&yaml).unwrap())).await;
    let reply = https_get(server.addr, &tls_client(&pki.ca, None), "/", None)
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn basic_auth_and_headers() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let yaml = format!(
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    \
         X-Content-Type-Options: nosniff\n  http2: false\n\
         basic_auth_users:\n  alice: {hash}\n  bob: {hash}\n"
    );
    let web = WebConfig::load(&write_config(dir.path(), &yaml)).unwrap();
    assert!(!web.tls_enabled());
    assert!(web.basic_auth_enabled());
    let server = Server::start(Some(web)).await;
    let addr = server.addr;

    let none = http_get(addr, "/", None).await.unwrap();
    assert_eq!(none.status, 401);
    assert_eq!(none.header("WWW-Authenticate"), Some("Basic"));
    assert_eq!(none.header("X-Frame-Options"), Some("deny"));

    let wrong = http_get(addr, "/", Some(("alice", "guess"))).await.unwrap();
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.header("WWW-Authenticate"), Some("Basic"));

    let stranger = http_get(addr, "/", Some(("mallory", "s3cret")))
        .await
        .unwrap();
    assert_eq!(stranger.status, 401);
    // Twice: the second unknown user is checked against the dummy hash.
    let stranger = http_get(addr, "/", Some(("mallory", "s3cret")))
        .await
        .unwrap();
    assert_eq!(stranger.status, 401);

    let empty_user = http_get(addr, "/", Some(("", "s3cret"))).await.unwrap();
    assert_eq!(empty_user.status, 401);

    for _ in 0..2 {
        // The second time from the cache.
        let right = http_get(addr, "/", Some(("alice", "s3cret")))
            .await
            .unwrap();
        assert_eq!(right.status, 200);
        assert_eq!(right.body, "hello\n");
        assert_eq!(right.header("X-Frame-Options"), Some("deny"));
        assert_eq!(right.header("X-Content-Type-Options"), Some("nosniff"));
    }
    let bob = http_get(addr, "/", Some(("bob", "s3cret"))).await.unwrap();
    assert_eq!(bob.status, 200);
    // A cached success for alice is no pass for a wrong password.
    let wrong = http_get(addr, "/", Some(("alice", "s3cret ")))
        .await
        .unwrap();
    assert_eq!(wrong.status, 401);
    // Malformed headers are plain refusals.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Basic !!!\r\n\r\n",
    )
    .await
    .unwrap();
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).await.unwrap();
    assert!(raw.starts_with("HTTP/1.1 401"), "{raw}");
    server.shutdown().await;
}

#[tokio::test]
async fn basic_auth_over_tls() {
    let pki = Pki::new();
    let hash = bcrypt::hash("pw", 4).unwrap();
    let yaml = format!("{TLS_YAML}basic_auth_users:\n  alice: '{hash}'\n");
    let server = Server::start(Some(pki.load(&yaml).unwrap())).await;
    let client = tls_client(&pki.ca, None);
    let none = https_get(server.addr, &client, "/", None).await.unwrap();
    assert_eq!(none.status, 401);
    let right = https_get(server.addr, &client, "/", Some(("alice", "pw")))
        .await
        .unwrap();
    assert_eq!(right.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn rate_limit_answers_429_past_the_burst() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "rate_limit:\n  interval: 1h\n  burst: 2\n\
                http_server_config:\n  headers:\n    X-Frame-Options: sameorigin\n";
    let web = WebConfig::load(&write_config(dir.path(), yaml)).unwrap();
    let server = Server::start(Some(web)).await;
    for _ in 0..2 {
        assert_eq!(http_get(server.addr, "/", None).await.unwrap().status, 200);
    }
    let refused = http_get(server.addr, "/", None).await.unwrap();
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("X-Frame-Options"), Some("sameorigin"));
    server.shutdown().await;
}

#[tokio::test]
async fn client_certificate_required() {
    let pki = Pki::new();
    let yaml = format!(
        "{TLS_YAML}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
    );
    let server = Server::start(Some(pki.load(&yaml).unwrap())).await;

    let anonymous = https_get(server.addr, &tls_client(&pki.ca, None), "/", None).await;
    assert!(anonymous.is_err(), "no client cert, yet: {anonymous:?}");

    let stranger = tls_client(
        &pki.ca,
        Some((pki.stranger_chain.clone(), pki.stranger_key.clone_key())),
    );
    let refused = https_get(server.addr, &stranger, "/", None).await;
    assert!(
        refused.is_err(),
        "a client cert from another CA, yet: {refused:?}"
    );

    let client = tls_client(
        &pki.ca,
        Some((pki.client_chain.clone(), pki.client_key.clone_key())),
    );
    let reply = https_get(server.addr, &client, "/", None).await.unwrap();
    assert_eq!(reply.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn client_certificate_verified_if_given() {
    let pki = Pki::new();
    let ca_pem = std::fs::read_to_string(pki.path().join("ca.crt")).unwrap();
    let indented: String = ca_pem.lines().map(|l| format!("    {l}\n")).collect();
    let yaml = format!(
        "{TLS_YAML}  client_auth_type: VerifyClientCertIfGiven\n  client_ca: |\n{indented}"
    );
    let server = Server::start(Some(pki.load(&yaml).unwrap())).await;

    let anonymous = https_get(server.addr, &tls_client(&pki.ca, None), "/", None)
        .await
        .unwrap();
    assert_eq!(anonymous.status, 200);

    let stranger = tls_client(
        &pki.ca,
        Some((pki.stranger_chain.clone(), pki.stranger_key.clone_key())),
    );
    let refused = https_get(server.addr, &stranger, "/", None).await;
    assert!(
        refused.is_err(),
        "a client cert from another CA, yet: {refused:?}"
    );

    let client = tls_client(
        &pki.ca,
        Some((pki.client_chain.clone(), pki.client_key.clone_key())),
    );
    assert_eq!(
        https_get(server.addr, &client, "/", None)
            .await
            .unwrap()
            .status,
        200
    );
    server.shutdown().await;
}

// ---------------------------------------------------------------------------
// Shutdown.

#[tokio::test]
async fn shutdown_is_prompt_with_idle_connections() {
    let pki = Pki::new();
    for web in [None, Some(pki.load(TLS_YAML).unwrap())] {
        let tls = web.is_some();
        let server = Server::start(web).await;
        // An idle keep-alive connection after one request, and one that
        // never says anything (for TLS: a handshake never begun).
        let mut idle = TcpStream::connect(server.addr).await.unwrap();
        if !tls {
            idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let mut buf = [0u8; 1024];
            let n = idle.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        }
        let _silent = TcpStream::connect(server.addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let took = server.shutdown().await;
        assert!(
            took < Duration::from_secs(2),
            "tls={tls}: shutdown took {took:?}"
        );
    }
}

#[tokio::test]
async fn shutdown_lets_a_request_in_flight_finish() {
    let server = Server::start(None).await;
    let addr = server.addr;
    let slow = tokio::spawn(async move { http_get(addr, "/slow", None).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let took = server.shutdown().await;
    let reply = slow.await.unwrap().unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "slow\n");
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    // Nothing listens any more.
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn shutdown_is_bounded_when_a_request_never_ends() {
    let server = Server::start(None).await;
    let addr = server.addr;
    let _forever = tokio::spawn(async move { http_get(addr, "/forever", None).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let took = server.shutdown().await;
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(7),
        "shutdown took {took:?}"
    );
}

// ---------------------------------------------------------------------------
// Load errors: each one clear, none a panic.

fn load_err(dir: &Path, yaml: &str) -> String {
    match WebConfig::load(&write_config(dir, yaml)) {
        Ok(w) => panic!("loaded {yaml:?}: {w:?}"),
        Err(e) => e.to_string(),
    }
}

fn assert_mentions(message: &str, parts: &[&str]) {
    for p in parts {
        assert!(message.contains(p), "{message:?} does not mention {p:?}");
    }
}

#[test]
fn unknown_key_names_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let e = load_err(
        dir.path(),
        "tls_server_config:\n  cert_file: a\n  key_file: b\n  cert_fiel: c\n",
    );
    assert_mentions(&e, &["web.yml", "cert_fiel", "line 4", "tls_server_config"]);
    let e = load_err(dir.path(), "basic_auth_user:\n  alice: x\n");
    assert_mentions(&e, &["basic_auth_user", "line 1"]);
}

#[test]
fn missing_cert_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let e = load_err(
        dir.path(),
        "tls_server_config:\n  cert_file: nowhere/server.crt\n  key_file: server.key\n",
    );
    let expected = dir.path().join("nowhere/server.crt");
    assert_mentions(
        &e,
        &[
            "web.yml",
            "tls_server_config.cert_file",
            &expected.display().to_string(),
        ],
    );
}

#[test]
fn bad_bcrypt_hash() {
    let dir = tempfile::tempdir().unwrap();
    let e = load_err(dir.path(), "basic_auth_users:\n  alice: notahash\n");
    assert_mentions(
        &e,
        &["web.yml", "basic_auth_users.alice", "bcrypt", "line 2"],
    );
    assert!(!e.contains("notahash"), "the hash is quoted: {e}");
}

#[test]
fn old_tls_versions_are_refused() {
    let pki = Pki::new();
    for v in ["TLS10", "TLS11"] {
        let e = pki
            .load(&format!("{TLS_YAML}  min_version: {v}\n"))
            .unwrap_err()
            .to_string();
        assert_mentions(
            &e,
            &["web.yml", "min_version", v, "not supported", "line 4"],
        );
    }
    let e = pki
        .load(&format!(
            "{TLS_YAML}  min_version: TLS13\n  max_version: TLS12\n"
        ))
        .unwrap_err()
        .to_string();
    assert_mentions(&e, &["min_version TLS13 is above max_version TLS12"]);
}

#[test]
fn other_refusals_are_clear() {
    let pki = Pki::new();
    tls_settings_refused(&pki);
    keys_refused(&pki);
    headers_and_malformed_files_refused(&pki);
}

/// TLS settings not supported, missing or contradicting each other.
fn tls_settings_refused(pki: &Pki) {
    let cases: &[(&str, &[&str])] = &[
        (
            "  client_auth_type: RequireAnyClientCert\n  client_ca_file: ca.crt\n",
            &["client_auth_type", "RequireAnyClientCert is not supported"],
        ),
        (
            "  client_auth_type: RequestClientCert\n",
            &["RequestClientCert is not supported"],
        ),
        ("  client_auth_type: Maybe\n", &["unknown client_auth_type"]),
        (
            "  client_auth_type: RequireAndVerifyClientCert\n",
            &["client_auth_type", "needs client_ca_file"],
        ),
        (
            "  client_ca_file: ca.crt\n",
            &["client_ca_file", "NoClientCert"],
        ),
        (
            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: server.key\n",
            &["client_ca_file", "holds no PEM certificate"],
        ),
        (
            "  cert: inline\n",
            &["cert_file and cert are mutually exclusive"],
        ),
        (
            "  client_allowed_sans: [a.example]\n",
            &["client_allowed_sans is not supported"],
        ),
        (
            "  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n",
            &["TLS_RSA_WITH_AES_128_CBC_SHA is not supported"],
        ),
        (
            "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
            &["cipher_suites", "no TLS 1.2 cipher suite"],
        ),
        (
            "  curve_preferences: [CurveP521]\n",
            &["CurveP521 is not supported"],
        ),
        ("  min_version: SSL3\n", &["unknown TLS version"]),
    ];
    for (extra, parts) in cases {
        let e = pki
            .load(&format!("{TLS_YAML}{extra}"))
            .expect_err(extra)
            .to_string();
        assert_mentions(&e, &["web.yml"]);
        assert_mentions(&e, parts);
    }
}

/// A key that does not belong to the certificate, is not a private key, or
/// is missing.
fn keys_refused(pki: &Pki) {
    std::fs::write(
        pki.path().join("other.key"),
        KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    let e = pki
        .load("tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n")
        .unwrap_err()
        .to_string();
    assert_mentions(&e, &["server.crt", "other.key", "does not belong"]);
    let e = pki
        .load("tls_server_config:\n  cert_file: server.crt\n  key_file: ca.crt\n")
        .unwrap_err()
        .to_string();
    assert_mentions(&e, &["key_file", "private key"]);
    let e = pki
        .load("tls_server_config:\n  cert_file: server.crt\n")
        .unwrap_err()
        .to_string();
    assert_mentions(&e, &["missing one of key_file or key"]);
}

/// Headers that may not be set, a bad rate limit interval, malformed YAML.
fn headers_and_malformed_files_refused(pki: &Pki) {
    let headers: &[(&str, &[&str])] = &[
        ("X-Custom: yes", &["\"X-Custom\" can not be configured"]),
        (
            "X-Frame-Options: always",
            &["invalid value \"always\" for X-Frame-Options"],
        ),
    ];
    for (h, parts) in headers {
        let e = pki
            .load(&format!("http_server_config:\n  headers:\n    {h}\n"))
            .expect_err(h)
            .to_string();
        assert_mentions(&e, &["web.yml", "http_server_config.headers"]);
        assert_mentions(&e, parts);
    }
    let e = pki
        .load("rate_limit:\n  interval: soon\n")
        .unwrap_err()
        .to_string();
    assert_mentions(&e, &["rate_limit.interval", "invalid duration"]);
    let e = pki.load("tls_server_config: [\n").unwrap_err().to_string();
    assert_mentions(&e, &["web.yml", "line"]);
    let e = pki
        .load("tls_server_config: [a]\n")
        .unwrap_err()
        .to_string();
    assert_mentions(
        &e,
        &["web.yml", "line 1", "expected a mapping of TLS settings"],
    );
}

#[test]
fn missing_file_and_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = WebConfig::load(&dir.path().join("absent.yml"))
        .unwrap_err()
        .to_string();
    assert_mentions(&e, &["absent.yml"]);
    // An empty file, or a TLS section with no certificate: plain HTTP, as
    // in exporter-toolkit.
    let web = WebConfig::load(&write_config(dir.path(), "")).unwrap();
    assert!(!web.tls_enabled() && !web.basic_auth_enabled());
    let web = WebConfig::load(&write_config(
        dir.path(),
        "tls_server_config:\n  min_version: TLS13\n",
    ))
    .unwrap();
    assert!(!web.tls_enabled());
}
