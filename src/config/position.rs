//! Source positions of YAML nodes, found by their path (`sites[1].origin[0]`).
//!
//! serde_norway gives a position only for the one error that stops it; the
//! validation pass needs positions for values serde accepted. This module
//! replays the file through yaml-rust2's event parser (never its loader,
//! which would expand aliases) and records where every node starts.
//!
//! Why a second YAML parser, measured against serde_norway 0.9.42 (kept:
//! the maintained serde_yaml fork): it has no `Spanned` and no span-aware
//! deserializer, its `Location` comes only with the error it stops at, and
//! its libyaml wrapper is private, so a `Spanned<T>` would mean writing a
//! deserializer. Driving this index from libyaml's own events instead
//! (`unsafe-libyaml-norway`, already under serde_norway) was tried: it drops
//! 6 crates (yaml-rust2, arraydeque, encoding_rs, hashlink, hashbrown 0.15,
//! foldhash) and 60 lines here, but adds a 153-line wrapper holding the
//! crate's first 13 `unsafe` (net +111 lines), and it moves positions
//! pinned today: an anchored value points at its `&anchor`, not its
//! bracket, and 4 MiB of unclosed `[` at column 135, not 263 (a case of
//! tests/config_errors.rs). All other config tests passed. Not worth it.
//!
//! One file of ~460 lines because a path, the index and its lookups are one
//! subject (a quarter of it tests); the limits checked before serde_norway are
//! in `guard.rs`.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, ScanError};

/// A 1-based line and column (the column counts characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    pub(super) fn from_marker(marker: &Marker) -> Pos {
        // yaml-rust2 0.10 counts lines from 1 but columns from 0
        // (tested in `tests::marker_base`).
        Pos {
            line: marker.line(),
            column: marker.col() + 1,
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// One step of a YAML path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    /// A fixed key of a struct-like mapping.
    Key(&'static str),
    /// An item of a sequence.
    Index(usize),
    /// The n-th entry of a free-form mapping (headers, interfaces), with its
    /// key for display. Looked up by position, so duplicate keys resolve to
    /// the right entry.
    Entry(usize, String),
}

/// A path from the document root, displayed as `sites[1].origin[0]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct YamlPath(Vec<Seg>);

impl YamlPath {
    pub fn root() -> YamlPath {
        YamlPath(Vec::new())
    }

    pub fn key(&self, key: &'static str) -> YamlPath {
        self.with(Seg::Key(key))
    }

    pub fn index(&self, index: usize) -> YamlPath {
        self.with(Seg::Index(index))
    }

    pub fn entry(&self, index: usize, key: &str) -> YamlPath {
        self.with(Seg::Entry(index, key.to_string()))
    }

    fn with(&self, seg: Seg) -> YamlPath {
        let mut segs = self.0.clone();
        segs.push(seg);
        YamlPath(segs)
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            let dot = if i == 0 { "" } else { "." };
            match seg {
                Seg::Key(key) => write!(f, "{dot}{key}")?,
                Seg::Index(index) => write!(f, "[{index}]")?,
                Seg::Entry(_, key) => {
                    let plain = !key.is_empty()
                        && key
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                    if plain {
                        write!(f, "{dot}{key}")?;
                    } else {
                        write!(f, "{dot}{}", super::error::quote(key))?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Node {
    /// Where the value starts.
    pos: Pos,
    /// Where its key starts, for mapping values.
    key_pos: Option<Pos>,
    kids: Kids,
}

#[derive(Debug)]
enum Kids {
    Leaf,
    Map(Vec<(String, Node)>),
    Seq(Vec<Node>),
}

/// Positions of every node of the first document of a file.
#[derive(Debug, Default)]
pub(crate) struct PosIndex {
    root: Option<Node>,
}

/// A container still being filled while walking events.
struct Open {
    node: Node,
    /// For mappings: the key read, waiting for its value.
    pending_key: Option<(String, Pos)>,
}

impl PosIndex {
    /// Builds the index. Never fails: if yaml-rust2 disagrees with
    /// serde_norway about the file, the index holds what was read before
    /// the disagreement and lookups fall back to the nearest known parent.
    pub fn build(text: &str) -> PosIndex {
        let mut open: Vec<Open> = Vec::new();
        let mut root = None;
        let _ = for_each_event(text, |event, marker| {
            let pos = Pos::from_marker(&marker);
            match event {
                Event::Scalar(value, ..) => attach(&mut open, &mut root, leaf(pos), Some(value)),
                // An alias is a single leaf here: never expanded.
                Event::Alias(_) => attach(&mut open, &mut root, leaf(pos), None),
                Event::MappingStart(..) => open.push(Open {
                    node: Node {
                        pos,
                        key_pos: None,
                        kids: Kids::Map(Vec::new()),
                    },
                    pending_key: None,
                }),
                Event::SequenceStart(..) => open.push(Open {
                    node: Node {
                        pos,
                        key_pos: None,
                        kids: Kids::Seq(Vec::new()),
                    },
                    pending_key: None,
                }),
                Event::MappingEnd | Event::SequenceEnd => {
                    if let Some(done) = open.pop() {
                        attach(&mut open, &mut root, done.node, None);
                    }
                }
                // Only the first document matters: serde_norway refuses
                // files with more than one.
                Event::DocumentEnd | Event::StreamEnd => return false,
                _ => {}
            }
            true
        });
        // After a parse failure, keep the half-built containers.
        while let Some(done) = open.pop() {
            attach(&mut open, &mut root, done.node, None);
        }
        PosIndex { root }
    }

    /// Where the value at `path` starts, or its nearest known ancestor.
    pub fn value_pos(&self, path: &YamlPath) -> Option<Pos> {
        self.find(path).map(|(node, _)| node.pos)
    }

    /// Where the key of the mapping entry at `path` starts, or the nearest
    /// known position.
    pub fn key_pos(&self, path: &YamlPath) -> Option<Pos> {
        self.find(path)
            .map(|(node, exact)| match (exact, node.key_pos) {
                (true, Some(key_pos)) => key_pos,
                _ => node.pos,
            })
    }

    /// Where the second `key` of the mapping at `path` starts. `path` is in
    /// serde_norway's notation (`.` for the root, `sites[0].tls`), as found
    /// in its "duplicate field" errors, which point at the mapping instead.
    pub fn duplicate_key_pos(&self, path: &str, key: &str) -> Option<Pos> {
        let mut node = self.root.as_ref()?;
        let parts = if path == "." { "" } else { path };
        for part in parts.split('.').filter(|p| !p.is_empty()) {
            let (name, mut indexes) = part.split_at(part.find('[').unwrap_or(part.len()));
            if !name.is_empty() {
                node = match &node.kids {
                    Kids::Map(entries) => {
                        entries.iter().find(|(k, _)| k == name).map(|(_, n)| n)?
                    }
                    _ => return None,
                };
            }
            while let Some(rest) = indexes.strip_prefix('[') {
                let (index, after) = rest.split_once(']')?;
                node = match &node.kids {
                    Kids::Seq(items) => items.get(index.parse::<usize>().ok()?)?,
                    _ => return None,
                };
                indexes = after;
            }
        }
        match &node.kids {
            Kids::Map(entries) => entries
                .iter()
                .filter(|(k, _)| k == key)
                .nth(1)
                .and_then(|(_, n)| n.key_pos),
            _ => None,
        }
    }

    /// The deepest node along `path`, and whether it is the node itself.
    fn find(&self, path: &YamlPath) -> Option<(&Node, bool)> {
        let mut node = self.root.as_ref()?;
        for seg in &path.0 {
            let next = match (seg, &node.kids) {
                (Seg::Key(key), Kids::Map(entries)) => entries
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, child)| child),
                (Seg::Entry(index, _), Kids::Map(entries)) => {
                    entries.get(*index).map(|(_, child)| child)
                }
                (Seg::Index(index), Kids::Seq(items)) => items.get(*index),
                _ => None,
            };
            match next {
                Some(child) => node = child,
                None => return Some((node, false)),
            }
        }
        Some((node, true))
    }
}

fn leaf(pos: Pos) -> Node {
    Node {
        pos,
        key_pos: None,
        kids: Kids::Leaf,
    }
}

/// Adds a finished node to the innermost open container, as a mapping key,
/// a mapping value or a sequence item.
fn attach(open: &mut [Open], root: &mut Option<Node>, mut node: Node, text: Option<String>) {
    let Some(parent) = open.last_mut() else {
        if root.is_none() {
            *root = Some(node);
        }
        return;
    };
    match &mut parent.node.kids {
        Kids::Map(entries) => match parent.pending_key.take() {
            Some((key, key_pos)) => {
                node.key_pos = Some(key_pos);
                entries.push((key, node));
            }
            None => {
                // yaml-rust2 marks a block mapping at its first `:`, so the
                // first key's position is the better start of the mapping.
                if entries.is_empty() && node.pos < parent.node.pos {
                    parent.node.pos = node.pos;
                }
                // Aliases and complex keys have no usable text; they are
                // recorded so that later entries keep their indexes.
                parent.pending_key = Some((text.unwrap_or_default(), node.pos));
            }
        },
        Kids::Seq(items) => items.push(node),
        Kids::Leaf => {}
    }
}

/// Feeds yaml-rust2 events to `f` until it returns false or the stream
/// ends. Returns the parser's error, if it stopped at one.
///
/// yaml-rust2 is only a helper here (positions, depth); a panic inside it
/// must not take the exporter down, so it is contained and treated like a
/// parse failure.
pub(super) fn for_each_event(
    text: &str,
    mut f: impl FnMut(Event, Marker) -> bool,
) -> Option<ScanError> {
    panic::catch_unwind(AssertUnwindSafe(|| {
        let mut parser = Parser::new_from_str(text);
        loop {
            match parser.next_token() {
                Ok((event, marker)) => {
                    if event == Event::StreamEnd || !f(event, marker) {
                        return None;
                    }
                }
                Err(e) => return Some(e),
            }
        }
    }))
    .unwrap_or(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(segs: Vec<Seg>) -> YamlPath {
        YamlPath(segs)
    }

    #[test]
    fn marker_base() {
        // `b` is on line 2, in the 4th column, counted from 1.
        let index = PosIndex::build("a:\n   b\n");
        assert_eq!(
            index.value_pos(&path(vec![Seg::Key("a")])),
            Some(Pos { line: 2, column: 4 })
        );
    }

    #[test]
    fn finds_nested_values_keys_and_parents() {
        let text = "\
probe:
  timeout: 5s
sites:
  - name: shop
    origin: [203.0.113.5, \"x\"]
  - &s {name: b}
  - *s
";
        let index = PosIndex::build(text);
        let site0 = path(vec![Seg::Key("sites"), Seg::Index(0)]);
        assert_eq!(
            index.value_pos(&path(vec![Seg::Key("probe"), Seg::Key("timeout")])),
            Some(Pos {
                line: 2,
                column: 12
            })
        );
        assert_eq!(
            index.key_pos(&path(vec![Seg::Key("probe"), Seg::Key("timeout")])),
            Some(Pos { line: 2, column: 3 })
        );
        // A block mapping starts at its first key.
        assert_eq!(index.value_pos(&site0), Some(Pos { line: 4, column: 5 }));
        let origin1 = site0.key("origin").index(1);
        assert_eq!(
            index.value_pos(&origin1),
            Some(Pos {
                line: 5,
                column: 27
            })
        );
        // Missing keys fall back to the mapping that should hold them.
        assert_eq!(
            index.value_pos(&site0.key("url")),
            Some(Pos { line: 4, column: 5 })
        );
        // A flow mapping starts at its brace; an alias is a leaf.
        let site1 = path(vec![Seg::Key("sites"), Seg::Index(1)]);
        assert_eq!(index.value_pos(&site1), Some(Pos { line: 6, column: 8 }));
        let site2 = path(vec![Seg::Key("sites"), Seg::Index(2)]);
        assert_eq!(
            index.value_pos(&site2.key("name")),
            Some(Pos { line: 7, column: 5 })
        );
        // The root mapping starts at its first key.
        assert_eq!(
            index.value_pos(&YamlPath::root()),
            Some(Pos { line: 1, column: 1 })
        );
    }

    #[test]
    fn entries_are_found_by_index() {
        let index = PosIndex::build("h:\n  a: 1\n  a: 2\n");
        let second = path(vec![Seg::Key("h"), Seg::Entry(1, "a".into())]);
        assert_eq!(index.value_pos(&second), Some(Pos { line: 3, column: 6 }));
        assert_eq!(index.key_pos(&second), Some(Pos { line: 3, column: 3 }));
    }

    #[test]
    fn broken_input_keeps_partial_index() {
        let index = PosIndex::build("a:\n  b: 1\n  c: [\n");
        assert_eq!(
            index.value_pos(&path(vec![Seg::Key("a"), Seg::Key("b")])),
            Some(Pos { line: 2, column: 6 })
        );
        assert_eq!(PosIndex::build("").value_pos(&YamlPath::root()), None);
    }

    #[test]
    fn duplicate_keys() {
        let index = PosIndex::build("a: 1\nsites:\n  - {x: 1, y: 2, x: 3}\na: 2\n");
        assert_eq!(
            index.duplicate_key_pos(".", "a"),
            Some(Pos { line: 4, column: 1 })
        );
        assert_eq!(
            index.duplicate_key_pos("sites[0]", "x"),
            Some(Pos {
                line: 3,
                column: 18
            })
        );
        assert_eq!(index.duplicate_key_pos("sites[1]", "x"), None);
        assert_eq!(index.duplicate_key_pos("sites[x]", "x"), None);
        assert_eq!(index.duplicate_key_pos("a", "x"), None);
    }

    #[test]
    fn path_display() {
        let p = YamlPath::root()
            .key("sites")
            .index(1)
            .key("origin")
            .index(0);
        assert_eq!(p.to_string(), "sites[1].origin[0]");
        let p = YamlPath::root()
            .key("agent")
            .key("interfaces")
            .entry(0, "eth0.100");
        assert_eq!(p.to_string(), "agent.interfaces.\"eth0.100\"");
    }
}
