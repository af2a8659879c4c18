//! Replay of one recorded run: [`find`] the run and its args, [`plan`] each outer loop
//! from the checkpoints at hand, and [`plan_verified`] to plan only with checkpoints
//! whose chunks verify. The Python layer executes the plan inside the user's script;
//! the records go to a file under `.flor/replays/` that the store imports as
//! `source = replay`.

pub mod campaign;
mod estimate;
mod merge;
mod plan;
pub mod pool;
mod target;

use std::collections::HashSet;
use std::path::Path;

pub use estimate::{makespan, restored_bytes, Timing};
pub use merge::{merge_parts, PROVENANCE};
pub use plan::{plan, Action, Plan, Request, Step};
pub use target::{find, Target};

use crate::ckpt::{self, ChunkStore, Key};
use crate::Result;

/// Plans `req` for run `run_id`, leaving out checkpoints that are incomplete or do not
/// verify (planning again without them until every checkpoint the plan reads is good).
/// Returns the plan and the checkpoints that were refused.
pub fn plan_verified(flor_dir: &Path, run_id: &str, req: &Request) -> Result<(Plan, Vec<Key>)> {
    let store = ChunkStore::new(flor_dir);
    let mut manifests: Vec<ckpt::Manifest> = ckpt::list(flor_dir, run_id)?
        .into_iter()
        .filter(|m| m.occurrence == req.occurrence && m.complete(&store))
        .collect();
    let mut verified: HashSet<String> = HashSet::new();
    let mut refused = Vec::new();
    loop {
        let p = plan(req, &manifests);
        let bad: Vec<Key> = p
            .uses
            .iter()
            .filter(|k| {
                let Some(m) = manifests.iter().find(|m| m.key() == **k) else {
                    return true;
                };
                let ok = m.chunks().all(|c| {
                    verified.contains(&c.hash)
                        || store.get(c).is_ok() && verified.insert(c.hash.clone())
                });
                !ok
            })
            .copied()
            .collect();
        if bad.is_empty() {
            return Ok((p, refused));
        }
        manifests.retain(|m| !bad.contains(&m.key()));
        refused.extend(bad);
    }
}
