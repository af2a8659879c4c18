//! Replay's check that needs no trust: every value a replay logs again under a name the
//! recorded run logged is compared with what the run recorded at the same place (the
//! same loop positions, the same how-many-th time in them).
//!
//! A replay re-executes the old version's own statements wherever it runs code: the loss
//! at every step it recomputes, the metrics of every epoch it runs. If the state it
//! started from was right, those values come back bit for bit (on the same device); if
//! one does not, the segment diverged, and nothing it logs can be trusted.
//!
//! Values whose statement reads the clock or the machine (`analyze::LogSite::clock`) are
//! not compared, nor names the user asked to leave out. Floats compare exactly by default
//! (NaN equals NaN); a tolerance relaxes that for devices that are not deterministic.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::{Kind, Name, ParsedLine, Value};

/// A place in a run: the loop positions, the name, and which time in that place.
type Stack = Vec<(Name, Option<i64>)>;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Place {
    stack: Stack,
    name: Name,
    occurrence: u32,
}

/// What the recorded run logged, by place.
#[derive(Debug, Default)]
pub struct Expected {
    values: HashMap<Place, Value>,
    names: HashSet<Name>,
}

impl Expected {
    /// The `flor.log` values of a run file's records (args and FlorDB's own records left
    /// out).
    pub fn from_records<'a>(records: impl IntoIterator<Item = &'a ParsedLine>) -> Self {
        let mut out = Expected::default();
        let mut counts: HashMap<(Stack, Name), u32> = HashMap::new();
        for rec in records {
            if rec.kind != Kind::Log || rec.arg {
                continue;
            }
            let name = Name::intern(&rec.name);
            let stack: Stack = rec
                .ctx
                .iter()
                .flatten()
                .map(|s| (Name::intern(&s.name), s.iteration))
                .collect();
            let n = counts.entry((stack.clone(), name)).or_insert(0);
            let place = Place {
                stack,
                name,
                occurrence: *n,
            };
            *n += 1;
            out.names.insert(name);
            out.values.insert(place, rec.value.clone());
        }
        out
    }

    /// How many values there are to compare against.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// A value that came back different (or where the run recorded none).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mismatch {
    /// The outer iteration it was logged in; `None` outside every loop.
    pub iteration: Option<i64>,
    /// Where, as a user reads it: `epoch 3, step 2`.
    pub place: String,
    pub name: String,
    /// What the run recorded there; `None`: it recorded nothing there.
    pub recorded: Option<serde_json::Value>,
    pub replayed: serde_json::Value,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.place.is_empty() {
            "outside the loops".to_owned()
        } else {
            format!("at {}", self.place)
        };
        match &self.recorded {
            Some(r) => write!(
                f,
                "{} {at}: recorded {r}, replayed {}",
                self.name, self.replayed
            ),
            None => write!(
                f,
                "{} {at}: replayed {} where the run recorded nothing",
                self.name, self.replayed
            ),
        }
    }
}

/// Counts of one outer iteration (or of the code outside the loops).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Checked {
    pub compared: u64,
    pub mismatched: u64,
}

/// What a replay's check found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VerifyReport {
    /// Values compared in all.
    pub compared: u64,
    /// Outer iterations that ran, each with its counts.
    pub iterations: BTreeMap<i64, Checked>,
    /// The code outside every loop (before and after it).
    pub outside: Checked,
    /// The first mismatches (at most [`KEPT`]), in the order they happened.
    pub mismatches: Vec<Mismatch>,
    /// Names never compared, and why: `clock` or `asked`.
    pub skipped: BTreeMap<String, String>,
    pub tolerance: f64,
}

/// Mismatches kept for the report.
const KEPT: usize = 8;

/// The check of one replay process.
#[derive(Debug)]
pub struct Verifier {
    expected: Expected,
    /// Names never compared, with the reason.
    skipped: BTreeMap<String, String>,
    /// Names not compared while the current outer iteration runs without its nested
    /// loops (they read what those loops build: `analyze::LogSite::needs_nested`).
    stale_when_skipping: HashSet<String>,
    skipping_nested: bool,
    tolerance: f64,
    counts: HashMap<(Stack, Name), u32>,
    report: VerifyReport,
}

impl Verifier {
    pub fn new(
        expected: Expected,
        skipped: BTreeMap<String, String>,
        stale_when_skipping: HashSet<String>,
        tolerance: f64,
    ) -> Self {
        Verifier {
            expected,
            report: VerifyReport {
                skipped: skipped.clone(),
                tolerance,
                ..VerifyReport::default()
            },
            skipped,
            stale_when_skipping,
            skipping_nested: false,
            tolerance,
            counts: HashMap::new(),
        }
    }

    /// The outer loop moved to `iteration` (which runs).
    pub fn entered(&mut self, iteration: i64) {
        self.report.iterations.entry(iteration).or_default();
    }

    /// Whether the current outer iteration skips its nested loops.
    pub fn set_skipping_nested(&mut self, skipping: bool) {
        self.skipping_nested = skipping;
    }

    /// Whether values named `name` are compared at all (the run logged it, and it is not
    /// left out): the caller builds the loop stack only for those.
    pub fn wants(&self, name: Name) -> bool {
        self.expected.names.contains(&name) && !self.skipped.contains_key(name.as_str())
    }

    /// Compares one logged value with the record; `stack` is the live loop stack.
    pub fn check(&mut self, stack: &[(Name, Option<i64>)], name: Name, value: &Value) {
        if !self.wants(name) {
            return;
        }
        let key = (stack.to_vec(), name);
        let n = self.counts.entry(key).or_insert(0);
        let place = Place {
            stack: stack.to_vec(),
            name,
            occurrence: *n,
        };
        *n += 1;
        if self.skipping_nested && self.stale_when_skipping.contains(name.as_str()) {
            return;
        }
        let iteration = stack.first().and_then(|(_, it)| *it);
        let recorded = self.expected.values.get(&place);
        let ok = recorded.is_some_and(|r| same(r, value, self.tolerance));
        let counts = match iteration {
            Some(it) if !stack.is_empty() => self.report.iterations.entry(it).or_default(),
            _ => &mut self.report.outside,
        };
        counts.compared += 1;
        self.report.compared += 1;
        if ok {
            return;
        }
        counts.mismatched += 1;
        if self.report.mismatches.len() < KEPT {
            self.report.mismatches.push(Mismatch {
                iteration,
                place: describe(stack),
                name: name.as_str().to_owned(),
                recorded: recorded.map(to_json),
                replayed: to_json(value),
            });
        }
    }

    /// The first mismatch, if any.
    pub fn first_mismatch(&self) -> Option<&Mismatch> {
        self.report.mismatches.first()
    }

    pub fn report(&self) -> &VerifyReport {
        &self.report
    }
}

fn describe(stack: &[(Name, Option<i64>)]) -> String {
    stack
        .iter()
        .map(|(n, it)| match it {
            Some(i) => format!("{} {i}", n.as_str()),
            None => n.as_str().to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or_else(|| serde_json::Value::String(f.to_string())),
        Value::Str(s) => s.clone().into(),
        Value::Json(j) => j.clone(),
    }
}

/// Whether a replayed value equals the recorded one: exactly, or within `tolerance`
/// (relative) for floats.
fn same(recorded: &Value, replayed: &Value, tolerance: f64) -> bool {
    match (recorded, replayed) {
        (Value::Float(a), Value::Float(b)) => close(*a, *b, tolerance),
        (Value::Json(a), Value::Json(b)) => json_same(a, b, tolerance),
        (Value::Str(a), Value::Str(b)) => a == b || without_addresses(a) == without_addresses(b),
        (a, b) => a == b,
    }
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    a == b
        || (a.is_nan() && b.is_nan())
        || (tolerance > 0.0 && (a - b).abs() <= tolerance * a.abs().max(b.abs()))
}

fn json_same(a: &serde_json::Value, b: &serde_json::Value, tolerance: f64) -> bool {
    use serde_json::Value as J;
    match (a, b) {
        (J::Number(x), J::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(p), Some(q)) if x.is_f64() || y.is_f64() => close(p, q, tolerance),
            _ => x == y,
        },
        (J::Array(x), J::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_same(p, q, tolerance))
        }
        (J::Object(x), J::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, p)| y.get(k).is_some_and(|q| json_same(p, q, tolerance)))
        }
        _ => a == b,
    }
}

/// `<Net object at 0x7f3a...>` names a memory address that differs in every process.
fn without_addresses(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("0x") {
        out.push_str(&rest[..i + 2]);
        rest = rest[i + 2..].trim_start_matches(|c: char| c.is_ascii_hexdigit());
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{parse_line, Segment};

    fn line(ctx: &[(&str, i64)], name: &str, value: &str) -> ParsedLine {
        let segs: Vec<Segment> = ctx
            .iter()
            .map(|(n, i)| Segment {
                name: (*n).into(),
                iteration: Some(*i),
                value: None,
            })
            .collect();
        let ctx = if segs.is_empty() {
            "null".to_owned()
        } else {
            serde_json::to_string(&segs).unwrap()
        };
        parse_line(&format!(
            "{{\"projid\": \"p\", \"tstamp\": \"t\", \"filename\": \"f\", \"ctx\": {ctx}, \"name\": \"{name}\", \"value\": {value}, \"type\": 1}}"
        ))
        .unwrap()
    }

    fn stack(items: &[(&'static str, i64)]) -> Vec<(Name, Option<i64>)> {
        items
            .iter()
            .map(|(n, i)| (Name::intern(n), Some(*i)))
            .collect()
    }

    #[test]
    fn equal_values_pass_and_the_first_difference_is_named() {
        let records = vec![
            line(&[("epoch", 0), ("step", 0)], "loss", "0.5"),
            line(&[("epoch", 0), ("step", 1)], "loss", "0.25"),
            line(&[("epoch", 0)], "acc", "0.9"),
            line(&[("epoch", 0)], "acc", "0.95"),
            line(&[], "final", "[1, 2.5]"),
        ];
        let mut v = Verifier::new(
            Expected::from_records(&records),
            BTreeMap::new(),
            HashSet::new(),
            0.0,
        );
        let loss = Name::intern("loss");
        v.entered(0);
        v.check(
            &stack(&[("epoch", 0), ("step", 0)]),
            loss,
            &Value::Float(0.5),
        );
        v.check(
            &stack(&[("epoch", 0)]),
            Name::intern("acc"),
            &Value::Float(0.9),
        );
        // The second `acc` of epoch 0 is compared with the second one recorded.
        v.check(
            &stack(&[("epoch", 0)]),
            Name::intern("acc"),
            &Value::Float(0.95),
        );
        v.check(
            &[],
            Name::intern("final"),
            &Value::Json(serde_json::json!([1, 2.5])),
        );
        // A name the run never logged (today's new statement) is not compared.
        v.check(&stack(&[("epoch", 0)]), Name::intern("new"), &Value::Int(7));
        assert_eq!(v.report().compared, 4);
        assert!(v.first_mismatch().is_none());
        v.check(
            &stack(&[("epoch", 0), ("step", 1)]),
            loss,
            &Value::Float(0.25000001),
        );
        let m = v.first_mismatch().unwrap();
        assert_eq!(
            m.to_string(),
            "loss at epoch 0, step 1: recorded 0.25, replayed 0.25000001"
        );
        assert_eq!(
            v.report().iterations[&0],
            Checked {
                compared: 4,
                mismatched: 1
            }
        );
        // A place where the run logged nothing is a difference too.
        v.check(
            &stack(&[("epoch", 0), ("step", 2)]),
            loss,
            &Value::Float(0.1),
        );
        assert!(v.report().mismatches[1]
            .to_string()
            .contains("recorded nothing"));
    }

    #[test]
    fn tolerance_skips_and_stale_names() {
        let records = vec![
            line(&[("epoch", 1)], "loss", "1.0"),
            line(&[("epoch", 1)], "ms", "12.5"),
            line(&[("epoch", 1)], "avg", "3.0"),
            line(&[("epoch", 1)], "obj", "\"<Net at 0x7f00aa>\""),
        ];
        let skipped = BTreeMap::from([("ms".to_owned(), "clock".to_owned())]);
        let mut v = Verifier::new(
            Expected::from_records(&records),
            skipped,
            HashSet::from(["avg".to_owned()]),
            1e-6,
        );
        let at = stack(&[("epoch", 1)]);
        v.check(&at, Name::intern("loss"), &Value::Float(1.0000001));
        v.check(&at, Name::intern("ms"), &Value::Float(99.0));
        v.set_skipping_nested(true);
        v.check(&at, Name::intern("avg"), &Value::Float(0.0));
        v.check(
            &at,
            Name::intern("obj"),
            &Value::Str("<Net at 0x55bb01>".into()),
        );
        assert_eq!(v.report().compared, 2);
        assert!(v.first_mismatch().is_none(), "{:?}", v.report());
        assert!(!same(&Value::Float(1.0), &Value::Float(1.0 + 1e-9), 0.0));
        assert!(same(&Value::Float(f64::NAN), &Value::Float(f64::NAN), 0.0));
    }
}
