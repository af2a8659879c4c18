//! Run identity. flordb uses the import-time microsecond timestamp alone, and
//! concurrent processes collide on it (spec §9.2); a [`RunId`] adds the process id and
//! per-process randomness, and still sorts by start time.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};

/// A run's identity: `YYYYMMDDTHHMMSS.ffffffZ-<12 hex>`, sortable by start time, never
/// shared by two processes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(String);

impl RunId {
    /// A fresh id for a run starting now.
    pub fn new() -> Self {
        let now = chrono::Utc::now();
        // RandomState is seeded from the OS per process: randomness without a dependency.
        let mut h = RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.write_i64(now.timestamp_nanos_opt().unwrap_or_default());
        let salt = h.finish() & 0xffff_ffff_ffff;
        RunId(format!("{}-{salt:012x}", now.format("%Y%m%dT%H%M%S%.6fZ")))
    }

    /// Wraps an existing id (a run file's stem; flordb's files use the tstamp).
    pub fn from_string(id: String) -> Self {
        RunId(id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for RunId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// flordb's `tstamp`: local time, ISO 8601 with microseconds and no zone.
pub fn local_tstamp() -> String {
    chrono::Local::now()
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string()
}

/// Unix seconds as local time, ISO 8601 to the second.
pub fn local_time(unix: f64) -> String {
    chrono::DateTime::from_timestamp(unix.floor() as i64, 0)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_sortable() {
        let ids: Vec<RunId> = (0..1000).map(|_| RunId::new()).collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
        assert!(
            ids[0].as_str() < ids[999].as_str() || ids[0].as_str()[..22] == ids[999].as_str()[..22]
        );
        assert_eq!(local_tstamp().len(), "2026-08-13T11:27:06.417615".len());
    }
}
