//! The raw, as-written shape of the config file.
//!
//! serde_norway fills these structs; they only check the *shape* (which keys
//! exist, scalar vs. list vs. mapping). Every value that needs a semantic
//! check (addresses, durations, CIDRs, ports, ...) is kept as written, so the
//! validation pass can report all bad values at once with their positions
//! instead of stopping at the first one as serde would. Every field is an
//! `Option` for the same reason: a missing required key is reported by the
//! validation pass together with everything else.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

#[derive(Debug, Default, serde::Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with the keys `probe`, `sites` and `agent`"
)]
pub(crate) struct RawConfig {
    pub probe: Option<RawProbe>,
    pub sites: Option<Vec<RawSite>>,
    pub agent: Option<RawAgent>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with the keys `interval`, `timeout`, `icmp`, `tcp`, `proxy_requests`, `proxy_idle_timeout`, `max_proxy_addresses` and `body_limit_bytes`"
)]
pub(crate) struct RawProbe {
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub icmp: Option<RawEchoes>,
    pub tcp: Option<RawEchoes>,
    pub proxy_requests: Option<i64>,
    pub proxy_idle_timeout: Option<String>,
    pub max_proxy_addresses: Option<i64>,
    // Signed so that a negative number is a range error with a position,
    // not a serde type error that hides every other problem.
    pub body_limit_bytes: Option<i64>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with the keys `enabled`, `count` and `interval`"
)]
pub(crate) struct RawEchoes {
    pub enabled: Option<bool>,
    pub count: Option<i64>,
    pub interval: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a site: a mapping with at least `name`, `url` and `origin`"
)]
pub(crate) struct RawSite {
    pub name: Option<String>,
    pub url: Option<String>,
    pub proxy: Option<Vec<String>>,
    pub origin: Option<Vec<String>>,
    // Strings, not integers: serde_norway hands any scalar to a string
    // field, so both `200` and "200-399" arrive here as text.
    pub expect_status: Option<Vec<String>>,
    pub source_address: Option<String>,
    pub origin_source_address: Option<String>,
    pub origin_scheme: Option<String>,
    // Signed for the same reason as body_limit_bytes.
    pub origin_port: Option<i64>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub follow_redirects: Option<bool>,
    pub method: Option<String>,
    pub headers: Option<OrderedMap<String>>,
    pub tls: Option<RawTls>,
    pub icmp: Option<bool>,
    pub proxy_requests: Option<i64>,
    pub proxy_idle_timeout: Option<String>,
    pub max_proxy_addresses: Option<i64>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with the keys `insecure_skip_verify`, `ca_file` and `server_name`"
)]
pub(crate) struct RawTls {
    pub insecure_skip_verify: Option<bool>,
    pub ca_file: Option<String>,
    pub server_name: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, expecting = "the agent settings: a mapping")]
pub(crate) struct RawAgent {
    pub sites: Option<Vec<String>>,
    pub forwarding_ranges: Option<Vec<String>>,
    pub web_ports: Option<Vec<i64>>,
    pub processes: Option<Vec<String>>,
    pub interfaces: Option<OrderedMap<RawInterface>>,
    pub access_log: Option<RawAccessLog>,
    pub firewall: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with the key `capacity`")]
pub(crate) struct RawInterface {
    pub capacity: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with the keys `path`, `format` and `peer_variable`"
)]
pub(crate) struct RawAccessLog {
    pub path: Option<String>,
    pub format: Option<String>,
    pub peer_variable: Option<String>,
}

/// A YAML mapping with free-form keys, kept in file order and with
/// duplicates, so that entry `i` here is entry `i` in the position index and
/// duplicate keys can be reported instead of silently overwritten.
#[derive(Debug, Default)]
pub(crate) struct OrderedMap<V>(pub Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = OrderedMap<V>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                // No size hint on purpose: the hint comes from the input.
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, V>()? {
                    entries.push(entry);
                }
                Ok(OrderedMap(entries))
            }
        }

        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}
