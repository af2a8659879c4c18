//! Loop context: the stack of enclosing `flor.loop` / `flor.iteration` segments,
//! outermost first, as flordb writes it (`[{"name", "iteration", "value"}, ...]`).
//!
//! The recorder keeps the stack as [`Position`]s, which clone without allocating, and
//! hands changes of it to the writer thread; the JSON text is built there, off the
//! training thread (see `writer`).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::value::write_json_str;
use super::Name;

/// One enclosing loop as read back from a run file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Segment {
    pub name: String,
    pub iteration: Option<i64>,
    pub value: Option<String>,
}

/// The text flordb records for a loop's item, when the item is a plain value. Integers
/// (`range`) stay numbers until the writer renders them: no allocation per step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Int(i64),
    Text(Arc<str>),
}

impl From<&str> for Item {
    fn from(text: &str) -> Self {
        Item::Text(text.into())
    }
}

/// One loop of the live stack: its name, 0-based position and item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub name: Name,
    pub iteration: Option<i64>,
    pub item: Option<Item>,
}

impl Position {
    /// Whether the position shows in a record's context (a loop not yet started does not).
    fn shows(&self) -> bool {
        self.iteration.is_some() || self.item.is_some()
    }
}

/// Appends a live stack as flordb's JSON text; `null` when no loop shows.
pub fn write_stack_json(stack: &[Position], out: &mut String) {
    let mut shown = stack.iter().filter(|p| p.shows()).peekable();
    if shown.peek().is_none() {
        out.push_str("null");
        return;
    }
    out.push('[');
    for (i, p) in shown.enumerate() {
        let value = p.item.as_ref().map(|item| match item {
            Item::Int(n) => ItemText::Int(*n),
            Item::Text(t) => ItemText::Text(t),
        });
        write_segment(i, &p.name, p.iteration, value, out);
    }
    out.push(']');
}

/// A stack read back from a file as flordb's JSON text (the key of the cache's `ctxs`).
pub fn segments_json(segments: &[Segment]) -> String {
    let mut out = String::with_capacity(48 * segments.len());
    out.push('[');
    for (i, seg) in segments.iter().enumerate() {
        let value = seg.value.as_deref().map(ItemText::Text);
        write_segment(i, &seg.name, seg.iteration, value, &mut out);
    }
    out.push(']');
    out
}

enum ItemText<'a> {
    Int(i64),
    Text(&'a str),
}

/// One `{"name": ..., "iteration": ..., "value": ...}` with Python's default separators.
fn write_segment(
    index: usize,
    name: &str,
    iteration: Option<i64>,
    value: Option<ItemText<'_>>,
    out: &mut String,
) {
    use std::fmt::Write;
    if index > 0 {
        out.push_str(", ");
    }
    out.push_str("{\"name\": ");
    write_json_str(name, out);
    out.push_str(", \"iteration\": ");
    match iteration {
        Some(it) => {
            let _ = write!(out, "{it}");
        }
        None => out.push_str("null"),
    }
    out.push_str(", \"value\": ");
    match value {
        Some(ItemText::Int(n)) => {
            let _ = write!(out, "\"{n}\"");
        }
        Some(ItemText::Text(t)) => write_json_str(t, out),
        None => out.push_str("null"),
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack() -> Vec<Position> {
        vec![
            Position {
                name: "epoch".into(),
                iteration: Some(0),
                item: Some(Item::Int(0)),
            },
            Position {
                name: "step".into(),
                iteration: Some(1),
                item: None,
            },
        ]
    }

    #[test]
    fn json_matches_pythons_default_separators() {
        let mut out = String::new();
        write_stack_json(&stack(), &mut out);
        assert_eq!(
            out,
            r#"[{"name": "epoch", "iteration": 0, "value": "0"}, {"name": "step", "iteration": 1, "value": null}]"#
        );
        let back: Vec<Segment> = serde_json::from_str(&out).unwrap();
        assert_eq!(segments_json(&back), out);
    }

    #[test]
    fn loops_not_yet_started_are_left_out() {
        let mut s = stack();
        s.push(Position {
            name: "batch".into(),
            iteration: None,
            item: None,
        });
        s[1].item = Some(Item::from("a \"b\""));
        let mut out = String::new();
        write_stack_json(&s, &mut out);
        let back: Vec<Segment> = serde_json::from_str(&out).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].value.as_deref(), Some("a \"b\""));

        let mut empty = String::new();
        write_stack_json(&s[2..], &mut empty);
        assert_eq!(empty, "null");
    }
}
