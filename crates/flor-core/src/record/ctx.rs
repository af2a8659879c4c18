//! Loop context: the stack of enclosing `flor.loop` / `flor.iteration` segments,
//! outermost first, as flordb writes it (`[{"name", "iteration", "value"}, ...]`).

use serde::{Deserialize, Serialize};

use super::value::write_json_str;

/// One enclosing loop: its name, the 0-based position and the item's text, if any.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Segment {
    pub name: String,
    pub iteration: Option<i64>,
    pub value: Option<String>,
}

/// A whole loop stack. Shared between records by `Arc`: it changes once per iteration,
/// not once per logged value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ctx {
    pub segments: Vec<Segment>,
}

impl Ctx {
    /// The stack as flordb's JSON text (also the key of the cache's `ctxs` table).
    pub fn to_json(&self) -> String {
        segments_json(&self.segments)
    }
}

/// A loop stack as flordb's JSON text, with Python's default separators.
pub fn segments_json(segments: &[Segment]) -> String {
    let mut out = String::with_capacity(48 * segments.len());
    out.push('[');
    for (i, seg) in segments.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str("{\"name\": ");
        write_json_str(&seg.name, &mut out);
        out.push_str(", \"iteration\": ");
        match seg.iteration {
            Some(it) => out.push_str(&it.to_string()),
            None => out.push_str("null"),
        }
        out.push_str(", \"value\": ");
        match &seg.value {
            Some(v) => write_json_str(v, &mut out),
            None => out.push_str("null"),
        }
        out.push('}');
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_matches_pythons_default_separators() {
        let ctx = Ctx {
            segments: vec![
                Segment {
                    name: "epoch".into(),
                    iteration: Some(0),
                    value: Some("0".into()),
                },
                Segment {
                    name: "step".into(),
                    iteration: Some(1),
                    value: None,
                },
            ],
        };
        assert_eq!(
            ctx.to_json(),
            r#"[{"name": "epoch", "iteration": 0, "value": "0"}, {"name": "step", "iteration": 1, "value": null}]"#
        );
        let back: Vec<Segment> = serde_json::from_str(&ctx.to_json()).unwrap();
        assert_eq!(back, ctx.segments);
    }
}
