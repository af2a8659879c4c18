//! What a task forked from the worker server costs beyond the work the recorded timings
//! predict (the fork, `import flordb`, finding the run, the script's own set-up, the
//! exit), learned from this project's previous replay and kept in
//! `.flor/tmp/replay-costs.json`. It depends on the machine and on the script (a set-up
//! that builds a data set pays it in every task), so a constant cannot hold it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::estimate::FORKED_TASK_SECS;

/// Bounds on a learned value: a broken measurement must not make the estimate absurd.
const MIN_SECS: f64 = 0.01;
const MAX_SECS: f64 = 60.0;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Costs {
    /// Seconds a forked task costs beyond its predicted work.
    forked_task_secs: f64,
    /// How many tasks the value was learned from.
    tasks: usize,
}

fn path(flor_dir: &Path) -> PathBuf {
    flor_dir.join("tmp").join("replay-costs.json")
}

/// The per-task cost to estimate with: the learned one, else the default.
pub fn forked_task_secs(flor_dir: &Path) -> f64 {
    std::fs::read_to_string(path(flor_dir))
        .ok()
        .and_then(|text| serde_json::from_str::<Costs>(&text).ok())
        .map(|c| c.forked_task_secs)
        .filter(|s| s.is_finite() && (MIN_SECS..=MAX_SECS).contains(s))
        .unwrap_or(FORKED_TASK_SECS)
}

/// Tasks whose predicted work exceeds this many seconds teach nothing about the
/// per-task cost: their error is the machine running faster or slower than when the
/// runs were recorded, in proportion to the work.
const MAX_WORK_SECS: f64 = 1.0;

/// Learns from a finished replay: `used` is the per-task cost its estimates assumed,
/// `tasks` each successful task's `(estimate, actual)` seconds. The median error of the
/// tasks with little work moves the value (one slow task, a page-cache miss, does not);
/// without such tasks the value stays. A failure to save is not an error: the next
/// estimate uses the value it had.
pub fn learn(flor_dir: &Path, used: f64, tasks: &[(f64, f64)]) {
    let mut errors: Vec<f64> = tasks
        .iter()
        .filter(|(estimate, _)| estimate - used <= MAX_WORK_SECS)
        .map(|(estimate, actual)| actual - estimate)
        .filter(|e| e.is_finite())
        .collect();
    if errors.is_empty() {
        return;
    }
    errors.sort_by(f64::total_cmp);
    let mid = errors.len() / 2;
    let median = if errors.len().is_multiple_of(2) {
        (errors[mid - 1] + errors[mid]) / 2.0
    } else {
        errors[mid]
    };
    let costs = Costs {
        forked_task_secs: (used + median).clamp(MIN_SECS, MAX_SECS),
        tasks: errors.len(),
    };
    let file = path(flor_dir);
    let tmp = file.with_extension("json.tmp");
    let written = serde_json::to_string(&costs).ok().is_some_and(|text| {
        std::fs::create_dir_all(flor_dir.join("tmp")).is_ok()
            && std::fs::write(&tmp, text).is_ok()
            && std::fs::rename(&tmp, &file).is_ok()
    });
    if !written {
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_error_of_the_last_replay_corrects_the_per_task_cost() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(forked_task_secs(dir.path()), FORKED_TASK_SECS);
        // Tasks ran 0.1 s faster than estimated, one of them far slower: the median counts.
        learn(dir.path(), 0.4, &[(1.0, 0.9), (1.2, 1.1), (1.0, 5.0)]);
        assert!((forked_task_secs(dir.path()) - 0.3).abs() < 1e-9);
        // The next replay learns from the value it used.
        learn(dir.path(), 0.3, &[(1.0, 1.2), (1.0, 1.2)]);
        assert!((forked_task_secs(dir.path()) - 0.5).abs() < 1e-9);
        // Nothing to learn from: the value stays. Long tasks (a step-level replay 5%
        // slower than the recording) say how fast the machine is, not what a task costs.
        learn(dir.path(), 0.5, &[]);
        learn(dir.path(), 0.5, &[(60.0, 63.0), (70.0, 73.5)]);
        assert!((forked_task_secs(dir.path()) - 0.5).abs() < 1e-9);
        // A value far below zero is bounded, and a corrupt file gives the default.
        learn(dir.path(), 0.5, &[(1.0, 0.0)]);
        assert_eq!(forked_task_secs(dir.path()), MIN_SECS);
        std::fs::write(path(dir.path()), "{not json").unwrap();
        assert_eq!(forked_task_secs(dir.path()), FORKED_TASK_SECS);
    }
}
