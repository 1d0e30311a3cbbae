//! The prober: probes every configured site in the background, through the
//! proxy and straight to the origin, and keeps the latest results for a
//! scrape to read.
//!
//! Data flows `scheduler` (one task per site) → `round` (every path and
//! address of a site at once, with the state carried from round to round;
//! `edges` finds the addresses of a proxy by DNS)
//! → `probe` (HTTP, ICMP, TCP handshakes; `tls` is their TLS client) →
//! `results` (the latest round of each site) → `render` (the sites'
//! results as metrics text, written while a scrape is sent). Beside the
//! rounds, `keepalive` watches how long each origin keeps an idle
//! connection open.

pub mod edges;
pub mod keepalive;
pub mod probe;
pub mod render;
pub mod results;
pub mod round;
pub mod scheduler;
pub mod shard;
pub mod tls;
pub mod trace;
