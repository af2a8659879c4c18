//! One record per JSONL line, in flordb 4's format (spec §4.2), so flordb projects'
//! `.flor/runs/` import unchanged and our files read like theirs.

use serde::Deserialize;

use super::value::{parse_lenient, write_json_str, Value};
use super::{Kind, Record, Segment};

/// The per-run fields repeated on every line, rendered once per run.
#[derive(Debug, Clone)]
pub struct LineHeader {
    prefix: String,
}

impl LineHeader {
    pub fn new(projid: &str, tstamp: &str, filename: &str) -> Self {
        let mut prefix = String::from("{\"projid\": ");
        write_json_str(projid, &mut prefix);
        prefix.push_str(", \"tstamp\": ");
        write_json_str(tstamp, &mut prefix);
        prefix.push_str(", \"filename\": ");
        write_json_str(filename, &mut prefix);
        prefix.push_str(", \"ctx\": ");
        LineHeader { prefix }
    }
}

/// Appends `record` as one line. `ctx_json` is the record's context already rendered
/// (the writer caches it: the context changes once per iteration).
pub fn write_line(header: &LineHeader, ctx_json: Option<&str>, record: &Record, out: &mut String) {
    out.push_str(&header.prefix);
    out.push_str(ctx_json.unwrap_or("null"));
    out.push_str(", \"name\": ");
    write_json_str(&record.name, out);
    out.push_str(", \"value\": ");
    record.value.write_json(out);
    out.push_str(", \"type\": ");
    out.push(char::from(b'0' + record.kind as u8));
    if record.arg {
        out.push_str(", \"arg\": true");
    }
    out.push_str("}\n");
}

/// A line read back from a run file.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedLine {
    pub projid: Option<String>,
    pub tstamp: Option<String>,
    pub filename: Option<String>,
    pub ctx: Option<Vec<Segment>>,
    pub name: String,
    pub value: Value,
    pub kind: Kind,
    pub arg: bool,
}

#[derive(Deserialize)]
struct RawLine {
    projid: Option<String>,
    tstamp: Option<String>,
    filename: Option<String>,
    ctx: Option<Vec<Segment>>,
    name: String,
    value: serde_json::Value,
    #[serde(rename = "type")]
    kind: u8,
    #[serde(default)]
    arg: bool,
}

/// Parses one line; the error message says what is wrong with it.
pub fn parse_line(text: &str) -> Result<ParsedLine, String> {
    let raw: RawLine = match serde_json::from_str(text) {
        Ok(raw) => raw,
        Err(first) => {
            let json = parse_lenient(text).map_err(|_| first.to_string())?;
            serde_json::from_value(json).map_err(|e| e.to_string())?
        }
    };
    let kind =
        Kind::from_u8(raw.kind).ok_or_else(|| format!("unknown record type {}", raw.kind))?;
    Ok(ParsedLine {
        projid: raw.projid,
        tstamp: raw.tstamp,
        filename: raw.filename,
        ctx: raw.ctx.filter(|c| !c.is_empty()),
        name: raw.name,
        value: Value::from_json(raw.value),
        kind,
        arg: raw.arg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{write_stack_json, Item, Position};

    #[test]
    fn reads_flordb_lines() {
        let line = r#"{"projid": "proj", "tstamp": "2026-11-27T01:05:08.862043", "filename": "train.py", "ctx": [{"name": "epoch", "iteration": 0, "value": "0"}, {"name": "step", "iteration": 1, "value": "b"}], "name": "loss", "value": 1.0, "type": 1}"#;
        let p = parse_line(line).unwrap();
        assert_eq!(p.name, "loss");
        assert_eq!(p.value, Value::Float(1.0));
        assert_eq!(p.ctx.as_ref().unwrap()[1].value.as_deref(), Some("b"));
        assert_eq!(p.kind, Kind::Log);
        assert!(parse_line(r#"{"name": "x", "value": NaN, "type": 3}"#).is_ok());
        assert!(parse_line(r#"{"name": "x", "value": 1, "type": 9}"#).is_err());
        assert!(parse_line("not json").is_err());
    }

    #[test]
    fn written_lines_read_back() {
        let header = LineHeader::new("p", "t", "train.py");
        let stack = [Position {
            name: "epoch".into(),
            iteration: Some(2),
            item: Some(Item::Int(2)),
        }];
        let mut ctx = String::new();
        write_stack_json(&stack, &mut ctx);
        let rec = Record {
            name: "lr".into(),
            value: Value::Float(0.01),
            kind: Kind::Log,
            arg: true,
        };
        let mut out = String::new();
        write_line(&header, Some(&ctx), &rec, &mut out);
        assert!(out.ends_with("}\n"));
        let back = parse_line(out.trim_end()).unwrap();
        assert_eq!(back.value, Value::Float(0.01));
        assert!(back.arg);
        let segment = Segment {
            name: "epoch".into(),
            iteration: Some(2),
            value: Some("2".into()),
        };
        assert_eq!(back.ctx.unwrap(), vec![segment]);
        assert_eq!(back.filename.as_deref(), Some("train.py"));
    }
}
