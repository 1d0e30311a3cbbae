//! Limits checked before serde_norway reads a file, and where the errors it
//! reports without a position are: alias expansion, nesting depth, a
//! second document. Each walks yaml-rust2 events once and expands nothing.

use std::collections::HashMap;

use yaml_rust2::parser::Event;

use super::position::{for_each_event, Pos};

/// Deepest nesting of mappings and sequences accepted, the root included.
/// The config schema needs 4 levels; serde_norway stops at 128 anyway.
pub(crate) const MAX_DEPTH: usize = 128;

/// Most nodes that aliases may add to the document when expanded. Sharing
/// a list of origins between a few hundred sites stays far below it.
pub(crate) const MAX_ALIAS_NODES: u64 = 1_000_000;

/// Why [`precheck`] refuses a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Aliases expand to more than [`MAX_ALIAS_NODES`] nodes.
    AliasExpansion,
}

/// Checks, before serde_norway sees the text, what serde_norway does not
/// bound well enough, and returns where the text goes over the limit:
///
/// - nesting depth: libyaml, under serde_norway, takes time quadratic in
///   the depth of flow nesting while it reads the document, before
///   serde_norway's own depth limit gets a say (11 s for 100 000 `[`,
///   hours for the 32 MiB the size limit lets through);
/// - alias expansion: serde_norway's repetition limit counts alias jumps,
///   not the nodes a jump copies, so a large anchored list aliased from
///   many sites expands to billions of values within the limit.
///
/// Walks yaml-rust2 events once, keeping per anchor the size of its node
/// expanded, and never expands anything. Other parse errors are left to
/// serde_norway, whose messages are the ones reported.
pub(crate) fn precheck(text: &str) -> Option<(Pos, Refusal)> {
    // Open containers: (anchor id, expanded size so far).
    let mut open: Vec<(usize, u64)> = Vec::new();
    // Anchor id -> expanded size of the anchored node.
    let mut anchor_size: HashMap<usize, u64> = HashMap::new();
    let mut expanded: u64 = 0;
    let mut found = None;
    let error = for_each_event(text, |event, marker| {
        let size = match event {
            Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                if open.len() >= MAX_DEPTH {
                    found = Some((Pos::from_marker(&marker), Refusal::TooDeep));
                    return false;
                }
                open.push((anchor, 1));
                return true;
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let Some((anchor, size)) = open.pop() else {
                    return true;
                };
                if anchor != 0 {
                    anchor_size.insert(anchor, size);
                }
                size
            }
            Event::Scalar(_, _, anchor, _) => {
                if anchor != 0 {
                    anchor_size.insert(anchor, 1);
                }
                1
            }
            Event::Alias(anchor) => {
                // An alias to a node still open (a cycle) counts as 1 here;
                // serde_norway's repetition limit stops cycles.
                let size = anchor_size.get(&anchor).copied().unwrap_or(1);
                expanded = expanded.saturating_add(size);
                if expanded > MAX_ALIAS_NODES {
                    found = Some((Pos::from_marker(&marker), Refusal::AliasExpansion));
                    return false;
                }
                size
            }
            // One document is all serde_norway reads.
            Event::DocumentEnd => return false,
            _ => return true,
        };
        if let Some((_, parent)) = open.last_mut() {
            *parent = parent.saturating_add(size);
        }
        true
    });
    // yaml-rust2's scanner has a depth limit of its own, and its read-ahead
    // can reach it before the parser reports the container past ours.
    found.or_else(|| {
        error
            .filter(|e| e.info().contains("recursion limit"))
            .map(|e| (Pos::from_marker(e.marker()), Refusal::TooDeep))
    })
}

/// After serde_norway gave up with "repetition limit exceeded", finds the
/// alias responsible.
///
/// serde_norway counts one "jump" each time it follows an alias, including
/// aliases inside the anchored node it jumps to, and gives up when the
/// count exceeds 100 jumps per event of the document. This replays that
/// count without expanding anything (per anchor, the jumps its node holds)
/// and returns the alias at which the count crosses the limit, with the
/// count so far; if the replay disagrees, the most expensive alias.
pub(crate) fn locate_alias_bomb(text: &str) -> Option<(Pos, u64)> {
    // Anchor id -> jumps one alias to it costs, its own jump excluded.
    let mut anchor_cost: HashMap<usize, u64> = HashMap::new();
    // Open containers: (anchor id, jumps inside so far).
    let mut open: Vec<(usize, u64)> = Vec::new();
    // Every alias in document order with the jumps following it costs.
    let mut aliases: Vec<(Pos, u64)> = Vec::new();
    let mut node_events: u64 = 0;
    let _ = for_each_event(text, |event, marker| {
        match event {
            Event::Scalar(_, _, anchor, _) => {
                node_events += 1;
                if anchor != 0 {
                    anchor_cost.insert(anchor, 0);
                }
            }
            Event::Alias(anchor) => {
                node_events += 1;
                let cost = anchor_cost
                    .get(&anchor)
                    .copied()
                    .unwrap_or(0)
                    .saturating_add(1);
                if let Some((_, inside)) = open.last_mut() {
                    *inside = inside.saturating_add(cost);
                }
                aliases.push((Pos::from_marker(&marker), cost));
            }
            Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                node_events += 1;
                open.push((anchor, 0));
            }
            Event::MappingEnd | Event::SequenceEnd => {
                node_events += 1;
                if let Some((anchor, inside)) = open.pop() {
                    if anchor != 0 {
                        anchor_cost.insert(anchor, inside);
                    }
                    if let Some((_, outer)) = open.last_mut() {
                        *outer = outer.saturating_add(inside);
                    }
                }
            }
            Event::DocumentEnd => return false,
            _ => {}
        }
        true
    });
    let limit = node_events.saturating_mul(100);
    let mut total: u64 = 0;
    for &(pos, cost) in &aliases {
        total = total.saturating_add(cost);
        if total > limit {
            return Some((pos, total));
        }
    }
    aliases.into_iter().max_by_key(|&(_, cost)| cost)
}

/// Where the second document of a multi-document file starts.
pub(crate) fn second_document_pos(text: &str) -> Option<Pos> {
    let mut seen = 0;
    let mut found = None;
    let _ = for_each_event(text, |event, marker| {
        if event == Event::DocumentStart {
            seen += 1;
            if seen == 2 {
                found = Some(Pos::from_marker(&marker));
                return false;
            }
        }
        true
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precheck_limits() {
        assert_eq!(precheck("a: [1, {b: c}]\n"), None);
        let deep = format!("a: {}", "[".repeat(MAX_DEPTH));
        assert_eq!(
            precheck(&deep),
            Some((
                Pos {
                    line: 1,
                    column: 4 + MAX_DEPTH - 1
                },
                Refusal::TooDeep
            ))
        );
        // 99 aliases of a 10 001-node list stay within the limit, the
        // 100th passes it.
        let list = format!("[{}]", "x, ".repeat(10_000));
        let text = format!("a: &a {list}\nb: [{}]\n", "*a, ".repeat(101));
        assert_eq!(
            precheck(&text),
            Some((
                Pos {
                    line: 2,
                    column: 5 + 4 * 99
                },
                Refusal::AliasExpansion
            ))
        );
        let text = format!("a: &a {list}\nb: [{}]\n", "*a, ".repeat(99));
        assert_eq!(precheck(&text), None);
        // A cycle is left to serde_norway.
        assert_eq!(precheck("a: &a [*a]\n"), None);
    }

    #[test]
    fn second_document() {
        assert_eq!(
            second_document_pos("a: 1\n---\nb: 2\n"),
            Some(Pos { line: 2, column: 1 })
        );
        assert_eq!(second_document_pos("a: 1\n"), None);
    }
}
