//! The config loader: any bytes must give a `Config` or `ConfigErrors`,
//! never a panic, a hang or unbounded memory.

#![no_main]

use badgateway_exporter::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(errors) = Config::parse(data, "fuzz.yml") {
        // The messages are rendered as the binary prints them.
        let _ = errors.to_string();
    }
});
