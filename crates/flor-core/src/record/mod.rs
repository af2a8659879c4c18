//! What a training run records: [`Record`]s with their loop context, typed [`Value`]s,
//! run identity ([`RunId`]) and the in-process [`Recorder`] that scripts drive.

pub mod capture;
mod code_read;
mod ctx;
mod identity;
mod line;
mod recorder;
mod value;
pub mod verify;
mod writer;

pub use ctx::{segments_json, write_stack_json, Item, Position, Segment};
pub use identity::{local_time, local_tstamp, RunId};
pub use line::{parse_line, write_line, LineHeader, ParsedLine};
pub(crate) use recorder::hostname;
pub use recorder::{amend_status, CommitSummary, Recorder, ReplaySink, RunConfig, RunStatus};
pub use value::{float_json, is_integer, parse_lenient, write_json_str, Value, ValueType};

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};

/// What a record is (flordb's `type` field, plus 0 for FlorDB's own run metadata).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// Run metadata written by FlorDB itself (`flor::run`, `flor::version`, `flor::end`).
    Meta = 0,
    /// `flor.log` and `flor.arg`.
    Log = 1,
    /// Captured output lines.
    Io = 2,
    /// Timing summaries (`time::*`), the input of replay's cost estimate.
    Time = 3,
    /// Lineage: where a run's starting state came from.
    Start = 4,
}

impl Kind {
    /// Reads flordb's `type` number; unknown numbers are refused by the caller.
    pub fn from_u8(n: u8) -> Option<Kind> {
        Some(match n {
            0 => Kind::Meta,
            1 => Kind::Log,
            2 => Kind::Io,
            3 => Kind::Time,
            4 => Kind::Start,
            _ => return None,
        })
    }
}

/// Where a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Source {
    Forward = 0,
    Replay = 1,
    Extract = 2,
}

impl Source {
    /// The name used in tables and in flordb's `source` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Forward => "forward",
            Source::Replay => "replay",
            Source::Extract => "extract",
        }
    }

    /// Reads a stored source number back.
    pub fn from_u8(n: u8) -> Source {
        match n {
            1 => Source::Replay,
            2 => Source::Extract,
            _ => Source::Forward,
        }
    }
}

/// A record's or a loop's name. Names are interned for the life of the process (a
/// script logs a handful of names over and over), so a name is a plain pointer: putting
/// it into every record touches no reference count that the writer thread touches too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(&'static str);

/// Every name interned so far: each distinct name is allocated once per process.
static NAMES: LazyLock<Mutex<HashSet<&'static str>>> = LazyLock::new(Default::default);

impl Name {
    /// The process's one copy of `name`.
    pub fn intern(name: &str) -> Name {
        let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = names.get(name) {
            return Name(known);
        }
        let leaked: &'static str = Box::leak(name.into());
        names.insert(leaked);
        Name(leaked)
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl From<&'static str> for Name {
    fn from(name: &'static str) -> Self {
        Name(name)
    }
}

impl std::ops::Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        self.0
    }
}

/// One logged fact: a name and a value. Its loop context travels beside it (see
/// `writer::Entry`).
#[derive(Debug, Clone)]
pub struct Record {
    pub name: Name,
    pub value: Value,
    pub kind: Kind,
    /// Whether this record is a hyper-parameter read by `flor.arg`.
    pub arg: bool,
}

/// Reserved record names for FlorDB's own metadata.
pub mod meta {
    /// First line of every run file: who, what and where.
    pub const RUN: &str = "flor::run";
    /// The code version, once the snapshot commit exists.
    pub const VERSION: &str = "flor::version";
    /// Last line of a run that ended: status, exit code, end time.
    pub const END: &str = "flor::end";
    /// First line of a replay file: which statements, from which version, as asked.
    pub const REPLAY: &str = "flor::replay";
    /// What changes a run's numbers besides its code and args: thread counts,
    /// deterministic-algorithm flags, library versions. Replay runs under the same.
    pub const ENV: &str = "flor::env";
    /// Source files the run read that were modified after its process started: its
    /// recorded code version may not be what ran.
    pub const CODE_CHANGED: &str = "flor::code_changed";
    /// The state the run started from was another run's (flordb 4.0.1's lineage): a
    /// JSON object `{via, key, run, name, setup[, call]}`, one per resume.
    pub const START: &str = "flor::start";
}
