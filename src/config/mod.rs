//! The YAML configuration: loading, validation and error reporting.
//!
//! Loading runs in stages, each refusing what the next cannot handle:
//!
//! 1. byte checks: size (32 MiB), UTF-8, NUL bytes; then nesting depth and
//!    alias expansion, which serde_norway does not bound well enough (see
//!    [`guard::precheck`]);
//! 2. serde_norway into the raw structs of [`raw`]: syntax and shape
//!    (unknown keys, a string where a number belongs). It stops at the first
//!    problem, so at most one error comes from here. Its alias repetition
//!    limit backs up the alias check of step 1;
//! 3. the validation pass of [`validate`]: every semantic problem at once
//!    (addresses, durations, ranges, duplicates, ...), each positioned by
//!    looking its YAML path up in the index of [`position`].
//!
//! See `deploy/example.yml` for a commented example of every key.

mod error;
mod guard;
mod position;
mod raw;
mod types;
mod validate;
mod values;

use std::io::Read;

pub use error::{ConfigError, ConfigErrors, ParseValueError};
pub use types::*;

use position::{Pos, PosIndex};

/// Largest config file accepted: room for 250,000 sites (100,000 take
/// 12 MB, split between probers with `--shard`), and small enough that
/// parsing it cannot hurt.
pub const MAX_CONFIG_BYTES: usize = 32 * 1024 * 1024;

impl Config {
    /// Reads and validates the config file at `path`.
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigErrors> {
        let file_name = path.display().to_string();
        let fail = |message: String| ConfigErrors(vec![file_error(&file_name, None, message)]);
        let file =
            std::fs::File::open(path).map_err(|e| fail(format!("cannot open config file: {e}")))?;
        // Refuse a big file before reading it, and read at most one byte
        // past the limit in case it is not a regular file or grows meanwhile.
        if let Ok(meta) = file.metadata() {
            if meta.is_file() && meta.len() > MAX_CONFIG_BYTES as u64 {
                return Err(fail(too_large(&meta.len().to_string())));
            }
        }
        let mut bytes = Vec::new();
        file.take(MAX_CONFIG_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| fail(format!("cannot read config file: {e}")))?;
        if bytes.len() > MAX_CONFIG_BYTES {
            return Err(fail(too_large(&format!("more than {MAX_CONFIG_BYTES}"))));
        }
        Config::parse(&bytes, &file_name)
    }

    /// Validates config text; `file_name` is only used in messages.
    pub fn parse(text_or_bytes: &[u8], file_name: &str) -> Result<Config, ConfigErrors> {
        let fail = |pos: Option<Pos>, message: String| {
            ConfigErrors(vec![file_error(file_name, pos, message)])
        };
        if text_or_bytes.len() > MAX_CONFIG_BYTES {
            return Err(fail(None, too_large(&text_or_bytes.len().to_string())));
        }
        let text = check_text(text_or_bytes).map_err(|(pos, message)| fail(Some(pos), message))?;
        // A byte order mark is not part of the YAML; dropping it keeps
        // columns on line 1 as an editor shows them.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);

        if let Some((pos, refusal)) = guard::precheck(text) {
            let message = match refusal {
                guard::Refusal::TooDeep => format!(
                    "nested deeper than {} levels of mappings and sequences (the config format needs 4)",
                    guard::MAX_DEPTH
                ),
                guard::Refusal::AliasExpansion => format!(
                    "YAML aliases expand to more than {} values (an \"alias bomb\"); the limit is passed at this alias. \
                     Write the values out or use fewer aliases",
                    guard::MAX_ALIAS_NODES
                ),
            };
            return Err(fail(Some(pos), message));
        }
        let raw = match serde_norway::from_str::<Option<raw::RawConfig>>(text) {
            Ok(Some(raw)) => raw,
            // serde_norway reads an empty document, or one holding only
            // comments or `null`, as no config at all. Someone who points
            // the exporter at a file means it to configure something.
            Ok(None) => return Err(fail(
                None,
                "config file is empty (it holds no settings, only whitespace, comments or null); \
                     see deploy/example.yml for the keys"
                    .into(),
            )),
            Err(e) => return Err(ConfigErrors(vec![serde_error(&e, text, file_name)])),
        };
        let index = PosIndex::build(text);
        validate::validate(raw, file_name, &index)
    }
}

fn file_error(file: &str, pos: Option<Pos>, message: String) -> ConfigError {
    ConfigError {
        file: file.to_string(),
        line: pos.map(|p| p.line),
        column: pos.map(|p| p.column),
        message,
    }
}

fn too_large(size: &str) -> String {
    format!(
        "config file is too large: {size} bytes; the limit is {MAX_CONFIG_BYTES} bytes (32 MiB)"
    )
}

/// Checks that the bytes are UTF-8 text without NUL bytes, reporting the
/// first offending byte's position.
fn check_text(bytes: &[u8]) -> Result<&str, (Pos, String)> {
    let (valid, bad_utf8) = match std::str::from_utf8(bytes) {
        Ok(text) => (text, None),
        Err(e) => (
            // The prefix up to `valid_up_to` is valid UTF-8 by definition.
            std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default(),
            Some(e.valid_up_to()),
        ),
    };
    // Whichever comes first: a NUL in the valid prefix or the bad byte.
    if let Some(nul) = valid.find('\0') {
        return Err((
            text_pos(valid, nul),
            "config file contains a NUL byte; it must be YAML text (is this a binary file?)".into(),
        ));
    }
    match bad_utf8 {
        None => Ok(valid),
        Some(offset) => Err((
            text_pos(valid, offset),
            format!(
                "config file is not valid UTF-8: byte 0x{:02x} cannot start or continue a character; \
                 YAML config must be UTF-8 text (is this a binary file?)",
                bytes.get(offset).copied().unwrap_or_default()
            ),
        )),
    }
}

/// The 1-based line and column of byte `offset` of `text`, where
/// `text[..offset]` is whole characters.
fn text_pos(text: &str, offset: usize) -> Pos {
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Pos {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    }
}

/// Converts the one error serde_norway stops at.
fn serde_error(e: &serde_norway::Error, text: &str, file: &str) -> ConfigError {
    let raw_message = e.to_string();
    match raw_message.as_str() {
        // No position from serde_norway for these; find one ourselves.
        "repetition limit exceeded" => {
            let located = guard::locate_alias_bomb(text);
            let message = match located {
                Some((_, jumps)) => format!(
                    "YAML aliases expand too much (at least {jumps} alias expansions, an \"alias bomb\"); \
                     expansion stops at this alias. Write the values out or use fewer nested aliases"
                ),
                None => "YAML aliases expand too much (an \"alias bomb\"); write the values out or use fewer nested aliases".into(),
            };
            file_error(file, located.map(|(pos, _)| pos), message)
        }
        "deserializing from YAML containing more than one document is not supported" => file_error(
            file,
            guard::second_document_pos(text),
            "a second YAML document starts here (`---`); the config must be a single document"
                .into(),
        ),
        _ => {
            let pos = e.location().map(|l| Pos {
                line: l.line(),
                column: l.column(),
            });
            let message = match pos {
                Some(p) => error::reword_serde_message(&raw_message, p.line, p.column),
                None => error::limit_message(raw_message),
            };
            // serde_norway points a duplicate key at its mapping; the
            // second occurrence of the key is what to fix.
            let duplicate = duplicate_field(&message)
                .and_then(|(path, key)| PosIndex::build(text).duplicate_key_pos(path, key));
            file_error(file, duplicate.or(pos), message)
        }
    }
}

/// Splits serde's "sites[0]: duplicate field `name`" into its path
/// (serde_norway notation, `.` for the root) and key.
fn duplicate_field(message: &str) -> Option<(&str, &str)> {
    const MARKER: &str = "duplicate field `";
    let (path, rest) = match message.strip_prefix(MARKER) {
        Some(rest) => (".", rest),
        None => message.split_once(&format!(": {MARKER}"))?,
    };
    Some((path, rest.split('`').next()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match Config::parse(text.as_bytes(), "t.yml") {
            Ok(c) => panic!("expected errors, got {c:?}"),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn text_positions() {
        assert_eq!(text_pos("ab\ncé\n", 6), Pos { line: 2, column: 3 });
        assert_eq!(text_pos("", 0), Pos { line: 1, column: 1 });
    }

    #[test]
    fn utf8_and_nul_checks_report_first_offender() {
        assert_eq!(
            check_text(b"a: 1\nb: \xff\0").unwrap_err().0,
            Pos { line: 2, column: 4 }
        );
        let (pos, msg) = check_text(b"a: 1\n\0b: \xff").unwrap_err();
        assert_eq!(pos, Pos { line: 2, column: 1 });
        assert!(msg.contains("NUL"));
        assert_eq!(check_text("é".as_bytes()), Ok("é"));
    }

    #[test]
    fn bom_is_ignored_for_columns() {
        let errs = errors("\u{feff}probe: {timeout: x}\n");
        assert!(
            errs[0].starts_with("t.yml:1:18: probe.timeout: invalid duration"),
            "{errs:?}"
        );
    }

    #[test]
    fn columns_count_characters_in_both_parsers() {
        // The semantic error is positioned by yaml-rust2, the type error by
        // libyaml; both must count `é` as one column and CRLF as one break.
        let semantic = "probe: {}\r\nsites: [{url: 'http://a/é', name: a, origin: [bad]}]\r\n";
        assert!(
            errors(semantic)[0].starts_with("t.yml:2:47: "),
            "{:?}",
            errors(semantic)
        );
        let shape = "probe: {}\r\nsites: [{url: 'http://a/é', name: a, origin: [[1]]}]\r\n";
        assert!(
            errors(shape)[0].starts_with("t.yml:2:47: "),
            "{:?}",
            errors(shape)
        );
    }

    #[test]
    fn multi_document_is_positioned() {
        let errs = errors("probe: {}\n---\nsites: []\n");
        assert!(errs[0].starts_with("t.yml:2:1: "), "{errs:?}");
    }

    #[test]
    fn serde_positions_are_one_based() {
        let errs = errors("probe:\n  icmp:\n    count: ten\n");
        assert!(
            errs[0].starts_with("t.yml:3:12: probe.icmp.count: invalid type: string \"ten\""),
            "{errs:?}"
        );
    }

    #[test]
    fn long_serde_values_are_cut() {
        let long = "x".repeat(10_000);
        let errs = errors(&format!("probe:\n  icmp:\n    count: {long}\n"));
        assert!(errs[0].len() < 600, "{}", errs[0].len());
    }

    #[test]
    fn site_host_and_port() {
        let yaml = "sites: [{name: a, url: 'https://[2001:db8::1]/x', origin: ['2001:db8::2']}]";
        let config = Config::parse(yaml.as_bytes(), "t.yml").unwrap();
        let mut site = config.sites[0].clone();
        assert_eq!(site.host(), "2001:db8::1");
        assert_eq!(site.port(), 443);
        site.url = "http://www.example.com:8080/".parse().unwrap();
        assert_eq!(site.host(), "www.example.com");
        assert_eq!(site.port(), 8080);
        assert!(site.status_expected(200) && !site.status_expected(404));
    }

    #[test]
    fn error_cap() {
        let mut text = String::from("sites:\n");
        for i in 0..150 {
            text.push_str(&format!(
                "  - {{name: s{i}, url: 'http://a', origin: [bad]}}\n"
            ));
        }
        let errs = errors(&text);
        assert_eq!(errs.len(), 101);
        assert!(
            errs[100].ends_with("... and 50 more errors"),
            "{}",
            errs[100]
        );
    }
}

#[cfg(test)]
mod robustness {
    use super::*;

    /// Deterministic pseudo-random numbers (xorshift), to avoid a
    /// dependency and keep failures reproducible.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Mutated versions of the example config must give a result, never a
    /// panic or a hang.
    #[test]
    fn mutated_example_never_panics() {
        let example = include_str!("../../deploy/example.yml").as_bytes();
        let specials = b"[]{}:,-&*!|>'\"#\n \t%@`?~0123456789abc.\\/";
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..1500 {
            let mut bytes = example.to_vec();
            for _ in 0..=rng.below(4) {
                let at = rng.below(bytes.len());
                match rng.below(4) {
                    0 => {
                        bytes.remove(at);
                    }
                    1 => bytes.insert(at, specials[rng.below(specials.len())]),
                    2 => bytes[at] = specials[rng.below(specials.len())],
                    _ => bytes.insert(at, (rng.next() & 0xff) as u8),
                }
            }
            let _ = Config::parse(&bytes, "fuzz.yml");
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = Rng(42);
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len).map(|_| (rng.next() & 0xff) as u8).collect();
            let _ = Config::parse(&bytes, "fuzz.yml");
        }
    }
}
