//! The TLS settings as Go names them (versions, client auth types, cipher
//! suites, curves), each read into what rustls takes, and each name rustls
//! cannot honour refused with the reason.

use std::fmt;

use rustls::crypto::SupportedKxGroup;
use rustls::SupportedCipherSuite;
use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::parse::parse_str;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientAuth {
    NoClientCert,
    RequireAndVerifyClientCert,
    VerifyClientCertIfGiven,
}

impl fmt::Display for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClientAuth::NoClientCert => "NoClientCert",
            ClientAuth::RequireAndVerifyClientCert => "RequireAndVerifyClientCert",
            ClientAuth::VerifyClientCertIfGiven => "VerifyClientCertIfGiven",
        })
    }
}

impl<'de> Deserialize<'de> for ClientAuth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_str(d, "a client_auth_type", |s| match s {
            "NoClientCert" => Ok(ClientAuth::NoClientCert),
            "RequireAndVerifyClientCert" => Ok(ClientAuth::RequireAndVerifyClientCert),
            "VerifyClientCertIfGiven" => Ok(ClientAuth::VerifyClientCertIfGiven),
            "RequestClientCert" | "RequireAnyClientCert" | "RequireClientCert" => Err(format!(
                "{s} is not supported: it accepts client certificates without verifying \
                 them; use RequireAndVerifyClientCert or VerifyClientCertIfGiven"
            )),
            _ => Err(format!(
                "unknown client_auth_type {s:?}; expected NoClientCert, \
                 RequireAndVerifyClientCert or VerifyClientCertIfGiven"
            )),
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TlsVersion {
    Tls12,
    Tls13,
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsVersion::Tls12 => "TLS12",
            TlsVersion::Tls13 => "TLS13",
        })
    }
}

impl<'de> Deserialize<'de> for TlsVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_str(d, "a TLS version", |s| match s {
            "TLS12" => Ok(TlsVersion::Tls12),
            "TLS13" => Ok(TlsVersion::Tls13),
            "TLS10" | "TLS11" => Err(format!(
                "{s} is not supported: the TLS library (rustls) speaks only TLS12 and TLS13"
            )),
            _ => Err(format!(
                "unknown TLS version {s:?}; expected TLS12 or TLS13"
            )),
        })
    }
}

/// A cipher suite by its Go name; `None` for a TLS 1.3 suite, which, as in
/// Go, cannot be switched off.
pub(super) struct Cipher(pub(super) Option<SupportedCipherSuite>);

impl<'de> Deserialize<'de> for Cipher {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_str(d, "a cipher suite name", Cipher::parse)
    }
}

impl Cipher {
    fn parse(s: &str) -> Result<Cipher, String> {
        use rustls::crypto::ring::cipher_suite as cs;
        let suite = match s {
            "TLS_AES_128_GCM_SHA256"
            | "TLS_AES_256_GCM_SHA384"
            | "TLS_CHACHA20_POLY1305_SHA256" => None,
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => {
                Some(cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)
            }
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => {
                Some(cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)
            }
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
            | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => {
                Some(cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256)
            }
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => {
                Some(cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)
            }
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => {
                Some(cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384)
            }
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
            | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => {
                Some(cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256)
            }
            "TLS_RSA_WITH_AES_128_CBC_SHA"
            | "TLS_RSA_WITH_AES_256_CBC_SHA"
            | "TLS_RSA_WITH_AES_128_CBC_SHA256"
            | "TLS_RSA_WITH_AES_128_GCM_SHA256"
            | "TLS_RSA_WITH_AES_256_GCM_SHA384"
            | "TLS_RSA_WITH_RC4_128_SHA"
            | "TLS_RSA_WITH_3DES_EDE_CBC_SHA"
            | "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"
            | "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"
            | "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"
            | "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA"
            | "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"
            | "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"
            | "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"
            | "TLS_ECDHE_RSA_WITH_RC4_128_SHA"
            | "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA" => {
                return Err(format!(
                    "cipher suite {s} is not supported: the TLS library (rustls) offers only \
                     ECDHE suites with AES-GCM or ChaCha20-Poly1305"
                ))
            }
            _ => {
                return Err(format!(
                    "unknown cipher suite {s:?}; supported: \
                     TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, \
                     TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, \
                     TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, \
                     TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, \
                     TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, \
                     TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
                ))
            }
        };
        Ok(Cipher(suite))
    }
}

pub(super) struct Curve(pub(super) &'static dyn SupportedKxGroup);

impl<'de> Deserialize<'de> for Curve {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use rustls::crypto::ring::kx_group;
        parse_str(d, "a curve name", |s| match s {
            "X25519" => Ok(Curve(kx_group::X25519)),
            "CurveP256" => Ok(Curve(kx_group::SECP256R1)),
            "CurveP384" => Ok(Curve(kx_group::SECP384R1)),
            "CurveP521" => Err(
                "CurveP521 is not supported by the TLS library (rustls with \
                 ring); use X25519, CurveP256 or CurveP384"
                    .to_owned(),
            ),
            _ => Err(format!(
                "unknown curve {s:?}; expected X25519, CurveP256 or CurveP384"
            )),
        })
    }
}

/// A key this server cannot honour; refused wherever it appears.
pub(super) struct Unsupported;

impl<'de> Deserialize<'de> for Unsupported {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let _ = serde::de::IgnoredAny::deserialize(d)?;
        Err(de::Error::custom(
            "client_allowed_sans is not supported by this exporter; \
             restrict clients with the CA in client_ca_file instead",
        ))
    }
}
