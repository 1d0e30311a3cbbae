//! Certificates for TLS test servers: a CA, and leaves for one name signed
//! by it, valid or already expired.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair};

/// A test certificate authority.
pub struct TestCa {
    cert: Certificate,
    key: KeyPair,
}

impl TestCa {
    /// A new CA, its certificate written to `dir/ca.pem`.
    pub fn new(dir: &Path) -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Distinct subjects for the CA and its leaves: OpenSSL takes a leaf
        // whose issuer equals its subject for a self-signed one.
        params
            .distinguished_name
            .push(DnType::CommonName, "badgateway test CA");
        let cert = params.self_signed(&key).expect("CA certificate");
        fs::write(dir.join("ca.pem"), cert.pem()).expect("write ca.pem");
        TestCa { cert, key }
    }

    /// A certificate for `name` signed by this CA, written to
    /// `dir/cert.pem` and `dir/key.pem`; `expired` makes one whose validity
    /// ended in 2020.
    pub fn leaf(&self, dir: &Path, name: &str, expired: bool) {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec![name.to_owned()]).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        if expired {
            params.not_before = rcgen::date_time_ymd(2019, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        }
        let leaf = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("certificate");
        fs::write(dir.join("cert.pem"), leaf.pem()).expect("write cert.pem");
        fs::write(dir.join("key.pem"), key.serialize_pem()).expect("write key.pem");
    }
}

/// Write a CA (`dir/ca.pem`) and a certificate for `name` signed by it
/// (`dir/cert.pem`, `dir/key.pem`); returns the CA file.
pub fn certificates(dir: &Path, name: &str) -> PathBuf {
    let ca = TestCa::new(dir);
    ca.leaf(dir, name, false);
    dir.join("ca.pem")
}
