//! Reading the repository's YAML (rules, manifests, configs) by path.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_norway::Value;

use super::paths;

/// One YAML document.
pub fn parse(text: &str) -> Value {
    serde_norway::from_str(text).expect("YAML")
}

/// Every YAML document in `text`.
pub fn docs(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).expect("YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

/// The repository's file `rel`, parsed; panics naming it.
pub fn load(rel: &str) -> Value {
    serde_norway::from_str(&paths::read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `v` at a dotted path of mapping keys and sequence indices.
pub fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    let mut cur = v;
    for part in path.split('.') {
        cur = match part.parse::<usize>() {
            Ok(i) if cur.is_sequence() => &cur[i],
            _ => &cur[part],
        };
    }
    cur
}

pub fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string in {v:?}"))
}

pub fn seq_at<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    at(v, path)
        .as_sequence()
        .map(|s| s.as_slice())
        .unwrap_or(&[])
}

/// A mapping of strings as a BTreeMap (labels, annotations, selectors);
/// other scalars as YAML writes them.
pub fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.as_str().unwrap_or_default().to_owned(),
                        match v {
                            Value::String(s) => s.clone(),
                            other => serde_norway::to_string(other).unwrap().trim().to_owned(),
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Set `key` of the mapping `v`.
pub fn set_key(v: &mut Value, key: &str, new: Value) {
    v.as_mapping_mut()
        .expect("a mapping")
        .insert(Value::String(key.into()), new);
}
