//! An https site probed by address with the domain pinned: the certificate
//! only matches the domain, so the probe works only if SNI (and Host) stay
//! the domain while the connection goes to the address.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use badgateway_exporter::config::{Config, Path};
use badgateway_exporter::prober::probe::http::{probe, Destination};
use badgateway_exporter::prober::probe::ErrorKind;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DOMAIN: &str = "www.example.test";

struct Seen {
    sni: Option<String>,
    host: Option<String>,
}

/// A CA, and a server certificate for DOMAIN only, signed by it.
fn certificates(
    dir: &std::path::Path,
) -> (
    std::path::PathBuf,
    CertificateDer<'static>,
    PrivateKeyDer<'static>,
) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![DOMAIN.to_owned()])
        .unwrap()
        .signed_by(&key, &ca_cert, &ca_key)
        .unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();
    (
        ca_file,
        leaf.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

/// A TLS server on 127.0.0.1:0 that answers 200 and records what it saw.
async fn server(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> (SocketAddr, Arc<Mutex<Seen>>) {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Seen {
        sni: None,
        host: None,
    }));
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                record.lock().unwrap().sni = tls.get_ref().1.server_name().map(str::to_owned);
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                record.lock().unwrap().host = head
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("host: ")
                            .or_else(|| l.strip_prefix("Host: "))
                    })
                    .map(str::to_owned);
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (addr, seen)
}

fn site(port: u16, tls: &str) -> badgateway_exporter::config::Site {
    let yaml = format!(
        "sites:\n  - name: secure\n    url: https://{DOMAIN}:{port}/\n    origin: [127.0.0.1]\n    tls: {tls}\n"
    );
    Config::parse(yaml.as_bytes(), "test.yml")
        .unwrap_or_else(|e| panic!("{e}"))
        .sites
        .remove(0)
}

async fn run(
    site: &badgateway_exporter::config::Site,
) -> badgateway_exporter::prober::probe::HttpOutcome {
    let tls = badgateway_exporter::prober::tls::client_config(&site.tls).unwrap();
    probe(
        site,
        Path::Origin,
        Destination::Pinned(&site.origin[0]),
        &tls,
    )
    .await
}

#[tokio::test]
async fn pinned_address_keeps_sni_and_host_the_domain() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, cert, key) = certificates(dir.path());
    let (addr, seen) = server(cert, key).await;
    let s = site(addr.port(), &format!("{{ca_file: {}}}", ca_file.display()));
    let out = run(&s).await;
    assert_eq!(out.error, None, "{:?}", out.detail);
    assert_eq!(out.status, Some(200));
    assert!(out.phases.tls.unwrap() > std::time::Duration::ZERO);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.sni.as_deref(), Some(DOMAIN));
    assert_eq!(
        seen.host.as_deref(),
        Some(format!("{DOMAIN}:{}", addr.port()).as_str())
    );
}

#[tokio::test]
async fn unknown_issuer_is_a_tls_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = certificates(dir.path());
    let (addr, _) = server(cert, key).await;
    let out = run(&site(addr.port(), "{}")).await;
    assert_eq!(out.error, Some(ErrorKind::Tls), "{:?}", out.detail);
    assert_eq!(out.status, None);
}

#[tokio::test]
async fn a_name_the_certificate_does_not_hold_is_a_tls_error() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, cert, key) = certificates(dir.path());
    let (addr, _) = server(cert, key).await;
    let tls = format!(
        "{{ca_file: {}, server_name: other.example.test}}",
        ca_file.display()
    );
    let out = run(&site(addr.port(), &tls)).await;
    assert_eq!(out.error, Some(ErrorKind::Tls), "{:?}", out.detail);
}

#[tokio::test]
async fn insecure_skip_verify_accepts_any_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = certificates(dir.path());
    let (addr, _) = server(cert, key).await;
    let out = run(&site(addr.port(), "{insecure_skip_verify: true}")).await;
    assert_eq!(out.error, None, "{:?}", out.detail);
    assert_eq!(out.status, Some(200));
}

/// An http url whose origin is asked over https on its own port: TLS with
/// the url's host as SNI, and the url's host (no port) in Host.
#[tokio::test]
async fn origin_scheme_https_under_an_http_url_keeps_sni_and_host() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, cert, key) = certificates(dir.path());
    let (addr, seen) = server(cert, key).await;
    let yaml = format!(
        "sites:\n  - name: secure\n    url: http://{DOMAIN}/\n    origin: [127.0.0.1]\n    \
         origin_scheme: https\n    origin_port: {}\n    tls: {{ca_file: {}}}\n",
        addr.port(),
        ca_file.display()
    );
    let s = Config::parse(yaml.as_bytes(), "test.yml")
        .unwrap_or_else(|e| panic!("{e}"))
        .sites
        .remove(0);
    let out = run(&s).await;
    assert_eq!(out.error, None, "{:?}", out.detail);
    assert!(out.phases.tls.is_some());
    let seen = seen.lock().unwrap();
    assert_eq!(seen.sni.as_deref(), Some(DOMAIN));
    assert_eq!(seen.host.as_deref(), Some(DOMAIN));
}
