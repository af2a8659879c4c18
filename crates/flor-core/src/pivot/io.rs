//! Captured output as a table (`flor.io`, spec §2.7): one row per line, in the order the
//! runs printed them, with the run's columns, one integer column per loop of the line's
//! context, its channel and its text.

use super::frame::{Column, ColumnData, Frame};
use crate::record::{Kind, Segment, Source, Value};
use crate::store::Store;
use crate::Result;

/// Every captured line of `channel` (exactly that channel, or those under it: `io::log`
/// is every logging level), or of every channel when `None`.
pub fn io_frame(store: &Store, channel: Option<&str>) -> Result<Frame> {
    store.sync()?;
    let mut stmt = store.conn().prepare_cached(
        "SELECT runs.projid, runs.tstamp, runs.filename, runs.run_id, records.source,
                ctxs.json, names.text, records.value
         FROM records
         JOIN runs ON runs.run = records.run
         JOIN names ON names.name = records.name
         LEFT JOIN ctxs ON ctxs.ctx = records.ctx
         WHERE records.kind = ?1 AND (?2 IS NULL OR names.text = ?2 OR names.text LIKE ?2 || '::%')
         ORDER BY runs.start, runs.tstamp, runs.run_id, records.source, records.seq",
    )?;
    let mut base: [Vec<Value>; 5] = Default::default();
    let mut contexts: Vec<Vec<Segment>> = Vec::new();
    let (mut channels, mut lines) = (Vec::new(), Vec::new());
    let mut rows = stmt.query(rusqlite::params![Kind::Io as u8, channel])?;
    while let Some(r) = rows.next()? {
        for (i, col) in base.iter_mut().enumerate().take(4) {
            col.push(Value::Str(r.get(i)?));
        }
        let source = Source::from_u8(r.get(4)?);
        base[4].push(Value::Str(source.as_str().to_string()));
        let ctx: Option<String> = r.get(5)?;
        contexts.push(
            ctx.and_then(|c| serde_json::from_str(&c).ok())
                .unwrap_or_default(),
        );
        channels.push(Value::Str(r.get(6)?));
        lines.push(match r.get_ref(7)? {
            rusqlite::types::ValueRef::Text(t) => Value::Str(String::from_utf8_lossy(t).into()),
            _ => Value::Null,
        });
    }
    // Loop columns in the order loops first appear, outer before inner.
    let mut loops: Vec<String> = Vec::new();
    for ctx in &contexts {
        for seg in ctx {
            if !loops.contains(&seg.name) {
                loops.push(seg.name.clone());
            }
        }
    }
    let names = ["projid", "tstamp", "filename", "run_id", "source"];
    let mut columns: Vec<Column> = names
        .iter()
        .zip(base)
        .map(|(name, values)| Column {
            name: (*name).to_string(),
            data: ColumnData::from_values(values),
        })
        .collect();
    for name in &loops {
        let values = contexts
            .iter()
            .map(|ctx| {
                ctx.iter()
                    .find(|s| &s.name == name)
                    .and_then(|s| s.iteration)
                    .map_or(Value::Null, Value::Int)
            })
            .collect();
        columns.push(Column {
            name: name.clone(),
            data: ColumnData::from_values(values),
        });
    }
    columns.push(Column {
        name: "channel".into(),
        data: ColumnData::from_values(channels),
    });
    columns.push(Column {
        name: "line".into(),
        data: ColumnData::from_values(lines),
    });
    Ok(Frame { columns })
}
