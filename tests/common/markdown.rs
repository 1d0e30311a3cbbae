//! Links into the project's Markdown documents: the anchors GitHub makes
//! for their headings.

use std::collections::BTreeSet;

use super::paths;

/// The anchors of a Markdown text: every heading outside fenced code
/// blocks, as GitHub makes its anchor (lowercased, punctuation other than
/// `-` and `_` dropped, spaces to `-`), and every explicit `id="..."` or
/// `name="..."` in HTML.
pub fn anchors(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        if let Some(heading) = line.strip_prefix('#') {
            let heading = heading.trim_start_matches('#');
            if heading.starts_with(' ') {
                out.insert(slug(heading.trim()));
            }
        }
        for attribute in ["id=\"", "name=\""] {
            for (i, _) in line.match_indices(attribute) {
                let rest = &line[i + attribute.len()..];
                if let Some((value, _)) = rest.split_once('"') {
                    out.insert(value.to_owned());
                }
            }
        }
    }
    out
}

/// GitHub's anchor for a heading.
fn slug(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of the runbook, `docs/runbook/<page>.md`, each as
/// `<page>.md#<anchor>`: alerts and the dashboard link into them.
pub fn runbook_anchors() -> BTreeSet<String> {
    let dir = paths::root().join("docs/runbook");
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(page) = name.strip_suffix(".md") {
            let text = std::fs::read_to_string(&p).unwrap();
            out.extend(anchors(&text).into_iter().map(|a| format!("{page}.md#{a}")));
        }
    }
    out
}
