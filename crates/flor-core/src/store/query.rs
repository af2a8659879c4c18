//! Reading the cache: the run table and users' own SQL.

use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{params_from_iter, Connection};

use super::{sql_value, Store};
use crate::record::Value;
use crate::{Error, Result};

/// The result of a SQL query: column names and rows of typed values.
#[derive(Debug, Clone, Default)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// One run, as `flor runs` and `flor.runs()` show it.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub run_id: String,
    /// The user's name for the run (`--flor NAME`).
    pub name: Option<String>,
    pub tstamp: String,
    pub projid: String,
    pub filename: String,
    pub script: Option<String>,
    pub branch: Option<String>,
    pub version: Option<String>,
    /// `finished`, `failed`, `running`, or `killed` (no end record and no live process).
    pub status: String,
    pub exit_code: Option<i64>,
    pub start: Option<f64>,
    pub end: Option<f64>,
    /// Records the run logged (timings not counted; replayed values neither).
    pub records: i64,
}

impl RunInfo {
    /// The columns of [`RunInfo::to_row`], in order.
    pub const COLUMNS: [&'static str; 13] = [
        "run_id",
        "name",
        "tstamp",
        "projid",
        "filename",
        "script",
        "branch",
        "version",
        "status",
        "exit_code",
        "start",
        "duration",
        "records",
    ];

    /// The run as one table row (start as unix seconds, duration in seconds).
    pub fn to_row(&self) -> Vec<Value> {
        let opt = |s: &Option<String>| s.clone().map_or(Value::Null, Value::Str);
        vec![
            Value::Str(self.run_id.clone()),
            opt(&self.name),
            Value::Str(self.tstamp.clone()),
            Value::Str(self.projid.clone()),
            Value::Str(self.filename.clone()),
            opt(&self.script),
            opt(&self.branch),
            opt(&self.version),
            Value::Str(self.status.clone()),
            self.exit_code.map_or(Value::Null, Value::Int),
            self.start.map_or(Value::Null, Value::Float),
            match (self.start, self.end) {
                (Some(s), Some(e)) => Value::Float(e - s),
                _ => Value::Null,
            },
            Value::Int(self.records),
        ]
    }
}

impl Store {
    /// Every run, oldest first.
    pub fn runs(&self) -> Result<Vec<RunInfo>> {
        self.sync_runs()?;
        let host = crate::record::hostname();
        let mut stmt = self.conn.prepare(
            "SELECT run_id, tstamp, projid, filename, script, branch, version, status, exit_code,
                    start, end, pid, host,
                    records, name
             FROM runs ORDER BY start, tstamp, run_id",
        )?;
        let rows = stmt.query_map([], |r| {
            let status: String = r.get(7)?;
            let pid: Option<i64> = r.get(11)?;
            let run_host: Option<String> = r.get(12)?;
            let status = if status == "open" {
                let alive = run_host.as_deref() == Some(host.as_str())
                    && pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
                if alive { "running" } else { "killed" }.to_string()
            } else {
                status
            };
            Ok(RunInfo {
                run_id: r.get(0)?,
                tstamp: r.get(1)?,
                projid: r.get(2)?,
                filename: r.get(3)?,
                script: r.get(4)?,
                branch: r.get(5)?,
                version: r.get(6)?,
                status,
                exit_code: r.get(8)?,
                start: r.get(9)?,
                end: r.get(10)?,
                records: r.get(13)?,
                name: r.get(14)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Runs the user's SQL on the cache with `params` bound in order. Read-only unless
    /// `write` is set; a statement that would modify the cache is refused up front.
    pub fn query(&self, sql: &str, params: &[Value], write: bool) -> Result<QueryResult> {
        self.sync()?;
        let conn;
        // The store's own connection when it has no file (nothing recorded yet) or is
        // already read-only (a full disk); the read-only check below holds either way.
        let own = write
            || self.conn.path().is_none_or(str::is_empty)
            || self.conn.is_readonly(c"main")?;
        let conn_ref: &Connection = if own {
            &self.conn
        } else {
            conn = self.read_only_conn()?;
            &conn
        };
        let mut stmt = conn_ref
            .prepare(sql)
            .map_err(|e| Error::Query(e.to_string()))?;
        if !write && !stmt.readonly() {
            return Err(Error::Query(
                "this statement would modify the cache; it is read-only unless you ask for writes (`write=True` in Python, `--write` on the command line)".into(),
            ));
        }
        if stmt.parameter_count() != params.len() {
            return Err(Error::Query(format!(
                "the query has {} parameter(s) but {} value(s) were given",
                stmt.parameter_count(),
                params.len()
            )));
        }
        let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
        let bound: Vec<rusqlite::types::Value> = params.iter().map(sql_value).collect();
        let mut rows = stmt
            .query(params_from_iter(bound.iter()))
            .map_err(|e| Error::Query(e.to_string()))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| Error::Query(e.to_string()))? {
            let mut values = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                values.push(from_sql(row.get_ref(i)?));
            }
            out.push(values);
        }
        drop(rows);
        if write && !stmt.readonly() {
            // The statement may have changed `records`; the series no longer follow it.
            self.conn
                .execute_batch("DELETE FROM series; DELETE FROM flags;")?;
        }
        Ok(QueryResult { columns, rows: out })
    }
}

fn from_sql(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Float(f),
        ValueRef::Text(t) => Value::Str(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Str(format!("<{} bytes>", b.len())),
    }
}
