//! badgateway-exporter: tells why a site behind a protecting proxy answers
//! 502 Bad Gateway. Probes through the proxy and straight to the origin,
//! watches the origin host, and serves the evidence as Prometheus metrics.
//!
//! Data flows config → scheduler → one task per site, probing every
//! (path, address) → results (`prober`); a scrape writes them as text,
//! piece by piece, after the agent's collectors (`server::scrape`), all on
//! `exposition` at the bottom.

pub mod agent;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod diagnosis;
pub mod exposition;
pub mod prober;
pub mod server;
pub mod web;

/// The git revision this binary was built from, or `unknown`.
pub const REVISION: &str = env!("BADGATEWAY_REVISION");
