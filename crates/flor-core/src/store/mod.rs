//! Storage: the per-run JSONL files are the truth; `.flor/flor.db` is a SQLite cache
//! derived from them. Every read first brings the cache up to date with the files
//! (new, grown, changed or deleted), so it never has to be rebuilt by hand; `flor
//! unpack` rebuilds it from scratch all the same.

mod import;
mod layout;
mod query;
mod repair;
mod replays;
mod runfile;
mod schema;

pub(crate) use import::insert_lines;
pub use import::SyncReport;
pub(crate) use import::NO_CTX;
pub(crate) use layout::files_with_extension;
pub use layout::{find_root, Layout};
pub use query::{QueryResult, RunInfo};
pub use runfile::{FileStatus, RunFile};

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::record::Value;
use crate::{Error, Result};

/// A value as SQLite stores it (booleans as integers, lists and objects as JSON text).
pub(crate) fn sql_value(v: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as Sql;
    match v {
        Value::Null => Sql::Null,
        Value::Bool(b) => Sql::Integer(i64::from(*b)),
        Value::Int(i) => Sql::Integer(*i),
        Value::Float(f) => Sql::Real(*f),
        Value::Str(s) => Sql::Text(s.clone()),
        Value::Json(j) => Sql::Text(j.to_string()),
    }
}

/// Opens the cache of `layout` with FlorDB's settings and its current schema.
fn connect(layout: &Layout) -> Result<Connection> {
    let conn = Connection::open(layout.db_path())?;
    conn.busy_timeout(Duration::from_secs(60))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Reads of a million records go through memory maps, not a syscall per page.
    conn.pragma_update(None, "mmap_size", 1i64 << 30)?;
    conn.pragma_update(None, "cache_size", -65536)?;
    // Sorts and temporary tables in memory: a read needs no disk space.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    schema::ensure(&conn)?;
    Ok(conn)
}

/// Whether a cache error means the cache cannot be written here now (a full disk, a
/// read-only file system), rather than that it is wrong.
pub(crate) fn cannot_write(err: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::{CannotOpen, DiskFull, ReadOnly, SystemIoFailure};
    matches!(
        err.sqlite_error_code(),
        Some(DiskFull | ReadOnly | SystemIoFailure | CannotOpen)
    )
}

/// Whether a cache error means the file is not (or no longer) a sound database.
fn is_damage(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
    )
}

/// The cache file and its WAL and shared-memory files.
fn cache_files(layout: &Layout) -> [std::path::PathBuf; 3] {
    let db = layout.db_path();
    let with = |suffix: &str| {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        std::path::PathBuf::from(name)
    };
    [db.clone(), with("-wal"), with("-shm")]
}

fn remove_cache_files(layout: &Layout) -> Result<()> {
    for path in cache_files(layout) {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&path, e)),
            _ => {}
        }
    }
    Ok(())
}

/// Moves a damaged cache to `<db>.damaged` (replacing an older one) for a bug report.
fn set_aside(layout: &Layout) -> Result<std::path::PathBuf> {
    let [db, wal, shm] = cache_files(layout);
    let mut name = db.as_os_str().to_owned();
    name.push(".damaged");
    let aside = std::path::PathBuf::from(name);
    std::fs::rename(&db, &aside).map_err(|e| Error::io(&db, e))?;
    for path in [wal, shm] {
        let _ = std::fs::remove_file(path);
    }
    Ok(aside)
}

/// An open project store: its layout and a connection to its cache.
pub struct Store {
    layout: Layout,
    conn: Connection,
}

impl Store {
    /// Opens (creating if needed) the store of the project rooted at `root`. A cache
    /// file that is not a database, or is damaged, is moved aside and rebuilt from the
    /// run files (it is derived data), with a line on stderr.
    pub fn open(root: &Path) -> Result<Store> {
        let layout = Layout::new(root);
        layout.create()?;
        match connect(&layout) {
            // A full or read-only disk: the cache is read as it is (see `sync`).
            // (Immutable: a WAL database's shared-memory file may be what cannot be
            // created; the last checkpoint is read, which the sync's notice covers.)
            Err(Error::Cache(err)) if cannot_write(&err) => {
                let path = layout.db_path().display().to_string();
                let escaped = path
                    .replace('%', "%25")
                    .replace('?', "%3f")
                    .replace('#', "%23");
                let uri = format!("file:{escaped}?immutable=1");
                let Ok(conn) = Connection::open_with_flags(
                    uri,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
                ) else {
                    return Err(Error::Cache(err));
                };
                eprintln!(
                    "flordb: the query cache cannot be written ({err}: is the disk full?); showing what it held, which may lack the newest runs"
                );
                Ok(Store { layout, conn })
            }
            Err(Error::Cache(err)) if is_damage(&err) => {
                let aside = set_aside(&layout)?;
                eprintln!(
                    "flordb: the query cache was damaged ({err}); it was moved to {} and is rebuilt from the run files",
                    aside.display()
                );
                let conn = connect(&layout)?;
                Ok(Store { layout, conn })
            }
            other => Ok(Store {
                conn: other?,
                layout,
            }),
        }
    }

    /// Rebuilds the cache from the run files alone, starting from nothing: the old file
    /// is removed, not opened (it may be the damaged thing). Idempotent.
    pub fn unpack(self) -> Result<SyncReport> {
        let Store { layout, conn } = self;
        drop(conn);
        remove_cache_files(&layout)?;
        let store = Store {
            conn: connect(&layout)?,
            layout,
        };
        store.sync()
    }

    /// Opens the store of the project at `start` or above it. A repository where
    /// nothing was recorded yet reads as an empty store, and nothing is created in it.
    pub fn discover(start: &Path) -> Result<Store> {
        let root = find_root(start).ok_or_else(|| Error::NoProject(start.to_path_buf()))?;
        let layout = Layout::new(&root);
        if !layout.flor_dir().is_dir() {
            let conn = Connection::open_in_memory()?;
            schema::ensure(&conn)?;
            return Ok(Store { layout, conn });
        }
        Store::open(&root)
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The cache connection, for the pivot and other readers in this crate.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Whether the `series` table matches `records` (see [`schema::SERIES_FLAG`]).
    pub(crate) fn series_valid(&self) -> Result<bool> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM flags WHERE name = ?1",
            [schema::SERIES_FLAG],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    /// A read-only connection to the cache, for users' own SQL.
    pub(crate) fn read_only_conn(&self) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            self.layout.db_path(),
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(60))?;
        Ok(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(root: &Path) {
        let layout = Layout::new(root);
        layout.create().unwrap();
        let line = r#"{"projid": "p", "tstamp": "2026-01-01T00:00:00.000001", "filename": "t.py", "ctx": null, "name": "acc", "value": 0.5, "type": 1}"#;
        std::fs::write(
            layout.runs_dir().join("2026-01-01T00:00:00.000001.jsonl"),
            format!("{line}\n"),
        )
        .unwrap();
    }

    #[test]
    fn a_damaged_cache_is_set_aside_and_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        record(dir.path());
        let count = |s: &Store| {
            s.query("SELECT count(*) FROM logs", &[], false)
                .unwrap()
                .rows[0][0]
                .clone()
        };
        let store = Store::open(dir.path()).unwrap();
        store.sync().unwrap();
        assert_eq!(count(&store), Value::Int(1));
        drop(store);
        let db = Layout::new(dir.path()).db_path();
        std::fs::write(&db, vec![0x5au8; 8192]).unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.sync().unwrap();
        assert_eq!(count(&store), Value::Int(1));
        assert!(db.with_extension("db.damaged").exists());
        // unpack starts from nothing, whatever the file holds.
        drop(store);
        std::fs::write(&db, b"").unwrap();
        assert_eq!(
            Store::open(dir.path()).unwrap().unpack().unwrap().imported,
            1
        );
    }

    #[test]
    fn a_cache_of_another_schema_is_replaced() {
        // flordb 4.0.1's cache has the same name and a `logs` table, not a view.
        let dir = tempfile::tempdir().unwrap();
        record(dir.path());
        let db = Layout::new(dir.path()).db_path();
        std::fs::create_dir_all(db.parent().unwrap()).unwrap();
        Connection::open(&db)
            .unwrap()
            .execute_batch(
                "CREATE TABLE logs (projid, tstamp, filename, ctx, value_name, value, value_type);
                 INSERT INTO logs VALUES ('p', 't', 'f', NULL, 'x', '1', 1);",
            )
            .unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.sync().unwrap();
        let rows = store
            .query("SELECT count(*) FROM logs", &[], false)
            .unwrap()
            .rows;
        assert_eq!(rows[0][0], Value::Int(1));
    }

    #[test]
    fn reading_where_nothing_was_recorded_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        let store = Store::discover(dir.path()).unwrap();
        assert!(store.runs().unwrap().is_empty());
        assert!(!dir.path().join(".flor").exists());
    }
}
