//! Reading one name's records from the cache into a [`Part`]: a row per record, keyed
//! by run, source and the loop columns of its context.

use rustc_hash::FxHashMap as HashMap;

use rusqlite::types::ValueRef;

use super::join::{Key, Part, NULL_KEY};
use super::values::ValueBuf;
use crate::record::{Segment, Value, ValueType};
use crate::store::{Store, NO_CTX};
use crate::Result;

/// Global key column ids: 0 is the run, 1 the source, then loop columns.
pub(crate) const RUN_COL: usize = 0;
pub(crate) const SOURCE_COL: usize = 1;

/// The loop columns seen so far, shared by every name of one pivot.
#[derive(Default)]
pub(crate) struct LoopColumns {
    /// (column name, depth of first appearance, has a `_value` column)
    pub(crate) loops: Vec<LoopColumn>,
    by_name: HashMap<String, usize>,
    /// Interned loop item texts (`<loop>_value` cells).
    pub(crate) texts: Vec<String>,
    text_ids: HashMap<String, i64>,
}

pub(crate) struct LoopColumn {
    pub(crate) name: String,
    pub(crate) depth: usize,
    pub(crate) first_seen: usize,
    pub(crate) has_value: bool,
    /// Every item seen so far is its own position's text (`range` loops): the value
    /// key adds nothing to the iteration and is left out of the join keys.
    pub(crate) value_is_iteration: bool,
}

impl LoopColumns {
    /// Key column id of loop `index`'s iteration; its value column is the next id.
    pub(crate) fn iteration_col(index: usize) -> usize {
        2 + 2 * index
    }

    /// The loop columns a context maps to. A loop name repeated inside the same stack
    /// gets a suffix (`x`, `x_2`), so nesting a loop in a same-named one works.
    fn columns_of(&mut self, segments: &[Segment]) -> Vec<usize> {
        let mut out = Vec::with_capacity(segments.len());
        for (depth, seg) in segments.iter().enumerate() {
            let mut name = seg.name.clone();
            let mut k = 1;
            while out.iter().any(|&c: &usize| self.loops[c].name == name) {
                k += 1;
                name = format!("{}_{k}", seg.name);
            }
            let index = match self.by_name.get(&name) {
                Some(i) => *i,
                None => {
                    let i = self.loops.len();
                    self.loops.push(LoopColumn {
                        name: name.clone(),
                        depth,
                        first_seen: i,
                        has_value: false,
                        value_is_iteration: true,
                    });
                    self.by_name.insert(name, i);
                    i
                }
            };
            let col = &mut self.loops[index];
            if col.value_is_iteration {
                col.value_is_iteration = match (&seg.value, seg.iteration) {
                    (Some(v), Some(it)) => *v == it.to_string(),
                    _ => false,
                };
            }
            if !col.has_value {
                if let Some(v) = &seg.value {
                    col.has_value = seg.iteration.is_none_or(|it| it.to_string() != *v);
                }
            }
            out.push(index);
        }
        out
    }

    fn text_id(&mut self, text: &str) -> i64 {
        if let Some(id) = self.text_ids.get(text) {
            return *id;
        }
        let id = self.texts.len() as i64;
        self.texts.push(text.to_string());
        self.text_ids.insert(text.to_string(), id);
        id
    }
}

/// One context, resolved once and shared by all records logged in it.
struct ResolvedCtx {
    /// (loop index, iteration key, value text id)
    cells: Vec<(usize, Key, Key)>,
}

/// A record's place: run index, source, ctx id.
type RowRef = (u32, u8, Option<i64>);

/// One name's records with their contexts resolved; [`NameRows::into_part`] makes
/// them a part once every name has been read (and so every loop column is known).
pub(crate) struct NameRows {
    rows: Vec<RowRef>,
    values: ValueBuf,
    resolved: HashMap<i64, ResolvedCtx>,
}

/// Reads every record named `name` (any kind but metadata). `use_series` reads the columnar `series` table
/// instead of a row of `records` per record.
pub(crate) fn read_name(
    store: &Store,
    name: &str,
    loops: &mut LoopColumns,
    run_order: &HashMap<i64, u32>,
    use_series: bool,
) -> Result<NameRows> {
    let conn = store.conn();
    let name_id: Option<i64> = conn
        .query_row("SELECT name FROM names WHERE text = ?1", [name], |r| {
            r.get(0)
        })
        .ok();
    let (rows, values) = match name_id {
        Some(id) if use_series => read_series(store, id, run_order)?,
        Some(id) => read_records(store, id, run_order)?,
        None => (Vec::new(), ValueBuf::default()),
    };
    // Resolve each distinct context once.
    let mut resolved: HashMap<i64, ResolvedCtx> = HashMap::default();
    let mut ctx_stmt = conn.prepare_cached("SELECT json FROM ctxs WHERE ctx = ?1")?;
    for (_, _, ctx) in &rows {
        let Some(id) = ctx else { continue };
        if resolved.contains_key(id) {
            continue;
        }
        let json: String = ctx_stmt.query_row([id], |r| r.get(0))?;
        let segments: Vec<Segment> = serde_json::from_str(&json).unwrap_or_default();
        let cols = loops.columns_of(&segments);
        let cells = segments
            .iter()
            .zip(cols)
            .map(|(seg, col)| {
                let value = match &seg.value {
                    Some(v) => loops.text_id(v),
                    None => NULL_KEY,
                };
                (col, seg.iteration.unwrap_or(NULL_KEY), value)
            })
            .collect();
        resolved.insert(*id, ResolvedCtx { cells });
    }
    Ok(NameRows {
        rows,
        values,
        resolved,
    })
}

impl NameRows {
    /// The part: a row per record, keyed by run, source and loop columns.
    pub(crate) fn into_part(self, loops: &LoopColumns) -> (Part, ValueBuf) {
        let NameRows {
            rows,
            values,
            resolved,
        } = self;
        part_of(rows, values, &resolved, loops)
    }
}

fn part_of(
    rows: Vec<RowRef>,
    values: ValueBuf,
    resolved: &HashMap<i64, ResolvedCtx>,
    loops: &LoopColumns,
) -> (Part, ValueBuf) {
    // The part's key columns: run, source, and every loop column its records touch.
    let mut loop_set: Vec<usize> = resolved
        .values()
        .flat_map(|c| c.cells.iter().map(|x| x.0))
        .collect();
    loop_set.sort_unstable();
    loop_set.dedup();
    let mut key_cols = vec![RUN_COL, SOURCE_COL];
    // Where each loop's iteration and value go in a row (value: usize::MAX if left out).
    let mut position = vec![(usize::MAX, usize::MAX); loops.loops.len()];
    for &l in &loop_set {
        position[l].0 = key_cols.len();
        key_cols.push(LoopColumns::iteration_col(l));
        if !loops.loops[l].value_is_iteration {
            position[l].1 = key_cols.len();
            key_cols.push(LoopColumns::iteration_col(l) + 1);
        }
    }
    let width = key_cols.len();
    let mut keys = Vec::with_capacity(rows.len() * width);
    let mut last: Option<(i64, &ResolvedCtx)> = None;
    for (run, source, ctx) in &rows {
        let start = keys.len();
        keys.push(i64::from(*run));
        keys.push(i64::from(*source));
        keys.resize(start + width, NULL_KEY);
        let Some(id) = *ctx else { continue };
        // Consecutive records often share a context: skip the lookup.
        let c = match last {
            Some((last_id, c)) if last_id == id => c,
            _ => match resolved.get(&id) {
                Some(c) => {
                    last = Some((id, c));
                    c
                }
                None => continue,
            },
        };
        for &(col, iteration, value) in &c.cells {
            let (it, val) = position[col];
            keys[start + it] = iteration;
            if val != usize::MAX {
                keys[start + val] = value;
            }
        }
    }
    let all: Vec<u32> = (0..rows.len() as u32).collect();
    let kept = if repeats_a_context(&rows) {
        distinct_rows(&keys, width, &values)
    } else {
        all.clone()
    };
    (Part::new(key_cols, keys, vec![all]).select(&kept), values)
}

/// The name's records, one row of `records` each.
fn read_records(
    store: &Store,
    name_id: i64,
    run_order: &HashMap<i64, u32>,
) -> Result<(Vec<RowRef>, ValueBuf)> {
    let mut values = ValueBuf::default();
    let mut rows = Vec::new();
    let mut stmt = store.conn().prepare_cached(
        "SELECT run, ctx, value, vtype, source FROM records WHERE name = ?1 ORDER BY run, source, seq",
    )?;
    let mut q = stmt.query([name_id])?;
    while let Some(r) = q.next()? {
        let Some(&run_index) = run_order.get(&r.get::<_, i64>(0)?) else {
            continue;
        };
        let vtype = ValueType::from_u8(r.get::<_, i64>(3)? as u8);
        values.push(read_value(r.get_ref(2)?, vtype));
        rows.push((run_index, r.get::<_, i64>(4)? as u8, r.get(1)?));
    }
    Ok((rows, values))
}

/// The name's records from its series: a blob per run, source and import batch.
/// Batches holding text or JSON have no numbers blob; their values come from `records`.
fn read_series(
    store: &Store,
    name_id: i64,
    run_order: &HashMap<i64, u32>,
) -> Result<(Vec<RowRef>, ValueBuf)> {
    let conn = store.conn();
    let mut values = ValueBuf::default();
    let mut rows = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT run, source, first_seq, ctxs, vtypes, nums FROM series
         WHERE name = ?1 ORDER BY run, source, first_seq",
    )?;
    let mut fallback = conn.prepare_cached(
        "SELECT value, vtype FROM records WHERE name = ?1 AND run = ?2 AND source = ?3
         AND seq >= ?4 ORDER BY seq LIMIT ?5",
    )?;
    let mut q = stmt.query([name_id])?;
    while let Some(r) = q.next()? {
        let run: i64 = r.get(0)?;
        let Some(&run_index) = run_order.get(&run) else {
            continue;
        };
        let source = r.get::<_, i64>(1)? as u8;
        let ctxs = blob(r.get_ref(3)?)?.unwrap_or_default();
        let vtypes = blob(r.get_ref(4)?)?.unwrap_or_default();
        let n = vtypes.len();
        rows.reserve(n);
        values.reserve(n);
        for c in ctxs.chunks_exact(8) {
            let ctx = i64::from_le_bytes(c.try_into().unwrap_or_default());
            rows.push((run_index, source, (ctx != NO_CTX).then_some(ctx)));
        }
        match blob(r.get_ref(5)?)? {
            Some(nums) => {
                for (bits, &t) in nums.chunks_exact(8).zip(vtypes) {
                    let bits = u64::from_le_bytes(bits.try_into().unwrap_or_default());
                    values.push_bits(ValueType::from_u8(t), bits);
                }
            }
            None => {
                // This batch's records of the name: the first n from its first seq on.
                let first: i64 = r.get(2)?;
                let mut q = fallback.query(rusqlite::params![name_id, run, source, first, n])?;
                while let Some(v) = q.next()? {
                    values.push(read_value(
                        v.get_ref(0)?,
                        ValueType::from_u8(v.get::<_, i64>(1)? as u8),
                    ));
                }
            }
        }
        if rows.len() != values.len() {
            return Err(crate::Error::Invalid(format!(
                "the query cache's series of run {run} do not match its records; run `flor unpack`"
            )));
        }
    }
    Ok((rows, values))
}

/// A blob column's bytes (`None` for NULL).
fn blob(v: ValueRef<'_>) -> Result<Option<&[u8]>> {
    v.as_blob_or_null()
        .map_err(|e| crate::Error::Invalid(format!("query cache series: {e}; run `flor unpack`")))
}

/// Whether some run logged this name twice in one context. Contexts are numbered in
/// order of first appearance, so in the usual run they only increase and the part
/// needs no de-duplication.
fn repeats_a_context(rows: &[RowRef]) -> bool {
    rows.windows(2).any(|w| {
        w[0].0 == w[1].0 && w[0].1 == w[1].1 && w[1].2.unwrap_or(-1) <= w[0].2.unwrap_or(-1)
    })
}

/// Rows to keep so that no two have equal keys and equal values. flordb's pandas
/// `drop_duplicates` does this after the join; doing it per name first is equivalent
/// (every column of a name's rows survives the join) and far cheaper. The common case
/// is `flor.log("lr", flor.arg("lr", ...))`: the same value recorded twice.
fn distinct_rows(keys: &[Key], width: usize, values: &ValueBuf) -> Vec<u32> {
    use std::hash::{Hash, Hasher};
    let mut seen: HashMap<u64, Vec<usize>> = HashMap::default();
    let mut kept = Vec::new();
    for r in 0..values.len() {
        let value = &values.get(r);
        let row_keys = &keys[r * width..(r + 1) * width];
        let mut h = rustc_hash::FxHasher::default();
        row_keys.hash(&mut h);
        hash_value(value, &mut h);
        let bucket = seen.entry(h.finish()).or_default();
        let duplicate = bucket.iter().any(|&o| {
            &keys[o * width..(o + 1) * width] == row_keys && same_value(&values.get(o), value)
        });
        if !duplicate {
            bucket.push(r);
            kept.push(r as u32);
        }
    }
    kept
}

fn hash_value(value: &Value, h: &mut impl std::hash::Hasher) {
    use std::hash::Hash;
    (value.value_type() as u8).hash(h);
    match value {
        Value::Null => {}
        Value::Bool(b) => b.hash(h),
        Value::Int(i) => i.hash(h),
        Value::Float(f) => f.to_bits().hash(h),
        Value::Str(s) => s.hash(h),
        Value::Json(j) => j.to_string().hash(h),
    }
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x == y || (x.is_nan() && y.is_nan()),
        _ => a == b,
    }
}

/// Turns a stored value and its type tag back into a [`Value`].
pub(crate) fn read_value(v: ValueRef<'_>, vtype: ValueType) -> Value {
    match (vtype, v) {
        (_, ValueRef::Null) if vtype == ValueType::Float => Value::Float(f64::NAN),
        (_, ValueRef::Null) => Value::Null,
        (ValueType::Bool, ValueRef::Integer(i)) => Value::Bool(i != 0),
        (ValueType::Json, ValueRef::Text(t)) => serde_json::from_slice(t).map_or_else(
            |_| Value::Str(String::from_utf8_lossy(t).into_owned()),
            Value::Json,
        ),
        (_, ValueRef::Integer(i)) => Value::Int(i),
        (_, ValueRef::Real(f)) => Value::Float(f),
        (_, ValueRef::Text(t)) => Value::Str(String::from_utf8_lossy(t).into_owned()),
        (_, ValueRef::Blob(b)) => Value::Str(format!("<{} bytes>", b.len())),
    }
}
