//! `basic_auth_users`: reading the bcrypt hashes, and checking a request's
//! Basic credentials against them, with a cache of recent successes; every
//! failure costs the same bcrypt work, whether the user exists or not and
//! whatever its hash's cost.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use axum::http::header::AUTHORIZATION;
use axum::http::Request;
use hyper::body::Incoming;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use tokio::sync::Semaphore;

use super::parse::parse_str;

/// How many successful (user, password) checks are remembered.
const AUTH_CACHE_SIZE: usize = 100;
/// How many bcrypt verifications may run at once: each holds a core for
/// ~50–100 ms at cost 10.
const BCRYPT_PARALLEL: usize = 2;

/// `basic_auth_users`: names to bcrypt hashes, in file order.
pub(super) struct Users(pub(super) Vec<(String, BcryptHash)>);

impl<'de> Deserialize<'de> for Users {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Users;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of user names to bcrypt hashes")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Users, A::Error> {
                let mut out: Vec<(String, BcryptHash)> = Vec::new();
                while let Some((name, hash)) = map.next_entry::<String, BcryptHash>()? {
                    if out.iter().any(|(n, _)| *n == name) {
                        return Err(de::Error::custom(format!("user {name:?} is listed twice")));
                    }
                    out.push((name, hash));
                }
                Ok(Users(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A bcrypt hash, checked for shape and cost; never shown in errors.
pub(super) struct BcryptHash(pub(super) String);

impl<'de> Deserialize<'de> for BcryptHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_str(d, "a bcrypt hash", |s| {
            match s.parse::<bcrypt::HashParts>() {
                Ok(parts) if (4..=31).contains(&parts.get_cost()) => Ok(BcryptHash(s.to_owned())),
                Ok(parts) => Err(format!(
                    "bcrypt cost {} is outside 4..=31",
                    parts.get_cost()
                )),
                Err(e) => Err(format!(
                    "not a bcrypt hash ({e}); make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`"
                )),
            }
        })
    }
}

/// Basic-auth state shared by all connections.
pub(super) struct AuthState {
    /// Keys of (user, hash, password) triples that verified; see [`cache_key`].
    cache: Mutex<AuthCache>,
    /// Random per process, so the cache keys say nothing outside it.
    salt: [u8; 32],
    bcrypt_slots: Semaphore,
    /// The highest bcrypt cost among the users: every failed check costs
    /// the bcrypt work of one hash at this cost, whoever the user (see
    /// [`AuthState::check`]).
    max_cost: u32,
    /// bcrypt work done, in key-schedule rounds (2^cost per hash).
    work: AtomicU64,
}

#[derive(Default)]
struct AuthCache {
    keys: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl AuthState {
    /// `max_cost`: the highest cost among the configured users' hashes.
    pub(super) fn new(max_cost: u32) -> Self {
        AuthState {
            cache: Mutex::new(AuthCache::default()),
            salt: rand::random(),
            bcrypt_slots: Semaphore::new(BCRYPT_PARALLEL),
            max_cost,
            work: AtomicU64::new(0),
        }
    }

    /// bcrypt work done so far, in rounds (2^cost per hash computed).
    #[cfg(test)]
    fn work(&self) -> u64 {
        self.work.load(Ordering::Relaxed)
    }
}

/// A bcrypt hash of `password` at `cost` with a fixed salt: the work of a
/// verification at that cost, with nothing to compare.
fn burn(password: &[u8], cost: u32) {
    let _ = std::hint::black_box(bcrypt::hash_with_salt(password, cost, [0x5a; 16]));
}

fn rounds(cost: u32) -> u64 {
    1u64 << cost.min(63)
}

/// SHA-256, from the TLS library's crypto provider.
fn sha256() -> &'static dyn rustls::crypto::hash::Hash {
    rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .expect("a TLS 1.3 suite")
        .common
        .hash_provider
}

fn cache_key(salt: &[u8; 32], user: &[u8], hash: &str, password: &[u8]) -> [u8; 32] {
    let mut ctx = sha256().start();
    ctx.update(salt);
    for part in [user, hash.as_bytes(), password] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    let out = ctx.finish();
    let mut key = [0u8; 32];
    key.copy_from_slice(&out.as_ref()[..32]);
    key
}

/// Equality that looks at every byte of equally long inputs.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The (user, password) of a `Basic` Authorization header.
fn basic_credentials(req: &Request<Incoming>) -> Option<(Vec<u8>, Vec<u8>)> {
    let value = req.headers().get(AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = value.split_at(value.iter().position(|&b| b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let decoded = base64_decode(rest.trim_ascii())?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

/// Standard base64 with padding, as Go's `r.BasicAuth` reads it.
fn base64_decode(input: &[u8]) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    if input.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let chunks = input.len() / 4;
    for (i, chunk) in input.chunks(4).enumerate() {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && i + 1 != chunks) {
            return None;
        }
        let mut n: u32 = 0;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | val(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Some(out)
}

impl AuthState {
    /// Whether `req` carries the credentials of one of `users` (user,
    /// bcrypt hash).
    pub(super) async fn authorized(
        &self,
        users: &[(String, String)],
        req: &Request<Incoming>,
    ) -> bool {
        match basic_credentials(req) {
            Some((user, password)) => self.check(users, &user, password).await,
            None => false,
        }
    }

    /// Whether (`user`, `password`) is one of `users`.
    ///
    /// What a failure costs says nothing of the name: every failed check
    /// does the bcrypt work of one hash at the highest configured cost. An
    /// unknown user is hashed once at that cost; a known user whose hash is
    /// cheaper (cost c) and whose password is wrong is padded with hashes
    /// at costs c, c+1, ... up to the highest: 2^c + (2^c + ... +
    /// 2^(max-1)) = 2^max rounds, the same as the unknown user. A success
    /// costs the user's own hash, then nothing while it is cached.
    pub(super) async fn check(
        &self,
        users: &[(String, String)],
        user: &[u8],
        password: Vec<u8>,
    ) -> bool {
        // Look at every user, whichever matches, so the time taken says
        // little about which names exist.
        let mut found: Option<&str> = None;
        for (name, hash) in users {
            if ct_eq(name.as_bytes(), user) {
                found = Some(hash);
            }
        }
        let max_cost = self.max_cost;
        let Some(hash) = found else {
            let _slot = self.bcrypt_slots.acquire().await;
            let _ = tokio::task::spawn_blocking(move || burn(&password, max_cost)).await;
            self.work.fetch_add(rounds(max_cost), Ordering::Relaxed);
            return false;
        };
        let key = cache_key(&self.salt, user, hash, &password);
        if self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys
            .contains(&key)
        {
            return true;
        }
        let cost = hash
            .parse::<bcrypt::HashParts>()
            .map_or(max_cost, |p| p.get_cost());
        let ok = {
            let _slot = self.bcrypt_slots.acquire().await;
            let hash = hash.to_owned();
            tokio::task::spawn_blocking(move || {
                let ok = bcrypt::verify(&password, &hash).unwrap_or(false);
                if !ok {
                    for c in cost..max_cost {
                        burn(&password, c);
                    }
                }
                ok
            })
            .await
            .unwrap_or(false)
        };
        let padding = if ok {
            0
        } else {
            (cost..max_cost).map(rounds).sum()
        };
        self.work
            .fetch_add(rounds(cost) + padding, Ordering::Relaxed);
        if ok {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.keys.insert(key) {
                cache.order.push_back(key);
                while cache.order.len() > AUTH_CACHE_SIZE {
                    if let Some(old) = cache.order.pop_front() {
                        cache.keys.remove(&old);
                    }
                }
            }
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(list: &[(&str, u32)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(name, cost)| {
                let hash = bcrypt::hash_with_salt("secret", *cost, [7; 16])
                    .unwrap()
                    .format_for_version(bcrypt::Version::TwoY);
                (name.to_string(), hash)
            })
            .collect()
    }

    /// The bcrypt work one check does.
    async fn work_of(auth: &AuthState, users: &[(String, String)], user: &str, pw: &str) -> u64 {
        let before = auth.work();
        auth.check(users, user.as_bytes(), pw.as_bytes().to_vec())
            .await;
        auth.work() - before
    }

    #[tokio::test]
    async fn every_failure_costs_the_slowest_users_work() {
        let users = users(&[("fast", 4), ("middle", 5), ("slow", 7)]);
        let auth = AuthState::new(7);
        let slowest = 1 << 7;
        assert_eq!(work_of(&auth, &users, "nobody", "x").await, slowest);
        assert_eq!(work_of(&auth, &users, "slow", "x").await, slowest);
        assert_eq!(work_of(&auth, &users, "middle", "x").await, slowest);
        assert_eq!(work_of(&auth, &users, "fast", "x").await, slowest);
        // A success costs the user's own hash, then nothing (cached).
        assert!(auth.check(&users, b"fast", b"secret".to_vec()).await);
        assert_eq!(work_of(&auth, &users, "fast", "secret").await, 0);
        assert_eq!(work_of(&auth, &users, "middle", "secret").await, 1 << 5);
    }

    #[test]
    fn base64() {
        assert_eq!(base64_decode(b"YWxpY2U6cw==").unwrap(), b"alice:s");
        assert_eq!(base64_decode(b"YWxpY2U6c3M=").unwrap(), b"alice:ss");
        assert_eq!(base64_decode(b"YWxpY2U6c3Nz").unwrap(), b"alice:sss");
        assert_eq!(base64_decode(b"").unwrap(), b"");
        assert!(base64_decode(b"YWxpY2U6cw=").is_none());
        assert!(base64_decode(b"YW=pY2U6").is_none());
        assert!(base64_decode(b"YWxp*2U6").is_none());
    }
}
