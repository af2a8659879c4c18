//! The FlorDB engine. No Python and no command line in here: the `flor` program
//! (`flor-cli`) and the Python package (`flor-py`) are thin layers over these modules.
//!
//! - [`record`]: records, loop context, typed values, run identity and the in-process
//!   [`record::Recorder`] that training scripts drive.
//! - [`store`]: the `.flor/` layout, per-run JSONL files (the truth) and the SQLite cache.
//! - [`pivot`]: every run as one table, typed columns, one row per loop context; the
//!   captured output as a table of lines.
//! - [`extract`]: metrics read from captured output lines, after the fact.
//! - [`analyze`]: tree-sitter reading of training scripts: log sites, loop levels and
//!   propagation of today's log statements into old versions.
//! - [`ckpt`]: checkpoints of the training state: content-addressed chunks, manifests,
//!   the background writer and the adaptive policy.
//! - [`replay`]: which iterations a replay executes, skips or restores, and where its
//!   records go.
//! - [`git`]: code snapshots per run, kept under `refs/flor/` without touching the user's
//!   working tree, index, HEAD or branches.
//!
//! ```no_run
//! use flor_core::{pivot, store::Store};
//! let store = Store::open(std::path::Path::new("."))?;
//! let frame = pivot::dataframe(&store, &["lr", "loss"])?;
//! println!("{} rows", frame.len());
//! # Ok::<(), flor_core::Error>(())
//! ```

pub mod analyze;
pub mod ckpt;
mod error;
pub mod extract;
pub mod git;
pub mod pivot;
pub mod record;
pub mod replay;
pub mod store;

pub use error::{Error, Result};
