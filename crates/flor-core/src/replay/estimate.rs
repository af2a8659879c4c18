//! What a replay will cost, from the timings the forward run recorded (`time::*`):
//! process start (`time::boot`), the code before the loop (`time::setup`), an outer
//! iteration (`time::iter`), the nested loops inside each one (`time::loop` in the
//! iteration's context), the code after the loop (`time::teardown`), plus reading the
//! checkpoints a plan restores.

use std::collections::{BTreeMap, HashMap};

use crate::ckpt::{Key, Point};
use crate::record::ParsedLine;
use crate::record::{Kind, Value};

use super::{Action, Plan};

/// Seconds per byte of checkpoint state read back: decompress, verify, copy in.
/// Calibrated on the replay benchmark (bench/replay.py): about 1 GB/s.
pub const RESTORE_SECS_PER_BYTE: f64 = 1.0e-9;
/// Start-up assumed for a run that recorded no `time::boot` (older files).
pub const DEFAULT_BOOT_SECS: f64 = 1.0;
/// What a task forked from the replay worker server costs beyond the script's own work:
/// the fork, `import flordb`, reading the run's records and checkpoint list, and the
/// exit (about 0.15 s for an empty script forked from a server that imported torch, plus
/// flordb's own start; measured with bench/hindsight.py).
pub const FORKED_TASK_SECS: f64 = 0.25;

/// The forward run's timings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timing {
    /// Interpreter start to `import flordb` (imports before it included).
    pub boot: Option<f64>,
    /// `import flordb` to the first outer loop.
    pub setup: f64,
    /// Mean seconds of an outer iteration.
    pub iteration: f64,
    /// The whole outer loop.
    pub outer_loop: f64,
    /// After the outer loop to the end.
    pub teardown: f64,
    /// The whole script.
    pub script: f64,
    /// Seconds spent in nested loops, per outer iteration.
    pub nested: BTreeMap<i64, f64>,
}

impl Timing {
    /// Reads the run-level and per-outer-iteration timings out of a run's records.
    pub fn from_records(records: &[ParsedLine]) -> Timing {
        let mut t = Timing::default();
        for rec in records.iter().filter(|r| r.kind == Kind::Time) {
            let secs = match &rec.value {
                Value::Float(f) => *f,
                Value::Int(i) => *i as f64,
                _ => continue,
            };
            match rec.ctx.as_deref() {
                None | Some([]) => match rec.name.as_str() {
                    "time::boot" => t.boot = Some(secs),
                    "time::setup" => t.setup = secs,
                    "time::iter" => t.iteration = secs,
                    "time::loop" => t.outer_loop = t.outer_loop.max(secs),
                    "time::teardown" => t.teardown = secs,
                    "time::script" => t.script = secs,
                    _ => {}
                },
                Some([outer]) if rec.name == "time::loop" => {
                    if let Some(i) = outer.iteration {
                        *t.nested.entry(i).or_insert(0.0) += secs;
                    }
                }
                _ => {}
            }
        }
        t
    }

    /// Seconds of outer iteration `i` outside its nested loops.
    fn own_code(&self, i: i64) -> f64 {
        (self.iteration - self.nested.get(&i).copied().unwrap_or(0.0)).max(0.0)
    }

    /// The cost of one task of a replay: everything but the process start, which
    /// [`Timing::boot_secs`] gives (a pool of forked workers pays it once).
    /// `steps` are the plan's executed iterations that this task runs; `restored`
    /// the bytes of checkpoint state it reads.
    pub fn task_secs(&self, steps: &[(i64, Action)], restored: u64) -> f64 {
        let work: f64 = steps
            .iter()
            .map(|&(i, action)| match action {
                Action::Own => self.own_code(i),
                Action::Full | Action::Silent => self.iteration,
            })
            .sum();
        self.setup + work + self.teardown + restored as f64 * RESTORE_SECS_PER_BYTE
    }

    /// [`Timing::task_secs`] for a task forked from the worker server, which has already
    /// done `shared_setup` seconds of the setup (see [`shared_setup`]).
    pub fn forked_task_secs(
        &self,
        steps: &[(i64, Action)],
        restored: u64,
        shared_setup: f64,
    ) -> f64 {
        self.task_secs(steps, restored) - shared_setup.min(self.setup) + FORKED_TASK_SECS
    }

    /// Seconds from interpreter start to `import flordb`.
    pub fn boot_secs(&self) -> f64 {
        self.boot.unwrap_or(DEFAULT_BOOT_SECS)
    }

    /// The forward run's whole time: what re-training it costs.
    pub fn retrain_secs(&self) -> f64 {
        self.boot_secs() + self.script
    }
}

/// The part of the recorded setup (`import flordb` to the loop) that the worker server
/// does once instead of each task: the smallest setup among the runs. A forked task
/// starts with the script's modules imported, and with what they import lazily on first
/// use (torch's optimizers import torch._dynamo, seconds of a torch script's setup);
/// what every run's setup shares is taken to be that, and what a run spends beyond it
/// to be its own work (data it loads), which each of its tasks repeats.
pub fn shared_setup<'a>(timings: impl IntoIterator<Item = &'a Timing>) -> f64 {
    timings
        .into_iter()
        .map(|t| t.setup)
        .min_by(f64::total_cmp)
        .unwrap_or(0.0)
        .max(0.0)
}

/// The checkpoint bytes that executing `steps` of `plan` reads.
pub fn restored_bytes(plan: &Plan, steps: &[(i64, Action)], sizes: &HashMap<Key, u64>) -> u64 {
    let mut bytes = 0;
    for step in plan.steps.iter() {
        if !steps.iter().any(|&(i, _)| i == step.iteration) {
            continue;
        }
        if let Some(key) = step.restore {
            bytes += sizes.get(&key).copied().unwrap_or(0);
        }
        if step.action == Action::Own {
            bytes += sizes
                .iter()
                .filter(|(k, _)| k.iteration == step.iteration && k.point == Point::Nested)
                .map(|(_, b)| b)
                .sum::<u64>();
        }
    }
    bytes
        + plan
            .exit_restore
            .and_then(|k| sizes.get(&k))
            .copied()
            .unwrap_or(0)
}

/// The wall time of `tasks` (seconds each) on `workers` parallel workers, longest
/// first, each to the worker free soonest (the pool's own order).
pub fn makespan(tasks: &[f64], workers: usize) -> f64 {
    let mut sorted = tasks.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let mut free = vec![0.0_f64; workers.max(1)];
    for t in sorted {
        if let Some(slot) = free.iter_mut().min_by(|a, b| a.total_cmp(b)) {
            *slot += t;
        }
    }
    free.into_iter().fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Segment;

    fn line(name: &str, secs: f64, epoch: Option<i64>) -> ParsedLine {
        ParsedLine {
            ctx: epoch.map(|e| {
                vec![Segment {
                    name: "epoch".into(),
                    iteration: Some(e),
                    value: None,
                }]
            }),
            name: name.into(),
            value: Value::Float(secs),
            kind: Kind::Time,
            arg: false,
            projid: None,
            tstamp: None,
            filename: None,
        }
    }

    #[test]
    fn own_iterations_cost_only_their_own_code() {
        let t = Timing::from_records(&[
            line("time::setup", 2.0, None),
            line("time::loop", 3.0, Some(0)),
            line("time::loop", 3.0, Some(1)),
            line("time::iter", 3.5, None),
            line("time::loop", 7.0, None),
            line("time::teardown", 0.5, None),
        ]);
        assert_eq!(t.nested.len(), 2);
        let own = t.task_secs(&[(0, Action::Own), (1, Action::Own)], 0);
        assert!((own - (2.0 + 0.5 + 0.5 + 0.5)).abs() < 1e-9, "{own}");
        let full = t.task_secs(&[(1, Action::Full)], 2_000_000_000);
        assert!((full - (2.0 + 3.5 + 0.5 + 2.0)).abs() < 1e-9, "{full}");
    }

    #[test]
    fn forked_tasks_leave_the_shared_setup_to_the_server() {
        let run = |setup: f64| {
            Timing::from_records(&[
                line("time::boot", 3.0, None),
                line("time::setup", setup, None),
                line("time::iter", 2.0, None),
                line("time::teardown", 0.5, None),
            ])
        };
        let (a, b) = (run(4.0), run(5.0));
        let shared = shared_setup([&a, &b]);
        assert_eq!(shared, 4.0);
        let steps = [(0, Action::Full), (1, Action::Full)];
        // a: 4.0 of setup done by the server; b: its extra 1.0 is its own work.
        let fa = a.forked_task_secs(&steps, 0, shared);
        let fb = b.forked_task_secs(&steps, 0, shared);
        assert!((fa - (4.0 + 0.5 + FORKED_TASK_SECS)).abs() < 1e-9, "{fa}");
        assert!(
            (fb - (1.0 + 4.0 + 0.5 + FORKED_TASK_SECS)).abs() < 1e-9,
            "{fb}"
        );
        // One run alone: a fresh process (boot + setup) and then its work, as before.
        assert!(
            (a.forked_task_secs(&steps, 0, shared_setup([&a])) + 4.0
                - a.task_secs(&steps, 0)
                - FORKED_TASK_SECS)
                .abs()
                < 1e-9
        );
        assert_eq!(shared_setup(std::iter::empty::<&Timing>()), 0.0);
    }

    #[test]
    fn makespan_packs_longest_first() {
        assert_eq!(makespan(&[3.0, 3.0, 2.0, 2.0, 2.0], 2), 7.0);
        assert_eq!(makespan(&[2.0, 3.0, 2.0, 3.0], 2), 5.0);
        assert_eq!(makespan(&[5.0, 1.0], 4), 5.0);
        assert_eq!(makespan(&[], 2), 0.0);
    }
}
