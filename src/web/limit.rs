//! `rate_limit`: a token bucket over all requests, refilled every
//! `interval`, and the Go duration syntax that `interval` is written in.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A token bucket, like Go's `rate.NewLimiter(rate.Every(interval), burst)`:
/// it starts full, holds at most `burst` tokens and gains one per `interval`.
pub(super) struct RateLimiter {
    interval: Duration,
    pub(super) burst: u32,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub(super) fn new(interval: Duration, burst: u32) -> Self {
        RateLimiter {
            interval,
            burst,
            state: Mutex::new((f64::from(burst), Instant::now())),
        }
    }

    /// Takes a token if there is one.
    pub(super) fn allow(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(state.1).as_secs_f64() / self.interval.as_secs_f64();
        state.0 = (state.0 + refill).min(f64::from(self.burst));
        state.1 = now;
        if state.0 >= 1.0 {
            state.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A Go `time.Duration`, as exporter-toolkit reads it from YAML: a string
/// such as `1s`, `1m30s`, `250ms`, or an integer count of nanoseconds.
pub(super) struct GoDuration(pub(super) Duration);

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = GoDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 1s, 500ms or 1m30s")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<GoDuration, E> {
                Ok(GoDuration(Duration::from_nanos(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<GoDuration, E> {
                u64::try_from(v)
                    .map(|n| GoDuration(Duration::from_nanos(n)))
                    .map_err(|_| E::custom("the duration is negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<GoDuration, E> {
                parse_go_duration(v).map(GoDuration).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Go's `time.ParseDuration`, for non-negative durations.
fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("invalid duration {text:?}: {why}");
    let mut s = text.strip_prefix('+').unwrap_or(text);
    if s.starts_with('-') {
        return Err(bad("negative"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad("empty"));
    }
    let mut nanos: u128 = 0;
    while !s.is_empty() {
        let int_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (int, rest) = s.split_at(int_end);
        s = rest;
        let mut frac = "";
        if let Some(rest) = s.strip_prefix('.') {
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            frac = &rest[..end];
            s = &rest[end..];
        }
        if int.is_empty() && frac.is_empty() {
            return Err(bad("expected a number"));
        }
        let unit_end = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        let (unit, rest) = s.split_at(unit_end);
        s = rest;
        let per: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(bad("missing unit (ns, us, ms, s, m, h)")),
            _ => return Err(bad(&format!("unknown unit {unit:?}"))),
        };
        let whole: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad("number too large"))?
        };
        nanos = whole
            .checked_mul(per)
            .and_then(|n| nanos.checked_add(n))
            .ok_or_else(|| bad("too large"))?;
        let frac = &frac[..frac.len().min(18)];
        if !frac.is_empty() {
            let f: u128 = frac.parse().map_err(|_| bad("bad fraction"))?;
            nanos += f * per / 10u128.pow(frac.len() as u32);
        }
    }
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .map_err(|_| bad("too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_bursts_then_refuses() {
        let l = RateLimiter::new(Duration::from_secs(3600), 2);
        assert!(l.allow());
        assert!(l.allow());
        assert!(!l.allow());
    }

    #[test]
    fn go_durations() {
        let d = |s| parse_go_duration(s).unwrap();
        assert_eq!(d("0"), Duration::ZERO);
        assert_eq!(d("1s"), Duration::from_secs(1));
        assert_eq!(d("1m30s"), Duration::from_secs(90));
        assert_eq!(d("250ms"), Duration::from_millis(250));
        assert_eq!(d("1.5h"), Duration::from_secs(5400));
        assert_eq!(d("2us"), Duration::from_micros(2));
        assert_eq!(d("2µs"), Duration::from_micros(2));
        assert_eq!(d(".5s"), Duration::from_millis(500));
        for bad in ["", "1", "-1s", "1x", "s", "1.s.", "1d"] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?} accepted");
        }
    }
}
