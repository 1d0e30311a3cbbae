//! `http_server_config.headers`: the extra response headers exporter-toolkit
//! allows, read with its value checks. `serve` sets them on every response.

use std::fmt;

use axum::http::header::{HeaderName, HeaderValue};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

/// The extra response headers exporter-toolkit allows, with its value checks.
pub(super) struct Headers(pub(super) Vec<(HeaderName, HeaderValue)>);

const ALLOWED_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Headers;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of header names to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Headers, A::Error> {
                let mut out: Vec<(HeaderName, HeaderValue)> = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, Option<String>>()? {
                    let Some(&(canonical, allowed)) = ALLOWED_HEADERS
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(&name))
                    else {
                        return Err(de::Error::custom(format!(
                            "HTTP header {name:?} can not be configured; allowed: {}",
                            ALLOWED_HEADERS
                                .iter()
                                .map(|(n, _)| *n)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )));
                    };
                    // "Unset if blank."
                    let value = value.unwrap_or_default();
                    if value.is_empty() {
                        continue;
                    }
                    if !allowed.is_empty()
                        && !allowed.iter().any(|a| a.eq_ignore_ascii_case(&value))
                    {
                        return Err(de::Error::custom(format!(
                            "invalid value {value:?} for {canonical}; expected one of: {}",
                            allowed.join(", ")
                        )));
                    }
                    let header_value = HeaderValue::from_str(&value).map_err(|_| {
                        de::Error::custom(format!(
                            "{canonical}: {value:?} is not a valid header value"
                        ))
                    })?;
                    let header_name = HeaderName::from_static(canonical_lower(canonical));
                    if out.iter().any(|(n, _)| *n == header_name) {
                        return Err(de::Error::custom(format!("{canonical} is set twice")));
                    }
                    out.push((header_name, header_value));
                }
                Ok(Headers(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// `HeaderName::from_static` wants lower case.
fn canonical_lower(name: &str) -> &'static str {
    match name {
        "Strict-Transport-Security" => "strict-transport-security",
        "X-Content-Type-Options" => "x-content-type-options",
        "X-Frame-Options" => "x-frame-options",
        "X-XSS-Protection" => "x-xss-protection",
        _ => "content-security-policy",
    }
}
