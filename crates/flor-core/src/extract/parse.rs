//! What one captured line says, by flordb 4.0.1's rules (spec §7.2): an index (which
//! epoch or step the line is about) and up to eight `key: number` or `key=number`
//! measures. A value is only ever read from text that matches a rule; anything that
//! looks like a URL, a time or date, a percentage, a unit or a path is left alone.
//!
//! Beyond 4.0.1, a field of a `|`-separated line that is exactly `key number`
//! (`epoch 3 | loss 0.1234 | acc 0.98`) is a measure too: that table layout is what
//! most training scripts print.

use crate::record::Value;

/// Loop names a line's index may have.
pub const INDEX_NAMES: [&str; 5] = ["epoch", "step", "iteration", "iter", "batch"];

/// Measures a line gives at most.
pub const MAX_PAIRS: usize = 8;

/// What a line says.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LineFacts {
    /// The loop the line is about and its iteration (`epoch 3` → `("epoch", 3)`).
    pub index: Option<(String, i64)>,
    /// Named numbers, in the order they appear, each key once (its first value).
    pub measures: Vec<(String, Value)>,
}

/// Reads one line.
pub fn parse_line(line: &str) -> LineFacts {
    let leading = leading_index(line);
    let mut pairs = pairs(line);
    if pairs.is_empty() {
        pairs = field_pairs(line);
    }
    let mut facts = LineFacts {
        index: leading.clone(),
        measures: Vec::new(),
    };
    for (key, value) in pairs {
        let lower = key.to_ascii_lowercase();
        let is_index_name = INDEX_NAMES.contains(&lower.as_str());
        if let Some((name, _)) = &facts.index {
            // A later pair with the index's own name is the index again, not a measure.
            if *name == lower {
                continue;
            }
        } else if is_index_name {
            if let Value::Int(i) = value {
                if i >= 0 {
                    facts.index = Some((lower, i));
                    continue;
                }
            }
        }
        if facts.measures.iter().any(|(k, _)| *k == key) {
            continue;
        }
        if facts.measures.len() == MAX_PAIRS {
            break;
        }
        facts.measures.push((key, value));
    }
    facts
}

/// `epoch 3 |`, `Epoch 1/10`, `step: 1200` at the start of the line.
fn leading_index(line: &str) -> Option<(String, i64)> {
    let text = line.trim_start_matches(|c: char| c.is_whitespace() || c == '[' || c == '(');
    let lower = text
        .get(..10.min(text.len()))
        .unwrap_or("")
        .to_ascii_lowercase();
    // Longest first: `iteration` before `iter`.
    let name = ["iteration", "epoch", "batch", "step", "iter"]
        .into_iter()
        .find(|n| lower.starts_with(n))?;
    let rest = &text[name.len()..];
    let after_sep = rest.trim_start_matches([' ', '\t']);
    let after_sep = after_sep
        .strip_prefix([':', '='])
        .map_or(after_sep, |r| r.trim_start_matches([' ', '\t']));
    if after_sep.len() == rest.len() {
        return None; // `epochs 3`, `epoch3`: no separator after the name
    }
    let digits = after_sep.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let mut end = digits;
    let tail = &after_sep[digits..];
    if let Some(total) = tail.strip_prefix('/') {
        let more = total.bytes().take_while(u8::is_ascii_digit).count();
        if more > 0 {
            end += 1 + more;
        }
    }
    let next = after_sep[end..].chars().next();
    if next.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
        return None; // `epoch 1.5`, `step 3rd`
    }
    let i = after_sep[..digits].parse().ok()?;
    Some((name.to_string(), i))
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// Every `key: number` and `key=number` pair, in order.
fn pairs(line: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < line.len() {
        let Some(start) = line[pos..]
            .char_indices()
            .find(|&(i, c)| {
                (c.is_ascii_alphabetic() || c == '_') && {
                    let at = pos + i;
                    let before = line[..at].chars().next_back();
                    !before.is_some_and(|b| is_key_char(b) || matches!(b, '/' | ':' | '\\'))
                }
            })
            .map(|(i, _)| pos + i)
        else {
            break;
        };
        let key_len = line[start..]
            .find(|c: char| !is_key_char(c))
            .unwrap_or(line.len() - start);
        let key = line[start..start + key_len].trim_end_matches(['.', '-']);
        let after_key = &line[start + key.len()..];
        let spaced = after_key.trim_start_matches([' ', '\t']);
        let value_text = match spaced.chars().next() {
            Some(':') | Some('=') => spaced[1..].trim_start_matches([' ', '\t']),
            _ => {
                pos = start + key_len.max(1);
                continue;
            }
        };
        let consumed = line.len() - value_text.len();
        match number(value_text) {
            Some((value, len)) => {
                out.push((key.to_string(), value));
                pos = consumed + len;
            }
            None => pos = consumed.max(start + 1),
        }
    }
    out
}

/// `key number` fields of a `|`-separated line.
fn field_pairs(line: &str) -> Vec<(String, Value)> {
    if !line.contains('|') {
        return Vec::new();
    }
    line.split('|')
        .filter_map(|field| {
            let field = field.trim();
            let (key, value) = field.split_once(char::is_whitespace)?;
            let value = value.trim();
            let key_ok = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && key.chars().all(is_key_char);
            let (v, len) = number(value)?;
            (key_ok && len == value.len()).then(|| (key.to_string(), v))
        })
        .collect()
}

/// A number at the start of `text` (sign, digits, decimals, exponent) that is not
/// followed by what would make it something else (`90%`, `11:27`, `3.5GB`, `1/2`,
/// `2026-08-13`): the value and how many bytes it took.
fn number(text: &str) -> Option<(Value, usize)> {
    let b = text.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let int_start = i;
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let mut is_float = false;
    if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        is_float = true;
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    if i == int_start {
        return None;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if b.get(j).is_some_and(u8::is_ascii_digit) {
            while b.get(j).is_some_and(u8::is_ascii_digit) {
                j += 1;
            }
            is_float = true;
            i = j;
        }
    }
    let next = text[i..].chars().next();
    let bad_next = next.is_some_and(|c| {
        c.is_alphanumeric() || matches!(c, '_' | '%' | ':' | '/' | '\\' | '-' | '+')
    });
    let dot_then_more = text[i..]
        .strip_prefix('.')
        .and_then(|r| r.chars().next())
        .is_some_and(|c| c.is_alphanumeric() || c == '_');
    if bad_next || dot_then_more {
        return None;
    }
    let literal = &text[..i];
    let value = if is_float {
        Value::Float(literal.parse().ok()?)
    } else {
        match literal.parse::<i64>() {
            Ok(n) => Value::Int(n),
            Err(_) => Value::Float(literal.parse().ok()?),
        }
    };
    Some((value, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Facts = (Option<(String, i64)>, Vec<(String, Value)>);

    fn facts(line: &str) -> Facts {
        let f = parse_line(line);
        (f.index, f.measures)
    }

    fn m(k: &str, v: Value) -> (String, Value) {
        (k.to_string(), v)
    }

    #[test]
    fn indexes_and_measures_as_flordb_reads_them() {
        assert_eq!(
            facts("epoch 0 | loss: 0.5 | acc=0.98"),
            (
                Some(("epoch".into(), 0)),
                vec![m("loss", Value::Float(0.5)), m("acc", Value::Float(0.98))]
            )
        );
        assert_eq!(facts("Epoch 1/10 lr=1e-3").0, Some(("epoch".into(), 1)));
        assert_eq!(
            facts("step: 1200, loss=2").1,
            vec![m("loss", Value::Int(2))]
        );
        // A pair naming an index counts when nothing leads the line.
        assert_eq!(facts("loss=0.25 step=40").0, Some(("step".into(), 40)));
        // A different step name after a leading index stays a measure.
        assert_eq!(
            facts("epoch 2 | step: 200 | loss: 0.5").1,
            vec![m("step", Value::Int(200)), m("loss", Value::Float(0.5))]
        );
        assert_eq!(
            facts("epoch 1 | epoch=1 | x=3").1,
            vec![m("x", Value::Int(3))]
        );
        assert_eq!(facts("epoch 1.5 loss=1").0, None);
        assert_eq!(facts("epochs 3 loss=1").0, None);
    }

    #[test]
    fn what_only_looks_like_a_number_is_left_alone() {
        for line in [
            "see http://host:80/path",
            "at 11:27:06 started",
            "time=2026-08-13T11:27:06",
            "acc: 90%",
            "ckpt=/tmp/x.pth",
            "device: cuda",
            "size=3.5GB",
            "ratio=1/2",
            "name=v1.2.3",
        ] {
            assert_eq!(facts(line).1, vec![], "{line}");
        }
        assert_eq!(
            facts("a=1 a=2 b=-3.5e-2").1,
            vec![m("a", Value::Int(1)), m("b", Value::Float(-0.035))]
        );
    }

    #[test]
    fn at_most_eight_measures_and_table_fields() {
        let line = (0..12)
            .map(|i| format!("k{i}={i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(facts(&line).1.len(), MAX_PAIRS);
        assert_eq!(
            facts("epoch 3 | loss 0.1234 | acc 0.98 | note fine"),
            (
                Some(("epoch".into(), 3)),
                vec![
                    m("loss", Value::Float(0.1234)),
                    m("acc", Value::Float(0.98))
                ]
            )
        );
        // Without separators, `key number` is not read: it could be any sentence.
        assert_eq!(facts("took 3 seconds").1, vec![]);
    }
}
