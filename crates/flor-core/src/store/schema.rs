//! The SQLite cache's schema. It is derived data: a schema from another FlorDB version
//! is dropped and rebuilt from the run files rather than migrated.

use rusqlite::Connection;

use crate::Result;

/// Bumped whenever the tables below change.
pub const SCHEMA_VERSION: i64 = 7;

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS runs(
    run INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL UNIQUE,
    name TEXT,
    projid TEXT NOT NULL,
    tstamp TEXT NOT NULL,
    filename TEXT NOT NULL,
    script TEXT,
    argv TEXT,
    python TEXT,
    branch TEXT,
    version TEXT,
    status TEXT NOT NULL,
    exit_code INTEGER,
    start REAL,
    end REAL,
    pid INTEGER,
    host TEXT,
    -- What the run logged (its records but the timings), counted at import: listing runs
    -- must not count a million rows.
    records INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS files(
    path TEXT PRIMARY KEY,
    run INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS names(
    name INTEGER PRIMARY KEY,
    text TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS ctxs(
    ctx INTEGER PRIMARY KEY,
    json TEXT NOT NULL UNIQUE
);
-- Clustered by name: the pivot reads one name across all runs as one range scan.
CREATE TABLE IF NOT EXISTS records(
    name INTEGER NOT NULL,
    run INTEGER NOT NULL,
    source INTEGER NOT NULL DEFAULT 0,
    seq INTEGER NOT NULL,
    ctx INTEGER,
    value,
    vtype INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    arg INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (name, run, source, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_by_run ON records(run, source);
-- The same records, columnar: one row per name, run, source and import batch (its
-- first seq), holding the batch's ctx ids (i64 LE, -1 for none), value types (u8) and,
-- when every value is a number, bool or null, the values (8 bytes each: i64 or f64
-- bits). The pivot reads a name over a thousand runs as a thousand blobs instead of a
-- million rows. Derived from `records` by the same writes; see `SERIES_FLAG`.
CREATE TABLE IF NOT EXISTS series(
    name INTEGER NOT NULL,
    run INTEGER NOT NULL,
    source INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    ctxs BLOB NOT NULL,
    vtypes BLOB NOT NULL,
    nums BLOB,
    PRIMARY KEY (name, run, source, first_seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS series_by_run ON series(run, source);
CREATE TABLE IF NOT EXISTS flags(name TEXT PRIMARY KEY) WITHOUT ROWID;
-- Where replayed values came from: one row per replay file, from its first line.
CREATE TABLE IF NOT EXISTS replays(
    path TEXT PRIMARY KEY,
    run INTEGER NOT NULL,
    script TEXT,
    version TEXT,
    statements TEXT,
    placed TEXT,
    request TEXT,
    -- What replay's check against the recorded values found (replay::Verification, JSON).
    verification TEXT
);
-- flordb's table, as a view, so its queries keep working.
CREATE VIEW IF NOT EXISTS logs AS
SELECT runs.projid, runs.tstamp, runs.filename, ctxs.json AS ctx,
       names.text AS value_name, records.value, records.kind AS value_type,
       CASE records.source WHEN 0 THEN 'forward' WHEN 1 THEN 'replay' ELSE 'extract' END AS source,
       runs.run_id
FROM records
JOIN runs ON runs.run = records.run
JOIN names ON names.name = records.name
LEFT JOIN ctxs ON ctxs.ctx = records.ctx;
";

/// Present in `flags` while `series` holds exactly what `records` holds. Users' own
/// write queries may change `records` behind its back: they drop the flag (and the
/// series), the pivot then reads `records`, and `flor unpack` sets it again.
pub const SERIES_FLAG: &str = "series";

/// Opens the cache's tables, rebuilding them if they come from another schema version.
/// Returns true when the tables were (re)created empty.
pub fn ensure(conn: &Connection) -> Result<bool> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == SCHEMA_VERSION {
        return Ok(false);
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    // Another process may have built the tables while this one waited for the lock.
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == SCHEMA_VERSION {
        conn.execute_batch("COMMIT")?;
        return Ok(false);
    }
    // Everything in a cache of another schema goes, whoever made it (an older version of
    // this project, or flordb 4.0.1, whose `.flor/flor.db` holds a `logs` table where
    // this schema has a view): the cache is derived from the run files.
    let objects: Vec<(String, String)> = conn
        .prepare("SELECT type, name FROM sqlite_master WHERE type IN ('view', 'table') AND name NOT LIKE 'sqlite_%'")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<std::result::Result<_, _>>()?;
    for (kind, name) in objects {
        let kind = if kind == "view" { "VIEW" } else { "TABLE" };
        conn.execute_batch(&format!(
            "DROP {kind} IF EXISTS \"{}\"",
            name.replace('"', "\"\"")
        ))?;
    }
    conn.execute_batch(TABLES)?;
    conn.execute(
        "INSERT OR IGNORE INTO flags(name) VALUES (?1)",
        [SERIES_FLAG],
    )?;
    conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"))?;
    Ok(true)
}
