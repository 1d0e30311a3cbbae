//! Waiting for something to happen: poll a check with a bound, never a
//! fixed sleep.

use std::time::{Duration, Instant};

/// Poll `ready` every `every` until it gives a value, which is returned
/// with the time that took; `None` once `within` has passed.
pub fn poll<T>(
    within: Duration,
    every: Duration,
    mut ready: impl FnMut() -> Option<T>,
) -> Option<(T, Duration)> {
    let start = Instant::now();
    loop {
        if let Some(t) = ready() {
            return Some((t, start.elapsed()));
        }
        if start.elapsed() >= within {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Poll `check` every `every` until it is Ok; panic with its last error
/// once `within` has passed. `check` may panic itself to stop at once.
pub fn until<T>(
    within: Duration,
    every: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let mut last = String::new();
    let found = poll(within, every, || check().map_err(|e| last = e).ok());
    match found {
        Some((t, _)) => t,
        None => panic!("not within {within:?}: {last}"),
    }
}

/// `until` for async tests: sleeps on the runtime rather than blocking
/// one of its threads.
pub async fn until_async<T>(
    within: Duration,
    every: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match check() {
            Ok(t) => return t,
            Err(e) if Instant::now() >= deadline => panic!("not within {within:?}: {e}"),
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}
