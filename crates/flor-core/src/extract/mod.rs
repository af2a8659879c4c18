//! Metrics from printed lines, after the fact (`python -m flordb capture --preview` and
//! `--extract`, spec §7.2): every captured line of every forward run is read by
//! [`parse::parse_line`]; its measures become `source = extract` values in the line's
//! loop context, with the line's index (`epoch 3`) as an innermost loop unless the run
//! already has a loop of that name there. No run is replayed, nothing is recorded that
//! a line did not say, and extracting twice gives the same rows.
//!
//! The rows live in the query cache only (flordb 4.0.1 does the same): `flor unpack`
//! and a rebuilt cache drop them, and `--extract` writes them again.

pub mod parse;

use std::collections::BTreeMap;

use rusqlite::{params, Transaction, TransactionBehavior};

use crate::pivot::read_value;
use crate::record::{Kind, ParsedLine, Segment, Source, Value};
use crate::store::{insert_lines, Store};
use crate::Result;

/// What extraction finds in one run's captured lines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunExtraction {
    pub run_id: String,
    /// Captured lines the run has.
    pub lines: usize,
    /// Lines that gave at least one measure.
    pub matched: usize,
    /// The values, in the order their lines were printed (one per context and name:
    /// the last line wins).
    pub records: Vec<(Vec<Segment>, String, Value)>,
}

impl RunExtraction {
    /// The names extracted, each once, in order.
    pub fn names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for (_, name, _) in &self.records {
            if !out.contains(&name.as_str()) {
                out.push(name);
            }
        }
        out
    }
}

/// Reads every forward run's captured lines and says what they give; writes nothing.
pub fn preview(store: &Store) -> Result<Vec<RunExtraction>> {
    store.sync()?;
    let mut stmt = store.conn().prepare_cached(
        "SELECT runs.run_id, ctxs.json, records.value
         FROM records
         JOIN runs ON runs.run = records.run
         LEFT JOIN ctxs ON ctxs.ctx = records.ctx
         WHERE records.kind = ?1 AND records.source = ?2
         ORDER BY runs.start, runs.tstamp, runs.run_id, records.seq",
    )?;
    let mut rows = stmt.query(params![Kind::Io as u8, Source::Forward as u8])?;
    let mut runs: Vec<RunExtraction> = Vec::new();
    // Per run: (context JSON, name) -> position in its records (the last line wins).
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    while let Some(r) = rows.next()? {
        let run_id: String = r.get(0)?;
        if runs.last().is_none_or(|x| x.run_id != run_id) {
            seen.clear();
            runs.push(RunExtraction {
                run_id,
                ..RunExtraction::default()
            });
        }
        let run = runs.last_mut().expect("pushed above");
        run.lines += 1;
        let ctx: Vec<Segment> = r
            .get::<_, Option<String>>(1)?
            .and_then(|c| serde_json::from_str(&c).ok())
            .unwrap_or_default();
        let Ok(text) = r.get::<_, String>(2) else {
            continue;
        };
        let facts = parse::parse_line(&text);
        let measures: Vec<(String, Value)> = facts
            .measures
            .into_iter()
            .filter(|(name, _)| !ctx.iter().any(|s| s.name == *name))
            .collect();
        if measures.is_empty() {
            continue;
        }
        run.matched += 1;
        let mut place = ctx;
        if let Some((loop_name, i)) = facts.index {
            if !place.iter().any(|s| s.name == loop_name) {
                place.push(Segment {
                    name: loop_name,
                    iteration: Some(i),
                    value: None,
                });
            }
        }
        let key_ctx = crate::record::segments_json(&place);
        for (name, value) in measures {
            match seen.get(&(key_ctx.clone(), name.clone())) {
                Some(&at) => run.records[at].2 = value,
                None => {
                    seen.insert((key_ctx.clone(), name.clone()), run.records.len());
                    run.records.push((place.clone(), name, value));
                }
            }
        }
    }
    Ok(runs)
}

/// The hyper-parameters a run recorded, as lines to store beside extracted values.
fn run_args(tx: &Transaction, run_pk: i64) -> Result<Vec<ParsedLine>> {
    let mut stmt = tx.prepare_cached(
        "SELECT names.text, records.value, records.vtype FROM records
         JOIN names ON names.name = records.name
         WHERE records.run = ?1 AND records.source = ?2 AND records.arg = 1
         ORDER BY records.seq",
    )?;
    let mut rows = stmt.query(params![run_pk, Source::Forward as u8])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let vtype = crate::record::ValueType::from_u8(r.get(2)?);
        out.push(ParsedLine {
            projid: None,
            tstamp: None,
            filename: None,
            ctx: None,
            name: r.get(0)?,
            value: read_value(r.get_ref(1)?, vtype),
            kind: Kind::Log,
            arg: true,
        });
    }
    Ok(out)
}

/// Replaces every run's extracted values with what [`preview`] finds now; returns it.
pub fn extract(store: &Store) -> Result<Vec<RunExtraction>> {
    let found = preview(store)?;
    let tx = Transaction::new_unchecked(store.conn(), TransactionBehavior::Immediate)?;
    tx.execute(
        "DELETE FROM records WHERE source = ?1",
        [Source::Extract as u8],
    )?;
    tx.execute(
        "DELETE FROM series WHERE source = ?1",
        [Source::Extract as u8],
    )?;
    for run in found.iter().filter(|r| !r.records.is_empty()) {
        let run_pk: i64 = tx.query_row(
            "SELECT run FROM runs WHERE run_id = ?1",
            [&run.run_id],
            |r| r.get(0),
        )?;
        // The run's args come along, as a replay's do, so that the pivot puts them on
        // the same rows as the extracted values.
        let mut lines = run_args(&tx, run_pk)?;
        lines.extend(run.records.iter().map(|(ctx, name, value)| ParsedLine {
            projid: None,
            tstamp: None,
            filename: None,
            ctx: (!ctx.is_empty()).then(|| ctx.clone()),
            name: name.clone(),
            value: value.clone(),
            kind: Kind::Log,
            arg: false,
        }));
        insert_lines(&tx, run_pk, &lines, Source::Extract, 0)?;
    }
    tx.commit()?;
    Ok(found)
}
