//! Logged values. They keep their JSON type end to end: numbers stay numbers in the
//! JSONL, in SQLite and in the pivoted table.

use std::fmt::Write as _;

/// A logged value. Lists and objects keep their JSON structure in [`Value::Json`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// A list, an object, or an integer too large for 64 bits.
    Json(serde_json::Value),
}

/// The type tag stored beside each value in the SQLite cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ValueType {
    Null = 0,
    Bool = 1,
    Int = 2,
    Float = 3,
    Str = 4,
    Json = 5,
}

impl ValueType {
    /// Reads a stored tag back; unknown tags read as JSON text.
    pub fn from_u8(tag: u8) -> Self {
        match tag {
            0 => ValueType::Null,
            1 => ValueType::Bool,
            2 => ValueType::Int,
            3 => ValueType::Float,
            4 => ValueType::Str,
            _ => ValueType::Json,
        }
    }
}

impl Value {
    /// The tag of this value's type.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::Null => ValueType::Null,
            Value::Bool(_) => ValueType::Bool,
            Value::Int(_) => ValueType::Int,
            Value::Float(_) => ValueType::Float,
            Value::Str(_) => ValueType::Str,
            Value::Json(_) => ValueType::Json,
        }
    }

    /// Converts parsed JSON, keeping scalars as scalars.
    pub fn from_json(json: serde_json::Value) -> Self {
        use serde_json::Value as J;
        match json {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(b),
            J::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => Value::Int(i),
                // An integer beyond 64 bits keeps every digit (serde_json's
                // `arbitrary_precision`): a seed of 2**70 replays as itself.
                (None, Some(f)) if !n.is_u64() && !is_integer(&n) => Value::Float(f),
                _ => Value::Json(J::Number(n)),
            },
            J::String(s) => match s.as_str() {
                NAN_TOKEN => Value::Float(f64::NAN),
                INF_TOKEN => Value::Float(f64::INFINITY),
                NEG_INF_TOKEN => Value::Float(f64::NEG_INFINITY),
                _ => Value::Str(s),
            },
            other => Value::Json(other),
        }
    }

    /// Appends this value as JSON. Non-finite floats are written as Python's `json`
    /// module writes them (`NaN`, `Infinity`), so flordb reads our files too.
    pub fn write_json(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => write_float(*f, out),
            Value::Str(s) => write_json_str(s, out),
            Value::Json(j) => write_structured(j, out),
        }
    }

    /// The value as text, the way the pivot prints it in tables and CSV.
    pub fn display(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Str(s) => s.clone(),
            other => {
                let mut s = String::new();
                other.write_json(&mut s);
                s
            }
        }
    }
}

/// Whether a JSON number is written as an integer (no fraction, no exponent).
pub fn is_integer(n: &serde_json::Number) -> bool {
    let text = n.to_string();
    let digits = text.strip_prefix('-').unwrap_or(&text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn write_float(f: f64, out: &mut String) {
    if f.is_nan() {
        out.push_str("NaN");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
    } else if f == f.trunc() && f.abs() < 1e16 {
        // Keep a decimal point so the value reads back as a float, as Python writes it.
        let _ = write!(out, "{f:.1}");
    } else if f != 0.0 && !(1e-4..1e16).contains(&f.abs()) {
        // Where Python's repr switches to an exponent: 1e16 must not read back as an int.
        let _ = write!(out, "{f:e}");
    } else {
        let _ = write!(out, "{f}");
    }
}

/// Appends `s` as a JSON string literal.
pub fn write_json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A float as a JSON value inside a list or object: a number, or for NaN and the
/// infinities the marker [`Value::write_json`] writes as Python's literal.
pub fn float_json(f: f64) -> serde_json::Value {
    match serde_json::Number::from_f64(f) {
        Some(n) => serde_json::Value::Number(n),
        None if f.is_nan() => serde_json::Value::String(NAN_TOKEN.into()),
        None if f > 0.0 => serde_json::Value::String(INF_TOKEN.into()),
        None => serde_json::Value::String(NEG_INF_TOKEN.into()),
    }
}

/// Writes a list or object, its non-finite floats (markers) as `NaN`, `Infinity` and
/// `-Infinity`, as Python's `json` writes them.
fn write_structured(j: &serde_json::Value, out: &mut String) {
    let text = j.to_string();
    if !text.contains("\\u0000flor:") {
        out.push_str(&text);
        return;
    }
    out.push_str(
        &text
            .replace("\"\\u0000flor:NaN\"", "NaN")
            .replace("\"\\u0000flor:Infinity\"", "Infinity")
            .replace("\"\\u0000flor:-Infinity\"", "-Infinity"),
    );
}

const NAN_TOKEN: &str = "\u{0}flor:NaN";
const INF_TOKEN: &str = "\u{0}flor:Infinity";
const NEG_INF_TOKEN: &str = "\u{0}flor:-Infinity";

/// Parses one JSON document that may contain Python's non-standard `NaN`, `Infinity`
/// and `-Infinity` literals (flordb writes them for diverged losses).
pub fn parse_lenient(text: &str) -> serde_json::Result<serde_json::Value> {
    match serde_json::from_str(text) {
        Ok(v) => Ok(v),
        Err(err) => {
            let Some(patched) = replace_non_finite(text) else {
                return Err(err);
            };
            serde_json::from_str(&patched)
        }
    }
}

/// Rewrites bare non-finite literals outside string literals into marker strings that
/// [`Value::from_json`] turns back into floats. Returns `None` when there are none.
fn replace_non_finite(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len() + 16);
    let mut in_string = false;
    let mut escaped = false;
    let mut changed = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let replacement = [
            ("-Infinity", NEG_INF_TOKEN),
            ("Infinity", INF_TOKEN),
            ("NaN", NAN_TOKEN),
        ]
        .into_iter()
        .find(|(lit, _)| rest.starts_with(lit));
        if let Some((lit, token)) = replacement {
            out.push('"');
            out.push_str(&token.replace('\u{0}', "\\u0000"));
            out.push('"');
            rest = &rest[lit.len()..];
            changed = true;
            continue;
        }
        if c == '"' {
            in_string = true;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(v: &Value) -> Value {
        let mut s = String::new();
        v.write_json(&mut s);
        Value::from_json(parse_lenient(&s).unwrap())
    }

    #[test]
    fn scalars_keep_their_type() {
        for v in [
            Value::Null,
            Value::Bool(true),
            Value::Int(-3),
            Value::Float(2.0),
            Value::Float(0.1),
            Value::Float(1e-7),
            Value::Float(1e300),
            Value::Str("a \"q\" \n\u{1}é".into()),
        ] {
            assert_eq!(round_trip(&v), v, "{v:?}");
        }
    }

    #[test]
    fn every_float_reads_back_bit_for_bit() {
        // 2^70 once read back one ulp low; walk the exponents with varied mantissas.
        let mut bits: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut checked = 0;
        for _ in 0..20_000 {
            bits = bits
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let f = f64::from_bits(bits);
            if f.is_finite() {
                assert_eq!(round_trip(&Value::Float(f)), Value::Float(f), "{f:e}");
                checked += 1;
            }
        }
        assert!(checked > 19_000);
        let f = 2f64.powi(70);
        assert_eq!(round_trip(&Value::Float(f)), Value::Float(f));
    }

    #[test]
    fn non_finite_floats_round_trip_like_python() {
        let mut s = String::new();
        Value::Float(f64::NAN).write_json(&mut s);
        assert_eq!(s, "NaN");
        assert!(matches!(round_trip(&Value::Float(f64::NAN)), Value::Float(f) if f.is_nan()));
        assert_eq!(
            round_trip(&Value::Float(f64::NEG_INFINITY)),
            Value::Float(f64::NEG_INFINITY)
        );
        // A string that merely contains the word stays a string.
        let parsed = parse_lenient(r#"{"a": "NaN here", "b": NaN}"#).unwrap();
        assert_eq!(parsed["a"], "NaN here");
        assert!(matches!(Value::from_json(parsed["b"].clone()), Value::Float(f) if f.is_nan()));
    }

    #[test]
    fn non_finite_floats_in_lists_round_trip() {
        let list = serde_json::Value::Array(vec![
            float_json(1.5),
            float_json(f64::NAN),
            float_json(f64::NEG_INFINITY),
        ]);
        let mut s = String::new();
        Value::Json(list.clone()).write_json(&mut s);
        assert_eq!(s, "[1.5,NaN,-Infinity]");
        assert_eq!(round_trip(&Value::Json(list.clone())), Value::Json(list));
    }

    #[test]
    fn lists_and_big_integers_stay_json() {
        let v = Value::from_json(serde_json::json!([1, [2, 3]]));
        assert!(matches!(v, Value::Json(_)));
        let big = Value::from_json(parse_lenient("18446744073709551615").unwrap());
        assert!(matches!(big, Value::Json(_)));
        // Beyond u64 too, every digit is kept, in lists as well.
        for text in [
            "1180591620717411303424",
            "-1180591620717411303425",
            "[1180591620717411303427, 0.1]",
        ] {
            let v = Value::from_json(parse_lenient(text).unwrap());
            assert!(matches!(v, Value::Json(_)), "{text}");
            let mut out = String::new();
            v.write_json(&mut out);
            assert_eq!(out.replace(' ', ""), text.replace(' ', ""));
        }
        assert_eq!(
            Value::from_json(parse_lenient("2.5e3").unwrap()),
            Value::Float(2500.0)
        );
    }
}
