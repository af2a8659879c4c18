//! Storage: the per-run JSONL files are the truth; `.flor/flor.db` is a SQLite cache
//! derived from them. Every read first brings the cache up to date with the files
//! (new, grown, changed or deleted), so it never has to be rebuilt by hand; `flor
//! unpack` rebuilds it from scratch all the same.

mod import;
mod layout;
mod query;
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

/// An open project store: its layout and a connection to its cache.
pub struct Store {
    layout: Layout,
    conn: Connection,
}

impl Store {
    /// Opens (creating if needed) the store of the project rooted at `root`.
    pub fn open(root: &Path) -> Result<Store> {
        let layout = Layout::new(root);
        layout.create()?;
        let conn = Connection::open(layout.db_path())?;
        conn.busy_timeout(Duration::from_secs(60))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Reads of a million records go through memory maps, not a syscall per page.
        conn.pragma_update(None, "mmap_size", 1i64 << 30)?;
        conn.pragma_update(None, "cache_size", -65536)?;
        schema::ensure(&conn)?;
        Ok(Store { layout, conn })
    }

    /// Opens the store of the project at `start` or above it.
    pub fn discover(start: &Path) -> Result<Store> {
        let root = find_root(start).ok_or_else(|| Error::NoProject(start.to_path_buf()))?;
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
