//! Bringing the cache up to date with the run files.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use rusqlite::{params, Transaction, TransactionBehavior};

use super::runfile::{FileStatus, RunFile};
use super::Store;
use crate::record::{Kind, ParsedLine, Source, Value};
use crate::{Error, Result};

/// What a sync or unpack did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// Run files (re)imported.
    pub imported: usize,
    /// Runs dropped because their file is gone.
    pub removed: usize,
    /// Records inserted.
    pub records: usize,
}

pub(super) struct FileStamp {
    pub(super) name: String,
    pub(super) size: i64,
    pub(super) mtime_ns: i64,
}

pub(super) fn stamp(path: &Path) -> Result<FileStamp> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or_default();
    Ok(FileStamp {
        name: file_key(path),
        size: meta.len() as i64,
        mtime_ns,
    })
}

fn file_key(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl Store {
    /// Imports every run and replay file that is new or changed since the cache last saw
    /// it and drops runs whose file is gone. Cheap when nothing changed: one directory
    /// listing.
    pub fn sync(&self) -> Result<SyncReport> {
        self.sync_files(true)
    }

    /// [`Store::sync`] without the replay files: what listing runs needs. A replay task
    /// opens the store while other tasks' results land in `.flor/replays/`; importing
    /// them there would be work for nothing.
    pub(super) fn sync_runs(&self) -> Result<SyncReport> {
        self.sync_files(false)
    }

    fn sync_files(&self, with_replays: bool) -> Result<SyncReport> {
        // Opened read-only because the cache cannot be written (`Store::open` said so).
        if self.conn.is_readonly(c"main")? {
            return Ok(SyncReport::default());
        }
        match self.sync_writing(with_replays) {
            // A full disk (or a read-only one) must not make the runs unreadable: the
            // cache is read as it is, and the reader is told that it may be behind.
            Err(Error::Cache(err)) if super::cannot_write(&err) => {
                // The failed write may leave its transaction open; reads go on without it.
                let _ = self.conn.execute_batch("ROLLBACK");
                eprintln!(
                    "flordb: the query cache cannot be brought up to date ({err}); showing what it held, which may lack the newest runs"
                );
                Ok(SyncReport::default())
            }
            other => other,
        }
    }

    fn sync_writing(&self, with_replays: bool) -> Result<SyncReport> {
        // Runs whose records commit was left for later get it now (`git::pending`),
        // unless another process is at it. A read never fails or waits for git's sake: a
        // run that cannot be committed is set aside.
        let _ = crate::git::finish_pending_unless_busy(self.layout.root());
        let mut known: HashMap<String, (i64, i64, i64)> = HashMap::new();
        {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT path, size, mtime_ns, run FROM files")?;
            let rows = stmt.query_map([], |r| {
                Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?, r.get(3)?)))
            })?;
            for row in rows {
                let (path, v) = row?;
                known.insert(path, v);
            }
        }
        // Replay files are keyed `replays/<run>/<file>`; they are synced after the runs.
        let replays: HashMap<String, (i64, i64, i64)> = known
            .iter()
            .filter(|(k, _)| k.starts_with(super::replays::PREFIX))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        known.retain(|k, _| !k.starts_with(super::replays::PREFIX));
        let mut report = SyncReport::default();
        let mut seen = HashSet::new();
        for path in self.layout.run_files()? {
            let st = stamp(&path)?;
            seen.insert(st.name.clone());
            if known
                .get(&st.name)
                .is_some_and(|(size, mtime, _)| *size == st.size && *mtime == st.mtime_ns)
            {
                continue;
            }
            let records = match self.import_stamped(&path, st) {
                Err(err @ Error::BadRecord { .. }) if self.repair_from_git(&path, &err) => {
                    self.import_stamped(&path, stamp(&path)?)?
                }
                other => other?,
            };
            report.records += records;
            report.imported += 1;
        }
        let gone: Vec<(String, i64)> = known
            .into_iter()
            .filter(|(name, _)| !seen.contains(name))
            .map(|(name, (_, _, run))| (name, run))
            .collect();
        if !gone.is_empty() {
            let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
            for (name, run) in &gone {
                self.note_deleted(name);
                delete_records(&tx, *run, Source::Forward)?;
                tx.execute("DELETE FROM runs WHERE run = ?1 AND NOT EXISTS (SELECT 1 FROM records WHERE run = ?1)", [run])?;
                tx.execute("DELETE FROM files WHERE path = ?1", [name])?;
            }
            tx.commit()?;
            report.removed = gone.len();
        }
        if with_replays {
            self.sync_replays(&replays, &mut report)?;
        }
        Ok(report)
    }

    /// Imports (or re-imports) one run file.
    pub fn import_file(&self, path: &Path) -> Result<usize> {
        let st = stamp(path)?;
        self.import_stamped(path, st)
    }

    fn import_stamped(&self, path: &Path, st: FileStamp) -> Result<usize> {
        // Parse before taking the write lock: other processes keep writing meanwhile.
        let run = RunFile::read(path)?;
        let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
        let run_pk = upsert_run(&tx, &run)?;
        delete_records(&tx, run_pk, Source::Forward)?;
        let count = insert_records(&tx, run_pk, &run, Source::Forward, 0)?;
        let logged = run.records.iter().filter(|r| r.kind != Kind::Time).count() as i64;
        tx.execute(
            "UPDATE runs SET records = ?1 WHERE run = ?2",
            params![logged, run_pk],
        )?;
        tx.execute(
            "INSERT INTO files(path, run, size, mtime_ns) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(path) DO UPDATE SET run = excluded.run, size = excluded.size, mtime_ns = excluded.mtime_ns",
            params![st.name, run_pk, st.size, st.mtime_ns],
        )?;
        tx.commit()?;
        Ok(count)
    }
}

fn upsert_run(tx: &Transaction, run: &RunFile) -> Result<i64> {
    let (status, exit_code) = match run.status {
        FileStatus::Finished => ("finished", Some(0)),
        FileStatus::Failed(code) => ("failed", Some(code)),
        FileStatus::Open => ("open", None),
    };
    tx.execute(
        "INSERT INTO runs(run_id, projid, tstamp, filename, script, argv, python, branch, version,
                          status, exit_code, start, end, pid, host, name)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
         ON CONFLICT(run_id) DO UPDATE SET name = excluded.name, projid = excluded.projid, tstamp = excluded.tstamp,
             filename = excluded.filename, script = excluded.script, argv = excluded.argv,
             python = excluded.python, branch = excluded.branch, version = excluded.version,
             status = excluded.status, exit_code = excluded.exit_code, start = excluded.start,
             end = excluded.end, pid = excluded.pid, host = excluded.host",
        params![
            run.run_id,
            run.projid,
            run.tstamp,
            run.filename,
            run.script,
            run.argv,
            run.python,
            run.branch,
            run.version,
            status,
            exit_code,
            run.start,
            run.end,
            run.pid,
            run.host,
            run.name
        ],
    )?;
    Ok(tx.query_row(
        "SELECT run FROM runs WHERE run_id = ?1",
        [&run.run_id],
        |r| r.get(0),
    )?)
}

/// Deletes a run's records of one source, and their series.
pub(super) fn delete_records(tx: &Transaction, run: i64, source: Source) -> Result<()> {
    tx.execute(
        "DELETE FROM records WHERE run = ?1 AND source = ?2",
        params![run, source as u8],
    )?;
    tx.execute(
        "DELETE FROM series WHERE run = ?1 AND source = ?2",
        params![run, source as u8],
    )?;
    Ok(())
}

/// Inserts a run file's records as rows of `records` numbered from `first_seq`, and
/// as one `series` row per name.
pub(super) fn insert_records(
    tx: &Transaction,
    run_pk: i64,
    run: &RunFile,
    source: Source,
    first_seq: i64,
) -> Result<usize> {
    insert_lines(tx, run_pk, &run.records, source, first_seq)
}

/// Inserts `records` of the run `run_pk` as rows of `records` numbered from
/// `first_seq`, and as one `series` row per name.
pub(crate) fn insert_lines(
    tx: &Transaction,
    run_pk: i64,
    records: &[ParsedLine],
    source: Source,
    first_seq: i64,
) -> Result<usize> {
    let mut names: HashMap<&str, i64> = HashMap::new();
    let mut ctxs: HashMap<String, i64> = HashMap::new();
    let mut add_name = tx.prepare_cached("INSERT OR IGNORE INTO names(text) VALUES (?1)")?;
    let mut get_name = tx.prepare_cached("SELECT name FROM names WHERE text = ?1")?;
    let mut add_ctx = tx.prepare_cached("INSERT OR IGNORE INTO ctxs(json) VALUES (?1)")?;
    let mut get_ctx = tx.prepare_cached("SELECT ctx FROM ctxs WHERE json = ?1")?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO records(run, seq, ctx, name, value, vtype, kind, source, arg)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    let mut series: Vec<(i64, SeriesBuilder)> = Vec::new();
    let mut series_of: HashMap<i64, usize> = HashMap::new();
    for (seq, rec) in records.iter().enumerate() {
        let name_id = match names.get(rec.name.as_str()) {
            Some(id) => *id,
            None => {
                add_name.execute([&rec.name])?;
                let id: i64 = get_name.query_row([&rec.name], |r| r.get(0))?;
                names.insert(&rec.name, id);
                id
            }
        };
        let ctx_id = match &rec.ctx {
            None => None,
            Some(segments) => {
                let json = crate::record::segments_json(segments);
                Some(match ctxs.get(&json) {
                    Some(id) => *id,
                    None => {
                        add_ctx.execute([&json])?;
                        let id: i64 = get_ctx.query_row([&json], |r| r.get(0))?;
                        ctxs.insert(json, id);
                        id
                    }
                })
            }
        };
        insert.execute(params![
            run_pk,
            first_seq + seq as i64,
            ctx_id,
            name_id,
            SqlValue(&rec.value),
            rec.value.value_type() as u8,
            rec.kind as u8,
            source as u8,
            rec.arg,
        ])?;
        let slot = *series_of.entry(name_id).or_insert_with(|| {
            series.push((name_id, SeriesBuilder::default()));
            series.len() - 1
        });
        series[slot].1.push(ctx_id, &rec.value);
    }
    let mut add_series = tx.prepare_cached(
        "INSERT INTO series(name, run, source, first_seq, ctxs, vtypes, nums)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (name_id, s) in series {
        add_series.execute(params![
            name_id,
            run_pk,
            source as u8,
            first_seq,
            s.ctxs,
            s.vtypes,
            s.numeric.then_some(s.nums)
        ])?;
    }
    Ok(records.len())
}

/// One name's records of one batch, columnar (the layout of the `series` table).
struct SeriesBuilder {
    ctxs: Vec<u8>,
    vtypes: Vec<u8>,
    nums: Vec<u8>,
    /// False once a text or JSON value is seen: the series then has no `nums`.
    numeric: bool,
}

impl Default for SeriesBuilder {
    fn default() -> Self {
        SeriesBuilder {
            ctxs: Vec::new(),
            vtypes: Vec::new(),
            nums: Vec::new(),
            numeric: true,
        }
    }
}

impl SeriesBuilder {
    fn push(&mut self, ctx: Option<i64>, value: &Value) {
        self.ctxs
            .extend_from_slice(&ctx.unwrap_or(NO_CTX).to_le_bytes());
        self.vtypes.push(value.value_type() as u8);
        if !self.numeric {
            return;
        }
        let bits = match value {
            Value::Null => 0,
            Value::Bool(b) => u64::from(*b),
            Value::Int(i) => *i as u64,
            Value::Float(f) => f.to_bits(),
            Value::Str(_) | Value::Json(_) => {
                self.numeric = false;
                self.nums = Vec::new();
                return;
            }
        };
        self.nums.extend_from_slice(&bits.to_le_bytes());
    }
}

/// The ctx id a series stores for a record logged outside any loop.
pub(crate) const NO_CTX: i64 = -1;

/// A value bound with its natural SQLite type (NaN binds as NULL; its type tag says
/// it was a float).
struct SqlValue<'a>(&'a Value);

impl rusqlite::ToSql for SqlValue<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value as Sql, ValueRef};
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Owned(Sql::Null),
            Value::Bool(b) => ToSqlOutput::Owned(Sql::Integer(i64::from(*b))),
            Value::Int(i) => ToSqlOutput::Owned(Sql::Integer(*i)),
            Value::Float(f) if f.is_nan() => ToSqlOutput::Owned(Sql::Null),
            Value::Float(f) => ToSqlOutput::Owned(Sql::Real(*f)),
            Value::Str(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Json(j) => ToSqlOutput::Owned(Sql::Text(j.to_string())),
        })
    }
}
