//! Certificates for TLS test servers: a CA and a leaf for one name.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

/// Write a CA (`dir/ca.pem`) and a certificate for `name` signed by it
/// (`dir/cert.pem`, `dir/key.pem`); returns the CA file.
pub fn certificates(dir: &Path, name: &str) -> PathBuf {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(vec![name.to_owned()])
        .expect("params")
        .signed_by(&key, &ca_cert, &ca_key)
        .expect("certificate");
    let ca_file = dir.join("ca.pem");
    fs::write(&ca_file, ca_cert.pem()).expect("write ca.pem");
    fs::write(dir.join("cert.pem"), leaf.pem()).expect("write cert.pem");
    fs::write(dir.join("key.pem"), key.serialize_pem()).expect("write key.pem");
    ca_file
}
