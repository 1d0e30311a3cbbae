//! The TLS side of the web configuration: the rustls `ServerConfig` made
//! from `tls_server_config`, with its certificates and key, protocol
//! versions, cipher suites and curves, and client certificate verification.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};

use serde::Deserialize;

use super::parse::{set, WebConfigError};
use super::tls_names::{Cipher, ClientAuth, Curve, TlsVersion, Unsupported};

/// The section's name, as errors about it show it.
const S: &str = "tls_server_config";

/// How errors name one of the section's keys: `tls_server_config.<name>`.
fn k(name: &str) -> String {
    format!("{S}.{name}")
}

/// Words an error about a key (`invalid(key, why)`).
type Invalid<'a> = &'a dyn Fn(&str, String) -> WebConfigError;

/// The rustls configuration for an enabled `tls_server_config` section;
/// `invalid` words an error about one of its keys.
///
/// The checks run in this order, so the first error reported stays the
/// same: certificate and key, protocol versions, cipher suites, curves,
/// then client certificates.
pub(super) fn server_config(
    raw: RawTls,
    dir: &Path,
    invalid: Invalid,
) -> Result<ServerConfig, WebConfigError> {
    let identity = Identity::read(&raw, dir, invalid)?;
    let (min, versions) = protocol_versions(&raw, invalid)?;

    // The provider: ring, narrowed to the configured suites and curves.
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(ciphers) = &raw.cipher_suites {
        provider.cipher_suites = cipher_suites(&provider, ciphers, min, invalid)?;
    }
    if let Some(curves) = &raw.curve_preferences {
        provider.kx_groups = kx_groups(curves, invalid)?;
    }
    let provider = Arc::new(provider);

    let client_ca = pem_source(
        dir,
        set(&raw.client_ca_file),
        set(&raw.client_ca),
        "client_ca_file",
        "client_ca",
        invalid,
    )?;
    let auth = raw.client_auth_type.unwrap_or(ClientAuth::NoClientCert);
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| invalid(S, e.to_string()))?;
    let builder = match client_verifier(auth, client_ca, &provider, invalid)? {
        None => builder.with_no_client_auth(),
        Some(verifier) => builder.with_client_cert_verifier(verifier),
    };
    let mut config = identity.install(builder, invalid)?;
    config.ignore_client_order = raw.prefer_server_cipher_suites.unwrap_or(true);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The server's certificate chain and private key, with how to name their
/// sources in errors.
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_shown: String,
    key_shown: String,
}

impl Identity {
    /// Reads and parses the chain and key: each from a file or inline PEM,
    /// not both. Key material is never quoted in an error.
    fn read(raw: &RawTls, dir: &Path, invalid: Invalid) -> Result<Identity, WebConfigError> {
        let required =
            |file: &Option<String>, inline: &Option<String>, keys: (&'static str, &'static str)| {
                pem_source(dir, set(file), set(inline), keys.0, keys.1, invalid)?
                    .ok_or_else(|| invalid(S, format!("missing one of {} or {}", keys.0, keys.1)))
            };
        let cert_pem = required(&raw.cert_file, &raw.cert, ("cert_file", "cert"))?;
        let key_pem = required(&raw.key_file, &raw.key, ("key_file", "key"))?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem.bytes)
            .collect::<Result<_, _>>()
            .map_err(|e| invalid(&k(cert_pem.key), format!("{}: {e}", cert_pem.shown)))?;
        if chain.is_empty() {
            return Err(invalid(
                &k(cert_pem.key),
                format!("{} holds no PEM certificate", cert_pem.shown),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem.bytes).map_err(|e| {
            let why = match e {
                rustls::pki_types::pem::Error::NoItemsFound => "no PEM private key found".into(),
                other => format!("not a usable PEM private key ({other})"),
            };
            invalid(&k(key_pem.key), format!("{}: {why}", key_pem.shown))
        })?;
        Ok(Identity {
            chain,
            key,
            cert_shown: cert_pem.shown,
            key_shown: key_pem.shown,
        })
    }

    /// Gives the builder the chain and key; refuses a key that does not
    /// belong to the certificate.
    fn install(
        self,
        builder: rustls::ConfigBuilder<ServerConfig, rustls::server::WantsServerCert>,
        invalid: Invalid,
    ) -> Result<ServerConfig, WebConfigError> {
        let Identity {
            chain,
            key,
            cert_shown,
            key_shown,
        } = self;
        builder.with_single_cert(chain, key).map_err(|e| {
            let why = match e {
                rustls::Error::InconsistentKeys(_) => {
                    "the private key does not belong to the certificate".to_owned()
                }
                other => other.to_string(),
            };
            invalid(
                S,
                format!("certificate {cert_shown} with key {key_shown}: {why}"),
            )
        })
    }
}

/// `min_version` (default TLS 1.2) and the protocol versions from it to
/// `max_version` (default TLS 1.3).
fn protocol_versions(
    raw: &RawTls,
    invalid: Invalid,
) -> Result<(TlsVersion, Vec<&'static SupportedProtocolVersion>), WebConfigError> {
    let min = raw.min_version.unwrap_or(TlsVersion::Tls12);
    let max = raw.max_version.unwrap_or(TlsVersion::Tls13);
    if min > max {
        return Err(invalid(
            S,
            format!("min_version {min} is above max_version {max}"),
        ));
    }
    let versions = [
        (TlsVersion::Tls12, &rustls::version::TLS12),
        (TlsVersion::Tls13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| (min..=max).contains(v))
    .map(|(_, p)| p)
    .collect();
    Ok((min, versions))
}

/// The provider's TLS 1.3 suites (which, as in Go, `cipher_suites` does not
/// change) followed by the configured TLS 1.2 suites. With TLS 1.2 enabled,
/// at least one TLS 1.2 suite is required.
fn cipher_suites(
    provider: &CryptoProvider,
    ciphers: &[Cipher],
    min: TlsVersion,
    invalid: Invalid,
) -> Result<Vec<SupportedCipherSuite>, WebConfigError> {
    let mut suites: Vec<SupportedCipherSuite> = provider
        .cipher_suites
        .iter()
        .filter(|s| s.tls13().is_some())
        .copied()
        .collect();
    let mut tls12 = 0;
    for c in ciphers.iter().filter_map(|c| c.0) {
        if !suites.contains(&c) {
            suites.push(c);
            tls12 += 1;
        }
    }
    if tls12 == 0 && min == TlsVersion::Tls12 {
        return Err(invalid(
            &k("cipher_suites"),
            "names no TLS 1.2 cipher suite, so no TLS 1.2 client could connect; \
             add one or set min_version: TLS13"
                .into(),
        ));
    }
    Ok(suites)
}

/// The configured curves in order, each once; an empty list is refused.
fn kx_groups(
    curves: &[Curve],
    invalid: Invalid,
) -> Result<Vec<&'static dyn SupportedKxGroup>, WebConfigError> {
    let mut groups: Vec<&'static dyn SupportedKxGroup> = Vec::new();
    for c in curves {
        if !groups.iter().any(|g| g.name() == c.0.name()) {
            groups.push(c.0);
        }
    }
    if groups.is_empty() {
        return Err(invalid(
            &k("curve_preferences"),
            "is empty; leave it out for the default curves".into(),
        ));
    }
    Ok(groups)
}

/// The client certificate verifier `client_auth_type` asks for, or `None`
/// for `NoClientCert`. A client CA goes with verification and only with it.
fn client_verifier(
    auth: ClientAuth,
    client_ca: Option<Pem>,
    provider: &Arc<CryptoProvider>,
    invalid: Invalid,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, WebConfigError> {
    let ca = match (auth, client_ca) {
        (ClientAuth::NoClientCert, None) => return Ok(None),
        (ClientAuth::NoClientCert, Some(ca)) => {
            return Err(invalid(
                &k(ca.key),
                "a client CA is configured but client_auth_type is NoClientCert; \
                 set client_auth_type: RequireAndVerifyClientCert"
                    .into(),
            ))
        }
        (_, None) => {
            return Err(invalid(
                &k("client_auth_type"),
                format!("{auth} needs client_ca_file or client_ca to verify certificates with"),
            ))
        }
        (_, Some(ca)) => ca,
    };
    let roots = client_roots(&ca, invalid)?;
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider));
    let verifier = if auth == ClientAuth::VerifyClientCertIfGiven {
        verifier.allow_unauthenticated()
    } else {
        verifier
    };
    let verifier = verifier
        .build()
        .map_err(|e| invalid(&k(ca.key), e.to_string()))?;
    Ok(Some(verifier))
}

/// The client CA's certificates as a root store; it must hold at least one.
fn client_roots(ca: &Pem, invalid: Invalid) -> Result<RootCertStore, WebConfigError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca.bytes) {
        let cert = cert.map_err(|e| invalid(&k(ca.key), format!("{}: {e}", ca.shown)))?;
        roots
            .add(cert)
            .map_err(|e| invalid(&k(ca.key), format!("{}: {e}", ca.shown)))?;
    }
    if roots.is_empty() {
        return Err(invalid(
            &k(ca.key),
            format!("{} holds no PEM certificate", ca.shown),
        ));
    }
    Ok(roots)
}

/// PEM text from a file or inline, and how to name it in errors.
struct Pem {
    bytes: Vec<u8>,
    /// The key it came from, without the section: `cert_file`, `cert`, ...
    key: &'static str,
    shown: String,
}

/// The PEM text named by a `*_file` key (relative to `dir`) or given inline,
/// `None` if neither is set; both set is an error.
fn pem_source(
    dir: &Path,
    file: Option<&str>,
    inline: Option<&str>,
    file_key: &'static str,
    inline_key: &'static str,
    invalid: Invalid,
) -> Result<Option<Pem>, WebConfigError> {
    match (file, inline) {
        (Some(_), Some(_)) => Err(invalid(
            "tls_server_config",
            format!("{file_key} and {inline_key} are mutually exclusive: set one"),
        )),
        (Some(f), None) => {
            let full = if Path::new(f).is_absolute() {
                PathBuf::from(f)
            } else {
                dir.join(f)
            };
            let shown = full.display().to_string();
            let bytes = std::fs::read(&full).map_err(|e| {
                invalid(
                    &format!("tls_server_config.{file_key}"),
                    format!("reading {shown}: {e}"),
                )
            })?;
            Ok(Some(Pem {
                bytes,
                key: file_key,
                shown,
            }))
        }
        (None, Some(text)) => Ok(Some(Pem {
            bytes: text.as_bytes().to_vec(),
            key: inline_key,
            shown: format!("inline {inline_key}"),
        })),
        (None, None) => Ok(None),
    }
}

/// The `tls_server_config` section as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a mapping of TLS settings")]
pub(super) struct RawTls {
    #[serde(default)]
    pub(super) cert: Option<String>,
    #[serde(default)]
    pub(super) key: Option<String>,
    #[serde(default)]
    pub(super) client_ca: Option<String>,
    #[serde(default)]
    pub(super) cert_file: Option<String>,
    #[serde(default)]
    pub(super) key_file: Option<String>,
    #[serde(default)]
    pub(super) client_auth_type: Option<ClientAuth>,
    #[serde(default)]
    pub(super) client_ca_file: Option<String>,
    /// Never read: any value is refused while deserializing.
    #[serde(default, rename = "client_allowed_sans")]
    _client_allowed_sans: Option<Unsupported>,
    #[serde(default)]
    pub(super) min_version: Option<TlsVersion>,
    #[serde(default)]
    pub(super) max_version: Option<TlsVersion>,
    #[serde(default)]
    pub(super) cipher_suites: Option<Vec<Cipher>>,
    #[serde(default)]
    pub(super) curve_preferences: Option<Vec<Curve>>,
    #[serde(default)]
    pub(super) prefer_server_cipher_suites: Option<bool>,
}

impl RawTls {
    /// exporter-toolkit's test: with none of these, the server is plain HTTP.
    pub(super) fn is_enabled(&self) -> bool {
        set(&self.cert).is_some()
            || set(&self.key).is_some()
            || set(&self.client_ca).is_some()
            || set(&self.cert_file).is_some()
            || set(&self.key_file).is_some()
            || set(&self.client_ca_file).is_some()
            || self.client_auth_type.is_some()
    }

    pub(super) fn has_any_setting(&self) -> bool {
        self.min_version.is_some()
            || self.max_version.is_some()
            || self.cipher_suites.is_some()
            || self.curve_preferences.is_some()
            || self.prefer_server_cipher_suites.is_some()
    }
}
