//! The pivoted view: every run of every version as one table (spec §2.6).
//!
//! With names, each name's records become rows keyed by run, source and loop context,
//! and the names are folded together by a natural full outer join on their common
//! columns ([`join`]). Loop contexts expand into one integer column per loop (its
//! 0-based iteration) and a `<loop>_value` text column where the loop's items are not
//! just its positions. Values keep their types. Without names, the run table: one row
//! per run and source with every run-level value (args and final metrics).
//!
//! Unlike flordb, rows are not de-duplicated: the same value logged twice in the same
//! place is two facts and stays two rows.

mod filter;
mod frame;
mod io;
mod join;
mod read;
mod values;

pub use filter::{filter, quote_ident};
pub use frame::{Column, ColumnData, Frame};
pub use io::io_frame;
pub(crate) use read::read_value;

use rustc_hash::FxHashMap as HashMap;

use frame::TextBuilder;
use join::{outer_join, Key, Part, NULL_KEY};
use read::{read_name, LoopColumns, RUN_COL, SOURCE_COL};
use values::ValueBuf;

use crate::record::{Source, Value, ValueType};
use crate::store::Store;
use crate::Result;

/// The columns every pivoted table starts with.
pub const BASE_COLUMNS: [&str; 5] = ["projid", "tstamp", "filename", "run_id", "source"];

struct RunRow {
    projid: String,
    tstamp: String,
    filename: String,
    run_id: String,
}

fn load_runs(store: &Store) -> Result<(Vec<RunRow>, HashMap<i64, u32>)> {
    let mut stmt = store.conn().prepare_cached(
        "SELECT run, projid, tstamp, filename, run_id FROM runs ORDER BY start, tstamp, run_id",
    )?;
    let mut rows = Vec::new();
    let mut order = HashMap::default();
    let mut q = stmt.query([])?;
    while let Some(r) = q.next()? {
        order.insert(r.get::<_, i64>(0)?, rows.len() as u32);
        rows.push(RunRow {
            projid: r.get(1)?,
            tstamp: r.get(2)?,
            filename: r.get(3)?,
            run_id: r.get(4)?,
        });
    }
    Ok((rows, order))
}

/// The pivoted table of `names` (the run table when `names` is empty).
pub fn dataframe(store: &Store, names: &[&str]) -> Result<Frame> {
    store.sync()?;
    let (runs, run_order) = load_runs(store)?;
    let mut unique: Vec<&str> = Vec::new();
    for n in names {
        if !unique.contains(n) {
            unique.push(n);
        }
    }
    if unique.is_empty() {
        return run_table(store, &runs, &run_order);
    }
    let use_series = store.series_valid()?;
    let mut loops = LoopColumns::default();
    let mut parts = Vec::new();
    let mut values = Vec::new();
    let mut read = Vec::new();
    for name in &unique {
        read.push(read_name(store, name, &mut loops, &run_order, use_series)?);
    }
    for name_rows in read {
        let (part, vals) = name_rows.into_part(&loops);
        parts.push(part);
        values.push(vals);
    }
    let joined = parts
        .into_iter()
        .reduce(outer_join)
        .unwrap_or_else(|| Part::new(vec![RUN_COL, SOURCE_COL], vec![], vec![]));
    let mut frame = build_frame(&joined, &runs, &loops, &unique, values);
    if !unique.contains(&VERIFIED) {
        add_verified(store, &mut frame)?;
    }
    Ok(frame)
}

/// The record a merged replay file keeps per outer iteration (see `replay::merge`).
const VERIFIED: &str = "flor::verified";

/// Adds a `verified` column when the frame holds replayed values: for each replayed row,
/// whether its outer iteration re-logged recorded values that all matched (true), or
/// rests on the static analysis alone (false); missing for forward rows.
fn add_verified(store: &Store, frame: &mut Frame) -> Result<()> {
    let (Some(runs), Some(sources)) = (frame.column("run_id"), frame.column("source")) else {
        return Ok(());
    };
    let replayed: Vec<usize> = (0..frame.len())
        .filter(|&i| sources.data.get(i) == Value::Str(Source::Replay.as_str().into()))
        .collect();
    if replayed.is_empty() {
        return Ok(());
    }
    // (run id, outer loop name or "", iteration) -> verified
    let mut marks: HashMap<(String, String, i64), bool> = HashMap::default();
    let mut stmt = store.conn().prepare_cached(
        "SELECT runs.run_id, ctxs.json, records.value FROM records
         JOIN names ON names.name = records.name JOIN runs ON runs.run = records.run
         LEFT JOIN ctxs ON ctxs.ctx = records.ctx
         WHERE names.text = ?1 AND records.source = ?2",
    )?;
    let mut q = stmt.query(rusqlite::params![VERIFIED, Source::Replay as u8])?;
    while let Some(r) = q.next()? {
        let run: String = r.get(0)?;
        let ctx: Option<String> = r.get(1)?;
        let ok: bool = r.get::<_, Option<i64>>(2)?.unwrap_or(0) != 0;
        let (loop_name, iteration) = match ctx
            .as_deref()
            .map(serde_json::from_str::<Vec<crate::record::Segment>>)
        {
            Some(Ok(segs)) => match segs.first() {
                Some(s) => (s.name.clone(), s.iteration.unwrap_or(-1)),
                None => (String::new(), -1),
            },
            _ => (String::new(), -1),
        };
        let slot = marks.entry((run, loop_name, iteration)).or_insert(true);
        *slot &= ok;
    }
    let loops: Vec<String> = {
        let mut l: Vec<String> = marks
            .keys()
            .map(|k| k.1.clone())
            .filter(|n| !n.is_empty())
            .collect();
        l.sort();
        l.dedup();
        l
    };
    let mut out: Vec<Option<bool>> = vec![None; frame.len()];
    for &i in &replayed {
        let Value::Str(run) = runs.data.get(i) else {
            continue;
        };
        let at_loop = loops
            .iter()
            .find_map(|l| match frame.column(l).map(|c| c.data.get(i)) {
                Some(Value::Int(it)) => marks.get(&(run.clone(), l.clone(), it)).copied(),
                _ => None,
            });
        out[i] = at_loop.or_else(|| marks.get(&(run.clone(), String::new(), -1)).copied());
    }
    let name = if frame.column("verified").is_some() {
        "replay_verified"
    } else {
        "verified"
    };
    frame.columns.push(Column {
        name: name.into(),
        data: ColumnData::Bool(out),
    });
    Ok(())
}

fn base_columns(
    runs: &[RunRow],
    run_keys: impl Iterator<Item = Key>,
    source_keys: impl Iterator<Item = Key>,
) -> Vec<Column> {
    // Rows point at runs by index, so a run's index is its code in every base column.
    let codes: Vec<i32> = run_keys
        .map(|k| if k == NULL_KEY { -1 } else { k as i32 })
        .collect();
    let text = |f: &dyn Fn(&RunRow) -> &str| ColumnData::Text {
        codes: codes.clone(),
        categories: runs.iter().map(|r| f(r).to_string()).collect(),
    };
    let sources = ColumnData::Text {
        codes: source_keys.map(|k| k as i32).collect(),
        categories: [Source::Forward, Source::Replay, Source::Extract]
            .iter()
            .map(|s| s.as_str().to_string())
            .collect(),
    };
    vec![
        Column {
            name: "projid".into(),
            data: text(&|r| &r.projid),
        },
        Column {
            name: "tstamp".into(),
            data: text(&|r| &r.tstamp),
        },
        Column {
            name: "filename".into(),
            data: text(&|r| &r.filename),
        },
        Column {
            name: "run_id".into(),
            data: text(&|r| &r.run_id),
        },
        Column {
            name: "source".into(),
            data: sources,
        },
    ]
}

fn build_frame(
    part: &Part,
    runs: &[RunRow],
    loops: &LoopColumns,
    names: &[&str],
    values: Vec<ValueBuf>,
) -> Frame {
    let width = part.key_cols.len();
    let n = part.rows();
    let col = |global: usize| part.key_cols.iter().position(|&c| c == global);
    let cells = |p: usize| (0..n).map(move |r| part.keys[r * width + p]);
    let mut columns = match (col(RUN_COL), col(SOURCE_COL)) {
        (Some(run), Some(source)) => base_columns(runs, cells(run), cells(source)),
        _ => Vec::new(),
    };
    let mut order: Vec<usize> = (0..loops.loops.len()).collect();
    order.sort_by_key(|&l| (loops.loops[l].depth, loops.loops[l].first_seen));
    for l in order {
        let it_col = LoopColumns::iteration_col(l);
        let Some(it) = col(it_col) else {
            continue;
        };
        let iterations: Vec<Option<i64>> =
            cells(it).map(|k| (k != NULL_KEY).then_some(k)).collect();
        let loop_col = &loops.loops[l];
        if iterations.iter().any(Option::is_some) {
            columns.push(Column {
                name: loop_col.name.clone(),
                data: ColumnData::Int(iterations),
            });
        }
        // A loop with a value column never leaves its value key out (see LoopColumn).
        if let (true, Some(val)) = (loop_col.has_value, col(it_col + 1)) {
            let mut b = TextBuilder::default();
            for k in cells(val) {
                b.push((k != NULL_KEY).then(|| loops.texts[k as usize].as_str()));
            }
            columns.push(Column {
                name: format!("{}_value", loop_col.name),
                data: b.finish(),
            });
        }
    }
    for (slot, (name, vals)) in names.iter().zip(values).enumerate() {
        let data = vals.gather(&part.vals[slot]);
        columns.push(value_column(&columns, name, data));
    }
    Frame { columns }
}

/// A value column; one whose name is taken by a key column gets a `_log` suffix.
fn value_column(existing: &[Column], name: &str, data: ColumnData) -> Column {
    let name = if existing.iter().any(|c| c.name == name) {
        format!("{name}_log")
    } else {
        name.to_string()
    };
    Column { name, data }
}

/// One row per run and source, with every run-level `flor.log`/`flor.arg` value; runs
/// that logged none still get a row. A name logged twice at run level keeps the last.
fn run_table(store: &Store, runs: &[RunRow], run_order: &HashMap<i64, u32>) -> Result<Frame> {
    let mut stmt = store.conn().prepare_cached(
        "SELECT records.run, names.text, records.value, records.vtype, records.source
         FROM records JOIN names ON names.name = records.name
         WHERE records.ctx IS NULL AND records.kind = 1 AND names.text NOT LIKE 'flor::%'
         ORDER BY records.run, records.source, records.seq",
    )?;
    let mut q = stmt.query([])?;
    let mut names: Vec<String> = Vec::new();
    let mut name_index: HashMap<String, usize> = HashMap::default();
    let mut rows: HashMap<(u32, u8), HashMap<usize, Value>> = HashMap::default();
    while let Some(r) = q.next()? {
        let Some(&run) = run_order.get(&r.get::<_, i64>(0)?) else {
            continue;
        };
        let name: String = r.get(1)?;
        let idx = *name_index.entry(name.clone()).or_insert_with(|| {
            names.push(name);
            names.len() - 1
        });
        let value = read_value(r.get_ref(2)?, ValueType::from_u8(r.get::<_, i64>(3)? as u8));
        rows.entry((run, r.get::<_, i64>(4)? as u8))
            .or_default()
            .insert(idx, value);
    }
    let seen: std::collections::HashSet<u32> = rows.keys().map(|k| k.0).collect();
    for run in (0..runs.len() as u32).filter(|r| !seen.contains(r)) {
        rows.insert((run, Source::Forward as u8), HashMap::default());
    }
    let mut keys: Vec<(u32, u8)> = rows.keys().copied().collect();
    keys.sort_unstable();
    let mut columns = base_columns(
        runs,
        keys.iter()
            .map(|k| Key::from(k.0))
            .collect::<Vec<_>>()
            .into_iter(),
        keys.iter().map(|k| Key::from(k.1)),
    );
    for (i, name) in names.iter().enumerate() {
        let vals = keys
            .iter()
            .map(|k| rows[k].get(&i).cloned().unwrap_or(Value::Null))
            .collect();
        columns.push(value_column(&columns, name, ColumnData::from_values(vals)));
    }
    Ok(Frame { columns })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Item, Kind, Recorder, RunConfig, RunStatus};

    fn config(root: &std::path::Path) -> RunConfig {
        RunConfig {
            root: root.to_path_buf(),
            repo: None,
            projid: "proj".into(),
            filename: "train.py".into(),
            script: Some("train.py".into()),
            argv: vec!["train.py".into()],
            python: None,
            cwd: None,
            name: None,
        }
    }

    /// Records one run: lr, 2 epochs x 3 steps of loss, val_acc per epoch, accuracy.
    fn record_run(root: &std::path::Path, lr: f64) {
        let mut rec = Recorder::new(config(root));
        rec.log_arg("lr", Value::Float(lr)).unwrap();
        let e = rec.loop_enter("epoch").unwrap();
        for epoch in 0..2 {
            rec.loop_next(e, epoch, Some(Item::Int(epoch))).unwrap();
            let s = rec.loop_enter("step").unwrap();
            for step in 0..3 {
                rec.loop_next(s, step, None).unwrap();
                rec.log("loss", Value::Float((epoch * 10 + step) as f64), Kind::Log)
                    .unwrap();
            }
            rec.loop_exit(s).unwrap();
            rec.log("val_acc", Value::Int(epoch), Kind::Log).unwrap();
        }
        rec.loop_exit(e).unwrap();
        rec.log("accuracy", Value::Str("high".into()), Kind::Log)
            .unwrap();
        rec.commit(RunStatus::Finished).unwrap().unwrap();
    }

    fn ints(frame: &Frame, name: &str) -> Vec<Option<i64>> {
        match &frame.column(name).unwrap().data {
            ColumnData::Int(v) => v.clone(),
            other => panic!("{name} is {other:?}"),
        }
    }

    #[test]
    fn names_at_different_levels_join_on_common_columns() {
        let dir = tempfile::tempdir().unwrap();
        record_run(dir.path(), 0.1);
        record_run(dir.path(), 0.01);
        let store = Store::open(dir.path()).unwrap();
        let frame = dataframe(&store, &["lr", "loss", "val_acc"]).unwrap();
        let names: Vec<&str> = frame.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "projid", "tstamp", "filename", "run_id", "source", "epoch", "step", "lr", "loss",
                "val_acc"
            ]
        );
        assert_eq!(frame.len(), 12);
        assert!(matches!(
            frame.column("lr").unwrap().data,
            ColumnData::Float(_)
        ));
        assert!(matches!(
            frame.column("loss").unwrap().data,
            ColumnData::Float(_)
        ));
        // val_acc (per epoch) is repeated on every step row of its epoch.
        let epochs = ints(&frame, "epoch");
        let acc = ints(&frame, "val_acc");
        assert!(epochs.iter().zip(&acc).all(|(e, a)| e == a));
    }

    #[test]
    fn run_table_has_one_row_per_run_with_typed_run_level_values() {
        let dir = tempfile::tempdir().unwrap();
        record_run(dir.path(), 0.1);
        record_run(dir.path(), 0.01);
        let store = Store::open(dir.path()).unwrap();
        let frame = dataframe(&store, &[]).unwrap();
        assert_eq!(frame.len(), 2);
        assert_eq!(
            frame.column("lr").unwrap().data,
            ColumnData::Float(vec![Some(0.1), Some(0.01)])
        );
        assert!(matches!(
            frame.column("accuracy").unwrap().data,
            ColumnData::Text { .. }
        ));
        // Timing records are not part of the run table.
        assert!(frame.column("time::script").is_none());
    }

    #[test]
    fn timing_records_anchor_to_the_parent_context() {
        let dir = tempfile::tempdir().unwrap();
        record_run(dir.path(), 0.1);
        let store = Store::open(dir.path()).unwrap();
        let frame = dataframe(&store, &["time::iter::n"]).unwrap();
        // One per epoch for the step loop (in epoch ctx) and one for the epoch loop (run level).
        assert_eq!(frame.len(), 3);
        assert_eq!(
            ints(&frame, "time::iter::n"),
            vec![Some(3), Some(3), Some(2)]
        );
    }

    #[test]
    fn series_and_records_give_the_same_table() {
        let dir = tempfile::tempdir().unwrap();
        record_run(dir.path(), 0.1);
        record_run(dir.path(), 0.01);
        let store = Store::open(dir.path()).unwrap();
        let names = ["lr", "loss", "val_acc", "accuracy", "time::iter::n"];
        let fast = dataframe(&store, &names).unwrap();
        assert!(store.series_valid().unwrap());
        // A user's write query leaves the series behind: the pivot reads records.
        store.query("DELETE FROM names WHERE 0", &[], true).unwrap();
        assert!(!store.series_valid().unwrap());
        let slow = dataframe(&store, &names).unwrap();
        // Debug text compares NaN cells as equal.
        assert_eq!(format!("{fast:?}"), format!("{slow:?}"));
        store.unpack().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store.series_valid().unwrap());
        assert_eq!(
            format!("{:?}", dataframe(&store, &names).unwrap()),
            format!("{fast:?}")
        );
    }

    #[test]
    fn series_follow_run_files_changed_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        record_run(dir.path(), 0.1);
        record_run(dir.path(), 0.01);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(dataframe(&store, &["loss"]).unwrap().len(), 12);
        // lr, 6 losses, 2 val_acc, accuracy: the timings are not counted.
        let counts = |store: &Store| -> Vec<i64> {
            store.runs().unwrap().iter().map(|r| r.records).collect()
        };
        assert_eq!(counts(&store), [10, 10]);
        let files = store.layout().run_files().unwrap();
        std::fs::remove_file(&files[0]).unwrap();
        assert_eq!(dataframe(&store, &["loss"]).unwrap().len(), 6);
        // Drop the second run's last loss line and its end record: one loss fewer.
        let text = std::fs::read_to_string(&files[1]).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        let last_loss = lines
            .iter()
            .rposition(|l| l.contains("\"name\": \"loss\""))
            .unwrap();
        lines.remove(last_loss);
        std::fs::write(&files[1], lines.join("\n") + "\n").unwrap();
        let frame = dataframe(&store, &["loss"]).unwrap();
        assert_eq!(frame.len(), 5);
        assert_eq!(counts(&store), [9]);
        assert_eq!(store.unpack().unwrap().imported, 1);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(counts(&store), [9]);
        assert_eq!(dataframe(&store, &["loss"]).unwrap().len(), 5);
    }

    #[test]
    fn unknown_names_give_an_empty_column() {
        let dir = tempfile::tempdir().unwrap();
        record_run(dir.path(), 0.1);
        let store = Store::open(dir.path()).unwrap();
        let frame = dataframe(&store, &["lr", "nothing"]).unwrap();
        assert_eq!(frame.len(), 1);
        assert_eq!(
            frame.column("nothing").unwrap().data,
            ColumnData::Float(vec![None])
        );
    }
}
