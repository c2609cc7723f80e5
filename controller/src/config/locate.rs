//! Turning byte spans into `LINE:COLUMN` and into the dotted field path an operator reads.
//!
//! serde errors from `toml` carry a byte span but not the key path (toml keeps it private), so
//! the path is recovered by walking a span-preserving `toml_edit` parse of the same text: the
//! same parser produced both, so the offsets agree. Semantic checks use [`Source::position`]
//! directly with the spans of `toml::Spanned` fields.

use std::ops::Range;

use toml_edit::{ImDocument, Item, Table, Value};

/// The text of one cluster file, indexed for position and field lookups.
pub(crate) struct Source<'a> {
    file: &'a str,
    text: &'a str,
    line_starts: Vec<usize>,
    doc: Option<ImDocument<&'a str>>,
}

impl<'a> Source<'a> {
    /// Indexes `text`. A text that does not parse still gets positions, just no field paths.
    pub(crate) fn new(file: &'a str, text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            file,
            text,
            line_starts,
            doc: ImDocument::parse(text).ok(),
        }
    }

    /// The file name errors are reported against.
    pub(crate) fn file(&self) -> &str {
        self.file
    }

    /// 1-based line and character column of a byte offset (clamped to the text).
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts[line - 1];
        // A span may end inside a multi-byte character only if the parser misbehaves; `get`
        // keeps that from panicking.
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count())
            + 1;
        (line, column)
    }

    /// The dotted path (`nodes[2].port`) of the deepest key or value whose span holds `offset`.
    pub(crate) fn field_at(&self, offset: usize) -> Option<String> {
        let doc = self.doc.as_ref()?;
        locate_table(doc.as_table(), "", offset)
    }

    /// Where the table or key at `path` (top-level keys only, e.g. `["ssh"]`) starts: its
    /// header, or the key when the table is implicit or dotted.
    pub(crate) fn key_span(&self, key: &str) -> Option<Range<usize>> {
        let (k, item) = self.doc.as_ref()?.as_table().get_key_value(key)?;
        item.span().or_else(|| k.span())
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn holds(span: Option<Range<usize>>, offset: usize) -> bool {
    span.is_some_and(|s| s.start == offset || s.contains(&offset))
}

fn locate_table(table: &Table, path: &str, offset: usize) -> Option<String> {
    for (key, item) in table.iter() {
        let here = join(path, key);
        if let Some(found) = locate_item(item, &here, offset) {
            return Some(found);
        }
        if holds(table.key(key).and_then(|k| k.span()), offset) {
            return Some(here);
        }
    }
    None
}

fn locate_item(item: &Item, path: &str, offset: usize) -> Option<String> {
    match item {
        Item::None => None,
        Item::Value(v) => locate_value(v, path, offset),
        Item::Table(t) => locate_table(t, path, offset)
            .or_else(|| holds(t.span(), offset).then(|| path.to_owned())),
        Item::ArrayOfTables(a) => a.iter().enumerate().find_map(|(i, t)| {
            let here = format!("{path}[{i}]");
            locate_table(t, &here, offset).or_else(|| holds(t.span(), offset).then_some(here))
        }),
    }
}

fn locate_value(value: &Value, path: &str, offset: usize) -> Option<String> {
    let inner = match value {
        Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, v)| locate_value(v, &format!("{path}[{i}]"), offset)),
        Value::InlineTable(t) => t.iter().find_map(|(key, v)| {
            let here = join(path, key);
            locate_value(v, &here, offset)
                .or_else(|| holds(t.key(key).and_then(|k| k.span()), offset).then_some(here))
        }),
        _ => None,
    };
    inner.or_else(|| holds(value.span(), offset).then(|| path.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "name = \"vmst\"\n[ssh]\nprivate_key = \"/k\"\n[pools.web]\nrole = \"web\"\nqueues = [\"a\", \"b\"]\n[[nodes]]\nname = \"n1\"\n[[nodes]]\nname = \"n2\"\nport = 22\n";

    fn offset_of(needle: &str, nth: usize) -> usize {
        TEXT.match_indices(needle).nth(nth).unwrap().0
    }

    #[test]
    fn positions_are_one_based_lines_and_character_columns() {
        let s = Source::new("f", "ab\ncé d\n");
        assert_eq!(s.position(0), (1, 1));
        assert_eq!(s.position(3), (2, 1));
        // "é" is two bytes but one column.
        assert_eq!(s.position(7), (2, 4));
        assert_eq!(s.position(999), (3, 1));
    }

    #[test]
    fn field_at_names_keys_values_and_array_elements() {
        let s = Source::new("f", TEXT);
        let cases = [
            (offset_of("name", 0), "name"),
            (offset_of("\"vmst\"", 0), "name"),
            (offset_of("/k", 0), "ssh.private_key"),
            (offset_of("\"web\"", 0), "pools.web.role"),
            (offset_of("\"b\"", 0), "pools.web.queues[1]"),
            (offset_of("\"n2\"", 0), "nodes[1].name"),
            (offset_of("22", 0), "nodes[1].port"),
        ];
        for (offset, want) in cases {
            assert_eq!(s.field_at(offset).as_deref(), Some(want), "offset {offset}");
        }
    }

    #[test]
    fn key_span_finds_header_tables() {
        let s = Source::new("f", TEXT);
        let span = s.key_span("ssh").unwrap();
        assert_eq!(s.position(span.start), (2, 1));
    }
}
