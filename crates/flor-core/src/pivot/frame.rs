//! The pivot's result: named, typed columns, ready to become a pandas DataFrame (the
//! Python layer turns each into a numpy array without touching every cell) or a table,
//! CSV or JSON on the command line.

use crate::record::Value;

/// A table of typed columns, all of the same length.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    pub columns: Vec<Column>,
}

/// One named column.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub data: ColumnData,
}

/// A column's values. Text is dictionary-encoded: most text columns (run ids,
/// timestamps, loop values) repeat a few values many times.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    /// `codes[i]` indexes `categories`; -1 is missing.
    Text {
        codes: Vec<i32>,
        categories: Vec<String>,
    },
    /// Lists, objects, or a mix of types: kept as JSON values.
    Mixed(Vec<Value>),
}

impl ColumnData {
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Int(v) => v.len(),
            ColumnData::Float(v) => v.len(),
            ColumnData::Bool(v) => v.len(),
            ColumnData::Text { codes, .. } => codes.len(),
            ColumnData::Mixed(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value at `row`, as a [`Value`] (missing is [`Value::Null`]).
    pub fn get(&self, row: usize) -> Value {
        match self {
            ColumnData::Int(v) => v[row].map_or(Value::Null, Value::Int),
            ColumnData::Float(v) => v[row].map_or(Value::Null, Value::Float),
            ColumnData::Bool(v) => v[row].map_or(Value::Null, Value::Bool),
            ColumnData::Text { codes, categories } => match codes[row] {
                c if c >= 0 => Value::Str(categories[c as usize].clone()),
                _ => Value::Null,
            },
            ColumnData::Mixed(v) => v[row].clone(),
        }
    }

    /// Builds the best-typed column for `values`: integers, floats (integers mixed in
    /// become floats), booleans, text, or JSON values when types are mixed.
    pub fn from_values(values: Vec<Value>) -> ColumnData {
        let picks: Vec<u32> = (0..values.len() as u32).collect();
        ColumnData::gather(&values, &picks)
    }

    /// The best-typed column whose row `r` is `values[picks[r]]` (missing where the
    /// pick is `u32::MAX`), built without copying the values first.
    pub(crate) fn gather(values: &[Value], picks: &[u32]) -> ColumnData {
        let mut kinds = [false; 6];
        for v in values {
            kinds[v.value_type() as usize] = true;
        }
        let pick = |p: u32| values.get(p as usize);
        let [nulls, bools, ints, floats, mut strs, jsons] = kinds;
        // A logged NaN and a logged None are two facts; a float column would show both as
        // NaN, so such a column keeps its values as objects (NaN and None).
        if floats
            && nulls
            && values
                .iter()
                .any(|v| matches!(v, Value::Float(f) if f.is_nan()))
        {
            strs = true;
        }
        match (bools, ints, floats, strs, jsons) {
            // No values at all: a column of missing floats, as pandas makes one.
            (false, false, false, false, false) => ColumnData::Float(vec![None; picks.len()]),
            (false, true, false, false, false) => ColumnData::Int(
                picks
                    .iter()
                    .map(|&p| {
                        if let Some(Value::Int(i)) = pick(p) {
                            Some(*i)
                        } else {
                            None
                        }
                    })
                    .collect(),
            ),
            (false, _, true, false, false) => ColumnData::Float(
                picks
                    .iter()
                    .map(|&p| match pick(p) {
                        Some(Value::Int(i)) => Some(*i as f64),
                        Some(Value::Float(f)) => Some(*f),
                        _ => None,
                    })
                    .collect(),
            ),
            (true, false, false, false, false) => ColumnData::Bool(
                picks
                    .iter()
                    .map(|&p| {
                        if let Some(Value::Bool(b)) = pick(p) {
                            Some(*b)
                        } else {
                            None
                        }
                    })
                    .collect(),
            ),
            (false, false, false, true, false) => {
                let mut text = TextBuilder::default();
                for &p in picks {
                    text.push(if let Some(Value::Str(s)) = pick(p) {
                        Some(s.as_str())
                    } else {
                        None
                    });
                }
                text.finish()
            }
            _ => ColumnData::Mixed(
                picks
                    .iter()
                    .map(|&p| pick(p).cloned().unwrap_or(Value::Null))
                    .collect(),
            ),
        }
    }
}

/// Dictionary-encodes text as it is pushed.
#[derive(Default)]
pub(crate) struct TextBuilder {
    codes: Vec<i32>,
    categories: Vec<String>,
    index: rustc_hash::FxHashMap<String, i32>,
}

impl TextBuilder {
    pub(crate) fn push(&mut self, s: Option<&str>) {
        let code = match s {
            None => -1,
            Some(s) => match self.index.get(s) {
                Some(c) => *c,
                None => {
                    let c = self.categories.len() as i32;
                    self.categories.push(s.to_string());
                    self.index.insert(s.to_string(), c);
                    c
                }
            },
        };
        self.codes.push(code);
    }

    pub(crate) fn finish(self) -> ColumnData {
        ColumnData::Text {
            codes: self.codes,
            categories: self.categories,
        }
    }
}

impl Frame {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.columns.first().map_or(0, |c| c.data.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Keeps only the rows whose index is in `rows`, in that order.
    pub fn take(&self, rows: &[usize]) -> Frame {
        let columns = self
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                data: match &c.data {
                    ColumnData::Int(v) => ColumnData::Int(rows.iter().map(|&r| v[r]).collect()),
                    ColumnData::Float(v) => ColumnData::Float(rows.iter().map(|&r| v[r]).collect()),
                    ColumnData::Bool(v) => ColumnData::Bool(rows.iter().map(|&r| v[r]).collect()),
                    ColumnData::Text { codes, categories } => ColumnData::Text {
                        codes: rows.iter().map(|&r| codes[r]).collect(),
                        categories: categories.clone(),
                    },
                    ColumnData::Mixed(v) => {
                        ColumnData::Mixed(rows.iter().map(|&r| v[r].clone()).collect())
                    }
                },
            })
            .collect();
        Frame { columns }
    }
}
