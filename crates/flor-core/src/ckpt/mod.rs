//! Checkpoints of the training state, taken at the outer loop's iteration boundaries and
//! used by replay to start any iteration without recomputing the ones before it.
//!
//! ```text
//! .flor/objects/ab/cdef...          chunks: one per distinct buffer, blake3-named, zstd
//! .flor/ckpts/<run>/0_3_end.json    manifests: which chunks make up one checkpoint
//! ```
//!
//! The Python layer copies the enrolled objects' tensors and arrays out (that copy is
//! all the training thread pays for) and pickles the rest into a small skeleton;
//! [`CkptWriter`] hashes, compresses and writes them on its own thread; [`Policy`]
//! keeps the training thread's share within a budget. Reading back goes through
//! [`read`], which verifies every chunk's hash.

mod chunks;
mod manifest;
mod policy;
mod writer;

use std::path::Path;

pub use chunks::{ChunkRef, ChunkStore};
pub use manifest::{list, read as read_manifest, run_dir, Key, Manifest, ObjectInfo, Point};
pub use policy::{Policy, DEFAULT_EPSILON};
pub use writer::{CkptWriter, Submission, WriterStats};

use crate::{Error, Result};

/// A checkpoint read back: its manifest, the skeleton and every leaf's bytes.
#[derive(Debug)]
pub struct Loaded {
    pub manifest: Manifest,
    pub skeleton: Vec<u8>,
    pub leaves: Vec<Vec<u8>>,
}

/// Reads the checkpoint `key` of `run_id`, verifying every chunk. Fails if the
/// checkpoint does not exist, is incomplete or does not verify.
pub fn read(flor_dir: &Path, run_id: &str, key: Key) -> Result<Loaded> {
    let manifest = manifest::read(flor_dir, run_id, key)?.ok_or_else(|| {
        Error::Checkpoint(format!(
            "run {run_id} has no checkpoint {} (checkpoints stay on the machine that recorded them)",
            key.file_name().trim_end_matches(".json")
        ))
    })?;
    let store = ChunkStore::new(flor_dir);
    let skeleton = store.get(&manifest.skeleton)?;
    let leaves = manifest
        .leaves
        .iter()
        .map(|c| store.get(c))
        .collect::<Result<Vec<_>>>()?;
    Ok(Loaded {
        manifest,
        skeleton,
        leaves,
    })
}
