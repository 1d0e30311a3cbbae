//! One shard of many probers of one vantage: `--shard I/N` probes the sites
//! whose name hashes to `I` modulo `N`, with the hash Prometheus'
//! `hashmod` relabeling uses (the last 8 bytes of the name's MD5, big
//! endian), so N probers given the same configuration split its sites
//! between them, each site in exactly one, and a `hashmod` rule predicts
//! which.

use std::fmt;
use std::str::FromStr;

use md5::{Digest, Md5};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// Whether the site named `name` is this shard's.
    pub fn owns(&self, name: &str) -> bool {
        hashmod(name, self.count) == self.index
    }
}

/// Prometheus' `hashmod` of `value`.
pub fn hashmod(value: &str, modulus: u64) -> u64 {
    let digest = Md5::digest(value.as_bytes());
    let mut last = [0u8; 8];
    last.copy_from_slice(&digest[8..]);
    u64::from_be_bytes(last) % modulus
}

impl FromStr for Shard {
    type Err = String;

    /// `I/N`: shard `I` (from 0) of `N`.
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = |why: &str| format!("invalid shard {s:?}: {why}; expected I/N, e.g. 0/3");
        let (i, n) = s.split_once('/').ok_or_else(|| bad("no /"))?;
        let index: u64 = i.trim().parse().map_err(|_| bad("I is not a number"))?;
        let count: u64 = n.trim().parse().map_err(|_| bad("N is not a number"))?;
        if count == 0 {
            return Err(bad("N must be at least 1"));
        }
        if index >= count {
            return Err(bad("I must be below N (shards count from 0)"));
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_prometheus_hashmod() {
        // Python: int.from_bytes(hashlib.md5(name).digest()[8:], "big")
        assert_eq!(hashmod("shop", u64::MAX), 124718604283123341);
        assert_eq!(hashmod("api", u64::MAX), 3863649501728319658);
        for (name, shard) in [("shop", 0), ("api", 1), ("www.example.com", 2)] {
            assert_eq!(hashmod(name, 3), shard, "{name}");
        }
    }

    #[test]
    fn every_site_is_in_exactly_one_shard() {
        let shards: Vec<Shard> = (0..4).map(|i| format!("{i}/4").parse().unwrap()).collect();
        let mut per = [0; 4];
        for n in 0..1000 {
            let name = format!("site-{n}");
            let owners: Vec<&Shard> = shards.iter().filter(|s| s.owns(&name)).collect();
            assert_eq!(owners.len(), 1, "{name}");
            per[owners[0].index as usize] += 1;
        }
        // Even enough: each of 4 holds about 250 of 1,000.
        assert!(per.iter().all(|&k| (200..300).contains(&k)), "{per:?}");
    }

    #[test]
    fn bad_shards_say_why() {
        for (text, why) in [
            ("3", "no /"),
            ("a/3", "I is not a number"),
            ("0/x", "N is not a number"),
            ("0/0", "at least 1"),
            ("3/3", "below N"),
        ] {
            let e = text.parse::<Shard>().unwrap_err();
            assert!(e.contains(why) && e.contains("expected I/N"), "{text}: {e}");
        }
        assert_eq!("1/3".parse::<Shard>().unwrap().to_string(), "1/3");
    }
}
