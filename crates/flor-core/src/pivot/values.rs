//! One name's values as the pivot reads them: plain floats or integers when every
//! value has that type (the common case, and a copy-free path into the frame), any
//! [`Value`] otherwise.

use super::frame::ColumnData;
use crate::record::{Value, ValueType};

/// A name's values, in record order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ValueBuf {
    Floats(Vec<f64>),
    Ints(Vec<i64>),
    Any(Vec<Value>),
}

impl Default for ValueBuf {
    fn default() -> Self {
        ValueBuf::Floats(Vec::new())
    }
}

impl ValueBuf {
    pub(crate) fn len(&self) -> usize {
        match self {
            ValueBuf::Floats(v) => v.len(),
            ValueBuf::Ints(v) => v.len(),
            ValueBuf::Any(v) => v.len(),
        }
    }

    pub(crate) fn reserve(&mut self, n: usize) {
        match self {
            ValueBuf::Floats(v) => v.reserve(n),
            ValueBuf::Ints(v) => v.reserve(n),
            ValueBuf::Any(v) => v.reserve(n),
        }
    }

    /// The value at `i`.
    pub(crate) fn get(&self, i: usize) -> Value {
        match self {
            ValueBuf::Floats(v) => Value::Float(v[i]),
            ValueBuf::Ints(v) => Value::Int(v[i]),
            ValueBuf::Any(v) => v[i].clone(),
        }
    }

    /// Appends a value stored as 8 bytes (`bits`) with type tag `vtype`.
    pub(crate) fn push_bits(&mut self, vtype: ValueType, bits: u64) {
        match (vtype, &mut *self) {
            (ValueType::Float, ValueBuf::Floats(v)) => v.push(f64::from_bits(bits)),
            (ValueType::Int, ValueBuf::Ints(v)) => v.push(bits as i64),
            (ValueType::Int, ValueBuf::Floats(v)) if v.is_empty() => {
                *self = ValueBuf::Ints(vec![bits as i64])
            }
            _ => self.push(match vtype {
                ValueType::Null => Value::Null,
                ValueType::Bool => Value::Bool(bits != 0),
                ValueType::Int => Value::Int(bits as i64),
                _ => Value::Float(f64::from_bits(bits)),
            }),
        }
    }

    /// Appends any value, widening to [`ValueBuf::Any`] when the type differs.
    pub(crate) fn push(&mut self, value: Value) {
        match (&value, &mut *self) {
            (Value::Float(f), ValueBuf::Floats(v)) => return v.push(*f),
            (Value::Int(i), ValueBuf::Ints(v)) => return v.push(*i),
            (Value::Int(i), ValueBuf::Floats(v)) if v.is_empty() => {
                *self = ValueBuf::Ints(vec![*i]);
                return;
            }
            (_, ValueBuf::Any(v)) => return v.push(value),
            _ => {}
        }
        let mut any: Vec<Value> = (0..self.len()).map(|i| self.get(i)).collect();
        any.push(value);
        *self = ValueBuf::Any(any);
    }

    /// The best-typed column whose row `r` is value `picks[r]` (missing where the pick
    /// is `u32::MAX`).
    pub(crate) fn gather(&self, picks: &[u32]) -> ColumnData {
        match self {
            ValueBuf::Floats(v) if !v.is_empty() => {
                ColumnData::Float(picks.iter().map(|&p| v.get(p as usize).copied()).collect())
            }
            ValueBuf::Ints(v) => {
                ColumnData::Int(picks.iter().map(|&p| v.get(p as usize).copied()).collect())
            }
            ValueBuf::Floats(_) => ColumnData::gather(&[], picks),
            ValueBuf::Any(v) => ColumnData::gather(v, picks),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_typed_until_a_different_type_arrives() {
        let mut b = ValueBuf::default();
        b.push_bits(ValueType::Int, 3);
        b.push(Value::Int(4));
        assert_eq!(b, ValueBuf::Ints(vec![3, 4]));
        b.push_bits(ValueType::Float, 0.5f64.to_bits());
        assert_eq!(
            b,
            ValueBuf::Any(vec![Value::Int(3), Value::Int(4), Value::Float(0.5)])
        );
        // Mixed ints and floats still make a float column, as from_values does.
        assert_eq!(
            b.gather(&[2, u32::MAX, 0]),
            ColumnData::Float(vec![Some(0.5), None, Some(3.0)])
        );
    }

    #[test]
    fn gathers_like_from_values() {
        let mut b = ValueBuf::default();
        for f in [1.5, f64::NAN, -2.0] {
            b.push_bits(ValueType::Float, f.to_bits());
        }
        let picks = [2, 0, u32::MAX, 1];
        let typed = b.gather(&picks);
        let any: Vec<Value> = (0..3).map(|i| b.get(i)).collect();
        let generic = ColumnData::gather(&any, &picks);
        match (typed, generic) {
            (ColumnData::Float(a), ColumnData::Float(g)) => {
                assert_eq!(a.len(), g.len());
                for (x, y) in a.iter().zip(&g) {
                    assert_eq!(x.map(f64::to_bits), y.map(f64::to_bits));
                }
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            ValueBuf::default().gather(&[u32::MAX]),
            ColumnData::Float(vec![None])
        );
    }
}
