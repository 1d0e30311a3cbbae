//! Tools shared by the integration tests, one module a subject: test hosts
//! in network namespaces (`netns`), the lab of a vantage, a proxy and an
//! origin built from them (`lab`), child processes and commands (`proc`),
//! waiting with a bound (`wait`), a small HTTP client (`http`), the
//! Prometheus text format (`metrics`), the repository's files (`paths`),
//! its YAML (`yaml`) and Markdown anchors (`markdown`), certificates
//! (`tls`), an origin server (`origin`) and a headless browser
//! (`browser`). Everything a test makes is
//! removed on drop, also when the test fails.
#![allow(dead_code)]

pub mod browser;
pub mod exporter;
pub mod http;
pub mod lab;
pub mod markdown;
pub mod metrics;
pub mod netns;
pub mod origin;
pub mod paths;
pub mod proc;
pub mod tls;
pub mod wait;
pub mod yaml;

// The tools most tests use, at the top; a crate that uses none of them
// would otherwise warn.
#[allow(unused_imports)]
pub use http::http_get;
#[allow(unused_imports)]
pub use lab::{nginx_conf, Lab, ORIGIN_IP, PROXY_IP, VANTAGE_IP};
#[allow(unused_imports)]
pub use netns::{enter, link, unique, Netns};
#[allow(unused_imports)]
pub use proc::{sh, Proc};
