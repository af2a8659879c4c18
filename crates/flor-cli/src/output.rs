//! Printing a [`Frame`] as an aligned table, CSV or JSON.

use std::io::Write;

use flor_core::pivot::Frame;
use flor_core::record::Value;

/// Rows shown at each end of a long table unless every row is asked for.
const EDGE_ROWS: usize = 20;

/// A cell as text for reading: floats rounded to six decimals, as pandas shows them.
fn cell(v: &Value) -> String {
    match v {
        Value::Float(f) if f.is_finite() && f.abs() >= 1e-4 && f.abs() < 1e15 => {
            let s = format!("{f:.6}");
            let s = s.trim_end_matches('0');
            if s.ends_with('.') {
                format!("{s}0")
            } else {
                s.to_string()
            }
        }
        Value::Float(f) if f.is_finite() && *f != 0.0 => format!("{f:.6e}"),
        other => other.display(),
    }
}

/// A cell as data (CSV): full precision.
fn exact(v: &Value) -> String {
    v.display()
}

pub(crate) fn table(frame: &Frame, all: bool, out: &mut impl Write) -> std::io::Result<()> {
    let n = frame.len();
    let rows: Vec<usize> = if all || n <= 3 * EDGE_ROWS {
        (0..n).collect()
    } else {
        (0..EDGE_ROWS).chain(n - EDGE_ROWS..n).collect()
    };
    let texts: Vec<Vec<String>> = frame
        .columns
        .iter()
        .map(|c| rows.iter().map(|&r| cell(&c.data.get(r))).collect())
        .collect();
    let widths: Vec<usize> = frame
        .columns
        .iter()
        .zip(&texts)
        .map(|(c, t)| {
            t.iter()
                .map(|s| s.chars().count())
                .chain([c.name.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let header: Vec<String> = frame
        .columns
        .iter()
        .zip(&widths)
        .map(|(c, w)| format!("{:<w$}", c.name))
        .collect();
    writeln!(out, "{}", header.join("  ").trim_end())?;
    for i in 0..rows.len() {
        if i == EDGE_ROWS && rows.len() < n {
            writeln!(
                out,
                "... {} more rows (use --all to print every row) ...",
                n - 2 * EDGE_ROWS
            )?;
        }
        let line: Vec<String> = texts
            .iter()
            .zip(&widths)
            .map(|(t, w)| format!("{:<w$}", t[i]))
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    writeln!(out, "[{n} rows x {} columns]", frame.columns.len())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Seconds for people: `0.4 s`, `12 s`, `3 min 05 s`, `1 h 02 min`.
pub(crate) fn duration(secs: f64) -> String {
    // Also turns -0.0 (a sum of nothing) into 0.
    let secs = if secs > 0.0 { secs } else { 0.0 };
    if secs < 10.0 {
        format!("{secs:.1} s")
    } else if secs < 60.0 {
        format!("{secs:.0} s")
    } else if secs < 3600.0 {
        let s = secs.round() as u64;
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        let m = (secs / 60.0).round() as u64;
        format!("{} h {:02} min", m / 60, m % 60)
    }
}

pub(crate) fn csv(frame: &Frame, out: &mut impl Write) -> std::io::Result<()> {
    let header: Vec<String> = frame.columns.iter().map(|c| csv_field(&c.name)).collect();
    writeln!(out, "{}", header.join(","))?;
    for r in 0..frame.len() {
        let line: Vec<String> = frame
            .columns
            .iter()
            .map(|c| csv_field(&exact(&c.data.get(r))))
            .collect();
        writeln!(out, "{}", line.join(","))?;
    }
    Ok(())
}

pub(crate) fn json(frame: &Frame, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "[")?;
    for r in 0..frame.len() {
        let mut line = String::from("{");
        for (i, c) in frame.columns.iter().enumerate() {
            if i > 0 {
                line.push_str(", ");
            }
            flor_core::record::write_json_str(&c.name, &mut line);
            line.push_str(": ");
            match c.data.get(r) {
                // JSON has no NaN; a missing or NaN number is null.
                Value::Float(f) if !f.is_finite() => line.push_str("null"),
                v => v.write_json(&mut line),
            }
        }
        line.push('}');
        if r + 1 < frame.len() {
            line.push(',');
        }
        writeln!(out, "{line}")?;
    }
    writeln!(out, "]")
}
