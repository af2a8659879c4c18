//! Importing replay results: `.flor/replays/<run>/*.jsonl` hold records in the run-file
//! format, logged under the historical run's identity. They enter the cache as
//! `source = replay` rows of that run. When any replay file of a run is new, changed or
//! gone, all of that run's replay rows are rebuilt from its files, so importing is
//! idempotent and a replaced file never leaves stale rows.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};

use super::import::{delete_records, insert_records, stamp, FileStamp, SyncReport};
use super::runfile::RunFile;
use super::Store;
use crate::record::{segments_json, ParsedLine, Source};
use crate::Result;

/// The `files` table key prefix of replay files.
pub(super) const PREFIX: &str = "replays/";

impl Store {
    /// Brings the replay rows up to date with `.flor/replays/`. `known` holds the
    /// replay files the cache has seen, with their size, mtime and run.
    pub(super) fn sync_replays(
        &self,
        known: &HashMap<String, (i64, i64, i64)>,
        report: &mut SyncReport,
    ) -> Result<()> {
        let mut by_run: BTreeMap<String, Vec<(PathBuf, FileStamp)>> = BTreeMap::new();
        for (run_id, path) in self.layout.replay_files()? {
            let mut st = stamp(&path)?;
            st.name = format!("{PREFIX}{run_id}/{}", st.name);
            by_run.entry(run_id).or_default().push((path, st));
        }
        let mut dirty: BTreeMap<String, ()> = BTreeMap::new();
        for (run_id, files) in &by_run {
            let changed = files.iter().any(|(_, st)| {
                !known
                    .get(&st.name)
                    .is_some_and(|(size, mtime, _)| *size == st.size && *mtime == st.mtime_ns)
            });
            if changed {
                dirty.insert(run_id.clone(), ());
            }
        }
        // Files gone: their runs are rebuilt from what is left.
        let mut gone: Vec<&String> = Vec::new();
        for key in known.keys() {
            let rest = &key[PREFIX.len()..];
            let run_id = rest.split('/').next().unwrap_or_default();
            let present = by_run
                .get(run_id)
                .is_some_and(|files| files.iter().any(|(_, st)| st.name == *key));
            if !present {
                gone.push(key);
                dirty.insert(run_id.to_string(), ());
            }
        }
        if dirty.is_empty() {
            return Ok(());
        }
        // Parse before taking the write lock.
        let mut parsed: Vec<(String, Vec<(RunFile, &FileStamp)>)> = Vec::new();
        for run_id in dirty.keys() {
            let mut files = Vec::new();
            for (path, st) in by_run.get(run_id).map(Vec::as_slice).unwrap_or_default() {
                files.push((RunFile::read(path)?, st));
            }
            parsed.push((run_id.clone(), files));
        }
        let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
        for key in gone {
            tx.execute("DELETE FROM files WHERE path = ?1", [key])?;
        }
        for (run_id, files) in &parsed {
            let run_pk: Option<i64> = tx
                .query_row("SELECT run FROM runs WHERE run_id = ?1", [run_id], |r| {
                    r.get(0)
                })
                .optional()?;
            // A replay of a run this project no longer holds is left for later.
            let Some(run_pk) = run_pk else { continue };
            delete_records(&tx, run_pk, Source::Replay)?;
            tx.execute("DELETE FROM replays WHERE run = ?1", [run_pk])?;
            let mut seq = 0i64;
            for (file, st) in newest_first(files) {
                let n = insert_records(&tx, run_pk, &file, Source::Replay, seq)?;
                seq += n as i64;
                report.records += n;
                report.imported += 1;
                upsert_file(&tx, st, run_pk)?;
                insert_provenance(&tx, st, run_pk, file.provenance.as_ref())?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// The files of one run, newest first, each without the values a newer file of the run
/// also holds (same name, same loop context): replaying an overlapping request replaces
/// those values instead of adding a second copy.
fn newest_first<'a>(files: &'a [(RunFile, &'a FileStamp)]) -> Vec<(RunFile, &'a FileStamp)> {
    let mut order: Vec<&(RunFile, &FileStamp)> = files.iter().collect();
    order.sort_by(|a, b| {
        b.1.mtime_ns
            .cmp(&a.1.mtime_ns)
            .then(b.1.name.cmp(&a.1.name))
    });
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let mut out = Vec::with_capacity(order.len());
    for (file, st) in order {
        let key = |r: &ParsedLine| {
            let ctx = r.ctx.as_deref().map(segments_json).unwrap_or_default();
            (r.name.clone(), ctx)
        };
        let mut kept = file.clone();
        kept.records.retain(|r| !seen.contains(&key(r)));
        seen.extend(file.records.iter().map(key));
        out.push((kept, *st));
    }
    out
}

fn insert_provenance(
    tx: &Transaction,
    st: &FileStamp,
    run_pk: i64,
    provenance: Option<&serde_json::Value>,
) -> Result<()> {
    let Some(p) = provenance else { return Ok(()) };
    let text = |key: &str| match p.get(key) {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
        None => None,
    };
    tx.execute(
        "INSERT OR REPLACE INTO replays(path, run, script, version, statements, placed, request, verification)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            st.name,
            run_pk,
            text("script"),
            text("version"),
            text("statements"),
            text("placed"),
            text("request"),
            text("verification")
        ],
    )?;
    Ok(())
}

fn upsert_file(tx: &Transaction, st: &FileStamp, run_pk: i64) -> Result<()> {
    tx.execute(
        "INSERT INTO files(path, run, size, mtime_ns) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(path) DO UPDATE SET run = excluded.run, size = excluded.size, mtime_ns = excluded.mtime_ns",
        params![st.name, run_pk, st.size, st.mtime_ns],
    )?;
    Ok(())
}
