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
/// What a task forked from the replay worker server costs beyond the work the recorded
/// timings predict (the fork, `import flordb`, finding the run, the script's set-up
/// without its imports, the exit), until the project's own replays have measured it
/// ([`super::calibration`]). Measured on bench/hindsight.py's project, 2 cores: 0.1-0.3 s.
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

    /// Seconds of outer iteration `i` outside its nested loops: the mean iteration less
    /// the mean of its nested loops. Only the mean iteration is recorded, so subtracting
    /// iteration `i`'s own nested time would count every iteration whose nested loops ran
    /// faster than the mean (load, a shorter last batch) as seconds of its own code.
    fn own_code(&self, i: i64) -> f64 {
        if !self.nested.contains_key(&i) {
            return self.iteration;
        }
        let mean = self.nested.values().sum::<f64>() / self.nested.len() as f64;
        (self.iteration - mean).max(0.0)
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

    /// [`Timing::task_secs`] for a task forked from the worker server: the server has
    /// imported what the script imports, and what those modules import lazily on first
    /// use (torch's optimizers import torch._dynamo: seconds of a torch script's setup),
    /// so the task's setup is taken to cost only `overhead` (with the fork and exit);
    /// [`Timing::start_secs`] is paid once.
    pub fn forked_task_secs(&self, steps: &[(i64, Action)], restored: u64, overhead: f64) -> f64 {
        self.task_secs(steps, restored) - self.setup + overhead
    }

    /// A fresh process from its start to the first outer loop: what the worker server
    /// costs to start.
    pub fn start_secs(&self) -> f64 {
        self.boot_secs() + self.setup
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
    fn own_code_is_the_mean_iteration_less_the_mean_nested_loop() {
        // Nested loops of 1 s and 5 s (a busy machine) in iterations of 3.5 s on average:
        // each iteration's own code is 0.5 s, not 2.5 s for the faster one.
        let t = Timing::from_records(&[
            line("time::loop", 1.0, Some(0)),
            line("time::loop", 5.0, Some(1)),
            line("time::iter", 3.5, None),
        ]);
        let own = t.task_secs(&[(0, Action::Own), (1, Action::Own)], 0);
        assert!((own - 1.0).abs() < 1e-9, "{own}");
    }

    #[test]
    fn forked_tasks_leave_start_and_setup_to_the_server() {
        let t = Timing::from_records(&[
            line("time::boot", 3.0, None),
            line("time::setup", 4.0, None),
            line("time::iter", 2.0, None),
            line("time::teardown", 0.5, None),
        ]);
        let steps = [(0, Action::Full), (1, Action::Full)];
        let forked = t.forked_task_secs(&steps, 0, FORKED_TASK_SECS);
        assert!(
            (forked - (4.0 + 0.5 + FORKED_TASK_SECS)).abs() < 1e-9,
            "{forked}"
        );
        assert_eq!(t.start_secs(), 7.0);
        // One run in one task: the server's start and the task make the whole run.
        let whole = t.start_secs() + forked - FORKED_TASK_SECS;
        assert!(
            (whole - (3.0 + t.task_secs(&steps, 0))).abs() < 1e-9,
            "{whole}"
        );
    }

    #[test]
    fn makespan_packs_longest_first() {
        assert_eq!(makespan(&[3.0, 3.0, 2.0, 2.0, 2.0], 2), 7.0);
        assert_eq!(makespan(&[2.0, 3.0, 2.0, 3.0], 2), 5.0);
        assert_eq!(makespan(&[5.0, 1.0], 4), 5.0);
        assert_eq!(makespan(&[], 2), 0.0);
    }
}
