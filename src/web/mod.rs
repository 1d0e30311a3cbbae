//! `--web.config.file`: TLS, basic authentication, extra response headers
//! and rate limiting for the exporter's own HTTP server, in the Prometheus
//! exporter-toolkit web configuration format
//! (<https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md>).
//!
//! The file is read once, by [`WebConfig::load`]; everything it names
//! (certificates, keys, CA files, bcrypt hashes) is read and checked there,
//! so a broken file is refused at start-up, not at the first request.
//! [`serve`](fn@serve) then serves a router with it.
//!
//! Differences from exporter-toolkit, all refused or reported clearly:
//! - TLS is rustls: `min_version`/`max_version` take `TLS12` and `TLS13`
//!   only; `TLS10` and `TLS11` are refused.
//! - `client_auth_type`: `NoClientCert`, `RequireAndVerifyClientCert` and
//!   `VerifyClientCertIfGiven`. `RequestClientCert`, `RequireAnyClientCert`
//!   (and its old name `RequireClientCert`) accept unverified certificates
//!   and are refused, as is `client_allowed_sans`.
//! - `cipher_suites` applies to TLS 1.2, as in Go: the ECDHE suites with
//!   AES-GCM or ChaCha20-Poly1305 are supported; the CBC and RSA key exchange
//!   suites Go knows are refused; TLS 1.3 suite names are accepted and, as in
//!   Go, change nothing. `curve_preferences`: `X25519`, `CurveP256`,
//!   `CurveP384` (`CurveP521` is refused). `prefer_server_cipher_suites`
//!   (default true) is honoured.
//! - `http_server_config.http2` is accepted and ignored: the server speaks
//!   HTTP/1.1 only.
//! - The file is not re-read per request or connection: restart to apply a
//!   change (certificates included).
//! - `headers` are the five exporter-toolkit allows, with its value checks;
//!   they are set on every response, replacing one the handler set.
//!
//! The files: `config` reads and checks the file; `tls` builds the rustls
//! server configuration from its section and the names `tls_names` parses;
//! `parse` is the bottom (the error and the value readers); `headers`,
//! `auth` and `limit` are the HTTP settings; `serve` is the accept loop.

mod auth;
mod config;
mod headers;
mod limit;
mod parse;
mod serve;
mod tls;
mod tls_names;

pub use config::{WebConfig, WebConfigError};
pub use serve::{serve, serve_with, ConnectionMetrics, Limits, DEFAULT_MAX_CONNECTIONS};
