//! Filtering a pivoted table with a SQL where-clause over its columns
//! (`flor dataframe lr loss --where "lr < 0.01 and epoch = 4"`).

use rusqlite::{params_from_iter, Connection};

use super::{ColumnData, Frame};
use crate::store::sql_value;
use crate::{Error, Result};

/// Keeps the rows of `frame` for which `where_sql` holds. The clause is evaluated by
/// SQLite over a temporary table whose columns are the frame's; values are bound, and
/// column names are quoted identifiers.
pub fn filter(frame: &Frame, where_sql: &str) -> Result<Frame> {
    let conn = Connection::open_in_memory()?;
    let cols: Vec<String> = frame.columns.iter().map(|c| quote_ident(&c.name)).collect();
    let decls: Vec<String> = frame
        .columns
        .iter()
        .zip(&cols)
        .map(|(c, q)| {
            let ty = match c.data {
                ColumnData::Int(_) | ColumnData::Bool(_) => "INTEGER",
                ColumnData::Float(_) => "REAL",
                _ => "",
            };
            format!("{q} {ty}")
        })
        .collect();
    conn.execute_batch(&format!("CREATE TABLE frame({})", decls.join(", ")))?;
    {
        let placeholders = vec!["?"; cols.len()].join(", ");
        let tx = conn.unchecked_transaction()?;
        let mut insert = tx.prepare(&format!("INSERT INTO frame VALUES ({placeholders})"))?;
        for row in 0..frame.len() {
            let values: Vec<rusqlite::types::Value> = frame
                .columns
                .iter()
                .map(|c| sql_value(&c.data.get(row)))
                .collect();
            insert.execute(params_from_iter(values))?;
        }
        drop(insert);
        tx.commit()?;
    }
    let mut stmt = conn
        .prepare(&format!(
            "SELECT rowid - 1 FROM frame WHERE {where_sql} ORDER BY rowid"
        ))
        .map_err(|e| Error::Query(format!("bad where-clause {where_sql:?}: {e}")))?;
    let rows = stmt
        .query_map([], |r| r.get::<_, i64>(0))
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<i64>>>())
        .map_err(|e| Error::Query(format!("where-clause {where_sql:?} failed: {e}")))?;
    let rows: Vec<usize> = rows.into_iter().map(|r| r as usize).collect();
    Ok(frame.take(&rows))
}

/// A SQL identifier in double quotes, embedded quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pivot::Column;

    #[test]
    fn keeps_matching_rows_and_quotes_odd_names() {
        let frame = Frame {
            columns: vec![
                Column {
                    name: "lr".into(),
                    data: ColumnData::Float(vec![Some(0.1), Some(0.001), None]),
                },
                Column {
                    name: "we\"ird".into(),
                    data: ColumnData::Int(vec![Some(1), Some(2), Some(3)]),
                },
            ],
        };
        let out = filter(&frame, "lr < 0.01").unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out.columns[1].data, ColumnData::Int(vec![Some(2)]));
        let out = filter(&frame, "\"we\"\"ird\" >= 2 or lr is null").unwrap();
        assert_eq!(out.len(), 2);
        assert!(matches!(
            filter(&frame, "nope >").unwrap_err(),
            Error::Query(_)
        ));
    }
}
