//! `flor replay`: answer today's new log statements for past runs. Select runs, carry
//! the statements into each run's version, plan from checkpoints and recorded timings,
//! show the plan and its estimate, then run every task on one pool of workers, each
//! version in its own worktree, and merge the values into the store.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use flor_core::analyze::Outcome;
use flor_core::git::{Repo, Worktree};
use flor_core::pivot;
use flor_core::record::{LineHeader, Value};
use flor_core::replay::campaign::{self, short, Campaign, RunReplay};
use flor_core::replay::pool::{self, Direct, Event, Job, JobResult, Launcher, Zygote};
use flor_core::replay::{calibration, merge_parts, ranges, report_path, Action, Verification};
use flor_core::store::Store;

use crate::output;

/// Replay past runs to fill in values of log statements added to today's script.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// Log names (or @LINE of today's script) to replay; `a,b` lists several. flordb's
    /// spelling `replay VARS WHERE` works too: a last argument that is not a name is
    /// the where-clause.
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    /// The names as flordb 4 spells them: `--apply a,b`.
    #[arg(long, value_name = "NAMES", conflicts_with = "names")]
    pub apply: Option<String>,
    /// Replay only runs with a row of the pivoted table where this SQL condition holds
    /// (e.g. "lr < 0.01", "acc IS NULL").
    #[arg(long = "where", value_name = "SQL")]
    pub where_clause: Option<String>,
    /// Replay only this run (id, tstamp or --flor name); repeatable.
    #[arg(long = "run", value_name = "ID")]
    pub runs: Vec<String>,
    /// Today's script, holding the statements (default: the newest run's script).
    #[arg(long, value_name = "PATH")]
    pub script: Option<PathBuf>,
    /// Worker processes shared by all runs' tasks.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: u16,
    /// Which iterations of a loop to answer: all, last, none or a list like 0,2,5 (default all).
    #[arg(long = "iter", value_name = "LOOP=SPEC")]
    pub iters: Vec<String>,
    /// Give the replay an arg the recorded runs did not read (KEY=VALUE); repeatable.
    #[arg(long = "override", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Show the plan and its estimate, run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// The Python interpreter for the replays (default: the one flordb is installed in,
    /// else the one the newest run used, else python3).
    #[arg(long, value_name = "PATH")]
    pub python: Option<String>,
    /// Start a fresh interpreter per task instead of forking workers that imported the
    /// scripts' modules once.
    #[arg(long)]
    pub no_preload: bool,
}

pub fn run(start: &Path, args: &ReplayArgs) -> Result<i32> {
    let begun = Instant::now();
    let store = Store::discover(start).context("cannot open the FlorDB store")?;
    let root = store.layout().root().to_path_buf();
    let repo = Repo::discover(&root)
        .filter(|r| r.root() == root)
        .context("replay needs the git repository the runs were recorded in")?;
    let (selectors, where_clause) = selectors(args)?;
    let req = campaign::Request {
        selectors,
        script: args
            .script
            .as_ref()
            .map(|s| script_path(&root, s))
            .transpose()?,
        where_sql: where_clause,
        runs: args.runs.clone(),
        iters: pairs(&args.iters, "--iter", "epoch=0,2")?,
        overrides: pairs(&args.overrides, "--override", "device=cpu")?,
        workers: usize::from(args.workers),
    };
    // The worker server imports torch and the like for seconds: it starts now, while
    // the plan is made, when the interpreter is known without the plan.
    let early = (!args.dry_run && !args.no_preload)
        .then(|| chosen_interpreter(args))
        .flatten()
        .zip(campaign::today_script(&store, &req).ok())
        .map(|(python, script)| start_server(python, root.join(script)));
    let mut c = campaign::prepare(&store, &repo, &req)?;
    let plan_secs = begun.elapsed().as_secs_f64();
    // Replay would wait for the server anyway; waiting before the plan is shown makes
    // the estimate exact about it.
    let waiting = Instant::now();
    let ready = early.map(join_server);
    let early_wait = waiting.elapsed().as_secs_f64();
    c.server_ready = matches!(ready, Some(Ok(_)));
    let mut out = std::io::stdout().lock();
    print_plan(&c, &mut out)?;
    out.flush()?;
    let tasks = c.tasks().count();
    if tasks == 0 {
        eprintln!("flor replay: nothing to replay");
        return Ok(1);
    }
    if args.dry_run {
        return Ok(0);
    }
    if !args.yes && std::io::stdin().is_terminal() && !confirm(&c)? {
        eprintln!("flor replay: not started");
        return Ok(1);
    }
    let started = Instant::now();
    let done = execute(&store, &repo, &c, args, ready)?;
    let elapsed = started.elapsed().as_secs_f64();
    let merging = Instant::now();
    let report = merge(&c, &done.jobs, &done.results)?;
    let merge_secs = merging.elapsed().as_secs_f64();
    let interrupted = done.results.iter().any(JobResult::interrupted);
    if done.forked && !interrupted {
        // The next estimate of this project learns this one's per-task error.
        let measured: Vec<(f64, f64)> = done
            .jobs
            .iter()
            .zip(&done.results)
            .filter(|(_, r)| r.ok())
            .map(|(j, r)| (j.job.estimate, r.secs))
            .collect();
        calibration::learn(&store.layout().flor_dir(), c.task_overhead, &measured);
    }
    let phases = timings(&c, &done, [plan_secs, early_wait, merge_secs, elapsed]);
    let cleanup = Instant::now();
    drop(done); // removes the worktrees
    if let Some(mut phases) = phases {
        phases["cleanup"] = cleanup.elapsed().as_secs_f64().into();
        phases["total"] = begun.elapsed().as_secs_f64().into();
        eprintln!("flor replay: timings {phases}");
    }
    for line in &report.checks {
        eprintln!("flor replay: {line}");
    }
    for line in &report.failures {
        eprintln!("{line}");
    }
    println!(
        "replayed {} of {} run(s) in {}; estimated {}; re-training them took {} ({})",
        report.replayed.len(),
        c.runs.len() + c.skipped.len(),
        // The wait for the server before the plan was shown is part of the replay.
        output::duration(early_wait + elapsed),
        output::duration(early_wait + c.estimate_secs()),
        output::duration(c.retrain_secs()),
        ratio(c.retrain_secs() / (early_wait + elapsed).max(1e-9)),
    );
    show_values(&store, &c, &report.replayed, &mut out)?;
    Ok(if interrupted {
        130
    } else if report.failures.is_empty() && c.skipped.is_empty() && all_placed(&c) {
        0
    } else {
        1
    })
}

/// The statements asked for and the where-clause, from the positional arguments
/// (names, `a,b` lists, flordb's trailing WHERE), `--apply` and `--where`.
fn selectors(args: &ReplayArgs) -> Result<(Vec<String>, Option<String>)> {
    let is_selector = |t: &str| {
        let t = t.strip_prefix('@').unwrap_or(t);
        !t.is_empty()
            && t.chars()
                .all(|c| c.is_alphanumeric() || "_:.-/".contains(c))
    };
    let mut names = Vec::new();
    let mut where_clause = args.where_clause.clone();
    let given: Vec<&str> = match &args.apply {
        Some(list) => vec![list.as_str()],
        None => args.names.iter().map(String::as_str).collect(),
    };
    for (i, token) in given.iter().enumerate() {
        let parts: Vec<&str> = token
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        if !parts.is_empty() && parts.iter().all(|p| is_selector(p)) {
            names.extend(parts.iter().map(|p| p.to_string()));
        } else if i + 1 == given.len() && i > 0 && args.apply.is_none() {
            if where_clause.is_some() {
                bail!("two where-clauses: {token:?} and --where; pass one");
            }
            where_clause = Some(token.to_string());
        } else {
            bail!("{token:?} is not a log name or @LINE (flor replay NAME... [--where SQL])");
        }
    }
    if names.is_empty() {
        bail!("nothing to apply: name the flor.log statements to replay (flor replay NAME ...)");
    }
    Ok((names, where_clause))
}

/// How many times faster: `0.4x`, `3.2x`, `57x`.
fn ratio(x: f64) -> String {
    if x < 10.0 {
        format!("{x:.1}x")
    } else {
        format!("{x:.0}x")
    }
}

/// `--script` as the store knows scripts: relative to the project root.
fn script_path(root: &Path, script: &Path) -> Result<String> {
    let abs = std::path::absolute(script).context("cannot read the current directory")?;
    let canon_root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let canon = abs.canonicalize().unwrap_or(abs.clone());
    let rel = canon
        .strip_prefix(&canon_root)
        .or_else(|_| abs.strip_prefix(root))
        .with_context(|| {
            format!(
                "--script {}: not inside the project {}",
                script.display(),
                root.display()
            )
        })?;
    Ok(rel.to_string_lossy().into_owned())
}

fn pairs(items: &[String], flag: &str, example: &str) -> Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("{flag} {item:?}: expected NAME=VALUE (e.g. {flag} {example})"),
        })
        .collect()
}

fn all_placed(c: &Campaign) -> bool {
    c.runs.iter().all(|r| {
        r.outcomes
            .iter()
            .all(|o| !matches!(o, Outcome::CannotPlace { .. }))
    })
}

fn print_plan(c: &Campaign, out: &mut impl Write) -> Result<()> {
    let stmts: Vec<String> = c
        .statements
        .iter()
        .map(|s| format!("{} (line {})", s.name, s.line))
        .collect();
    writeln!(out, "replay {} of {}", stmts.join(", "), c.file)?;
    if let Some((name, spec)) = c
        .iters
        .iter()
        .find(|(_, spec)| spec.split(',').any(|p| p.trim().parse::<i64>().is_ok()))
    {
        let first = spec
            .split(',')
            .find_map(|p| p.trim().parse::<i64>().ok())
            .unwrap_or(0);
        writeln!(
            out,
            "  (--iter counts a loop's iterations from 0: {name}={first} is its pass number {}, whatever the script prints)",
            first + 1
        )?;
    }
    if let Some(note) = &c.source_note {
        writeln!(out, "  ({note})")?;
    }
    if c.other_scripts > 0 {
        writeln!(
            out,
            "  ({} run(s) of other scripts left alone; --script picks another)",
            c.other_scripts
        )?;
    }
    for r in &c.runs {
        writeln!(
            out,
            "run {}  {}  version {}",
            r.target.run_id,
            r.target.tstamp,
            short(&r.version)
        )?;
        for o in &r.outcomes {
            writeln!(out, "  {o}")?;
        }
        writeln!(out, "  {}", describe_work(r))?;
        for line in describe_trust(r) {
            writeln!(out, "  {line}")?;
        }
        if r.tasks.len() > 1 {
            let name = r.outer.as_ref().map_or("iteration", |o| o.name.as_str());
            let parts: Vec<String> = r
                .tasks
                .iter()
                .map(|t| {
                    let iters = t.iterations.as_deref().map(ranges).unwrap_or_default();
                    let from = match t.start {
                        Some(-1) => "from the loop's start".to_string(),
                        Some(it) => format!("from the end of {name} {it}"),
                        None => "recomputed from the start".to_string(),
                    };
                    format!("{name} {iters} {from}")
                })
                .collect();
            writeln!(out, "  tasks: {}", parts.join("; "))?;
        }
        let secs: f64 = r.tasks.iter().map(|t| t.secs).sum();
        writeln!(
            out,
            "  {} task(s), about {} (training took {})",
            r.tasks.len(),
            output::duration(secs),
            output::duration(r.target.timing.retrain_secs())
        )?;
    }
    for (run, why) in &c.skipped {
        writeln!(out, "run {run}: skipped: {why}")?;
    }
    writeln!(
        out,
        "total: {} run(s), {} task(s) on {} worker(s), estimated {} (re-training: {})",
        c.runs.len(),
        c.tasks().count(),
        c.workers,
        output::duration(c.estimate_secs()),
        output::duration(c.retrain_secs())
    )?;
    Ok(())
}

/// One line on what a run's replay executes.
fn describe_work(r: &RunReplay) -> String {
    let Some(o) = &r.outer else {
        return "after the loop: the loop is skipped to its recorded end state".into();
    };
    let level = if r.level >= 2 {
        format!("in a loop nested in {}", o.name)
    } else {
        format!("in loop {}", o.name)
    };
    let count = |a: Action| o.plan.steps.iter().filter(|s| s.action == a).count();
    let restores = o.plan.steps.iter().filter(|s| s.restore.is_some()).count();
    let mut parts = vec![format!(
        "{level}: {} of {} iteration(s) asked",
        o.want.len(),
        o.iterations
    )];
    // An iteration with no nested loop to skip runs all its code.
    let has_nested = |it: i64| {
        r.checkpoints
            .iter()
            .any(|m| m.iteration == it && m.point == flor_core::ckpt::Point::Nested)
    };
    let skipping = o
        .plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Own && has_nested(s.iteration))
        .count();
    if skipping > 0 {
        parts.push(format!("{skipping} without their nested loops"));
    }
    if count(Action::Own) > skipping {
        parts.push(format!(
            "{} run (no nested loop)",
            count(Action::Own) - skipping
        ));
    }
    if count(Action::Full) > 0 {
        parts.push(format!("{} run in full", count(Action::Full)));
    }
    if count(Action::Silent) > 0 {
        parts.push(format!(
            "{} recomputed to rebuild state",
            count(Action::Silent)
        ));
    }
    parts.push(if r.checkpoints.is_empty() {
        "no checkpoints: recomputed from the start".into()
    } else {
        let mut from: Vec<String> = o
            .plan
            .steps
            .iter()
            .filter_map(|s| {
                let key = s.restore?;
                let at = if key.iteration < 0 {
                    "the loop's start".to_string()
                } else {
                    format!("the end of {} {}", o.name, key.iteration)
                };
                Some(format!("{} {} from {at}", o.name, s.iteration))
            })
            .collect();
        if from.len() > 3 {
            from.truncate(3);
            from.push("...".into());
        }
        format!(
            "{restores} restore(s) from {} checkpoint(s) ({})",
            r.checkpoints.len(),
            from.join(", ")
        )
    });
    parts.join(", ")
}

/// What the plan's exactness rests on: the carried state restored with the checkpoints,
/// checkpoints that cannot start an iteration, and the recorded values it re-checks.
fn describe_trust(r: &RunReplay) -> Vec<String> {
    let mut lines = Vec::new();
    if !r.as_of.left_out.is_empty() {
        lines.push(format!(
            "left out of its checkout, written after the run started: {}",
            shorten(&r.as_of.left_out, 4)
        ));
    }
    let Some(o) = &r.outer else {
        return lines;
    };
    if !o.carried.is_empty() && !r.checkpoints.is_empty() {
        lines.push(format!(
            "state carried from one {} to the next, saved with each checkpoint: {}",
            o.name,
            o.carried.join(", ")
        ));
    }
    if let Some((it, why)) = o.plan.set_aside.first() {
        lines.push(format!(
            "{} checkpoint(s) cannot start an iteration ({} {it}: {why}): those iterations start from earlier state",
            o.plan.set_aside.len(),
            o.name
        ));
    }
    if !r.checked.is_empty() {
        lines.push(format!(
            "checked against the recorded values of {} as they run again",
            r.checked.join(", ")
        ));
    } else if !o.want.is_empty() {
        lines.push(
            "no recorded statement runs again in this plan: exactness rests on the checkpoints and the analysis of what the loop carries"
                .into(),
        );
    }
    lines
}

/// The first `n` items joined, with a count of the rest.
fn shorten(items: &[String], n: usize) -> String {
    let mut shown = items[..items.len().min(n)].join(", ");
    if items.len() > n {
        shown.push_str(&format!(" and {} more", items.len() - n));
    }
    shown
}

fn confirm(c: &Campaign) -> Result<bool> {
    eprint!(
        "Replay {} run(s), estimated {}? [y/N] ",
        c.runs.len(),
        output::duration(c.estimate_secs())
    );
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// One task of a run, as a process to start, and the file it writes.
struct TaskJob {
    run: usize,
    task: usize,
    job: Job,
    part: PathBuf,
}

/// What [`execute`] did; the worktrees are removed when it is dropped.
struct Executed {
    results: Vec<JobResult>,
    jobs: Vec<TaskJob>,
    _worktrees: Vec<Worktree>,
    /// Seconds spent making worktrees, waiting for the worker server once they were
    /// made, and running the tasks.
    phases: [f64; 3],
    /// Whether the tasks were forked from the worker server.
    forked: bool,
}

/// With `FLOR_REPLAY_TIMINGS` set: where a replay's time went, and each task's estimate
/// against its actual seconds (for the benchmarks and for calibrating the estimates).
/// `secs`: the plan, the wait for the server after it, the merge, the replay itself.
fn timings(c: &Campaign, done: &Executed, secs: [f64; 4]) -> Option<serde_json::Value> {
    let [plan, early_wait, merge, replay] = secs;
    std::env::var_os("FLOR_REPLAY_TIMINGS").filter(|v| !v.is_empty())?;
    let [worktrees, server, tasks] = done.phases;
    let per_task: Vec<serde_json::Value> = done
        .jobs
        .iter()
        .zip(&done.results)
        .map(|(j, r)| serde_json::json!([j.run, j.task, j.job.estimate, r.secs]))
        .collect();
    Some(serde_json::json!({
        "plan": plan, "worktrees": worktrees, "server_wait": server, "tasks": tasks,
        "merge": merge, "replay": replay, "estimate": c.estimate_secs(),
        "boot_estimate": c.boot_secs(), "server_wait_before_plan": early_wait,
        "retrain_estimate": c.retrain_secs(), "workers": c.workers,
        "task_estimate_vs_actual": per_task,
    }))
}

/// The worktrees (one per version), the jobs (one per task) and running them.
fn execute(
    store: &Store,
    repo: &Repo,
    c: &Campaign,
    args: &ReplayArgs,
    ready: Option<flor_core::Result<Zygote>>,
) -> Result<Executed> {
    let root = store.layout().root().to_path_buf();
    let python = interpreter(args, c);
    // The workers import the scripts' modules (today's imports stand for every
    // version's) while the worktrees are made, if they did not start with the plan.
    let late = (ready.is_none() && !args.no_preload)
        .then(|| start_server(python.clone(), root.join(&c.script)));
    let making = Instant::now();
    repo.remove_stale_worktrees();
    // One worktree per version and view of the ignored files (runs that started at
    // different times may have seen different files).
    let mut trees: Vec<Worktree> = Vec::new();
    let mut tree_of: Vec<Option<usize>> = vec![None; c.runs.len()];
    let mut groups: BTreeMap<(&str, &[String]), usize> = BTreeMap::new();
    for (ri, r) in c.runs.iter().enumerate() {
        if r.tasks.is_empty() {
            continue;
        }
        let key = (r.version.as_str(), r.as_of.left_out.as_slice());
        if let Some(&i) = groups.get(&key) {
            tree_of[ri] = Some(i);
            continue;
        }
        let label = format!("{}-{}", short(&r.version), trees.len());
        let wt = repo
            .add_worktree(&r.version, &label)
            .with_context(|| format!("cannot check out version {}", short(&r.version)))?;
        let edited = wt.path().join(&c.file);
        std::fs::write(&edited, &r.source)
            .with_context(|| format!("cannot write {}", edited.display()))?;
        r.as_of.apply(repo.root(), wt.path());
        trees.push(wt);
        groups.insert(key, trees.len() - 1);
        tree_of[ri] = Some(trees.len() - 1);
    }
    let logs = store.layout().flor_dir().join("tmp").join("replay-logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let mut jobs = Vec::new();
    for (ri, r) in c.runs.iter().enumerate() {
        let Some(wt) = tree_of[ri].map(|i| &trees[i]) else {
            continue;
        };
        let argv0 = r
            .target
            .argv
            .first()
            .cloned()
            .unwrap_or_else(|| c.script.clone());
        let dir = r.start_dir(&c.script);
        let script_arg = if Path::new(&argv0).is_relative()
            && dir.is_relative()
            && dir.join(&argv0) == Path::new(&c.script)
        {
            argv0.clone()
        } else {
            wt.path().join(&c.script).to_string_lossy().into_owned()
        };
        for (ti, t) in r.tasks.iter().enumerate() {
            // Named after this process: two replays of one request at once each write
            // their own parts, and each merge is whole.
            let part = r.output.with_file_name(format!(
                "{}.{}.part{ti}",
                r.output
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default(),
                std::process::id()
            ));
            let mut argv = vec![script_arg.clone()];
            argv.extend(r.target.argv.iter().skip(1).cloned());
            argv.extend([
                "--replay_flor".into(),
                "--apply".into(),
                t.apply.join(","),
                "--replay_run".into(),
                r.target.run_id.clone(),
                "--replay_output".into(),
                part.to_string_lossy().into_owned(),
            ]);
            let outer = r.outer.as_ref().map(|o| o.name.as_str());
            if let (Some(name), Some(iters)) = (outer, &t.iterations) {
                let list: Vec<String> = iters.iter().map(i64::to_string).collect();
                let spec = if list.is_empty() {
                    "none".into()
                } else {
                    list.join(",")
                };
                argv.extend(["--iter".into(), format!("{name}={spec}")]);
            }
            for item in &args.iters {
                if outer.is_none_or(|o| !item.starts_with(&format!("{o}="))) {
                    argv.extend(["--iter".into(), item.clone()]);
                }
            }
            for item in &args.overrides {
                argv.extend(["--override".into(), item.clone()]);
            }
            let job = Job {
                id: jobs.len(),
                cwd: wt.path().join(&dir),
                argv,
                env: vec![("FLORDB_PROJECT".into(), root.to_string_lossy().into_owned())],
                log: logs.join(format!("{}-{ti}.log", r.target.run_id)),
                estimate: t.secs,
            };
            jobs.push(TaskJob {
                run: ri,
                task: ti,
                job,
                part,
            });
        }
    }
    let only_jobs: Vec<Job> = jobs.iter().map(|t| t.job.clone()).collect();
    let worktrees_secs = making.elapsed().as_secs_f64();
    let waiting = Instant::now();
    let started = ready.or_else(|| late.map(join_server));
    let forked = matches!(started, Some(Ok(_)));
    let launcher: Box<dyn Launcher> = match started {
        None => Box::new(Direct { python }),
        Some(Ok(z)) => Box::new(z),
        Some(Err(e)) => {
            eprintln!("flor replay: {e}; starting a fresh interpreter per task");
            Box::new(Direct { python })
        }
    };
    let server_secs = waiting.elapsed().as_secs_f64();
    let running = Instant::now();
    let results = run_with_progress(c, &only_jobs, launcher.as_ref());
    drop(launcher);
    Ok(Executed {
        results,
        jobs,
        _worktrees: trees,
        phases: [worktrees_secs, server_secs, running.elapsed().as_secs_f64()],
        forked,
    })
}

type ServerStart = std::thread::JoinHandle<flor_core::Result<Zygote>>;

/// Starts the worker server in the background, preloading `today`'s imports.
fn start_server(python: String, today: PathBuf) -> ServerStart {
    std::thread::spawn(move || Zygote::start(&python, &[today]))
}

/// Waits until the worker server is up (or failed to start).
fn join_server(server: ServerStart) -> flor_core::Result<Zygote> {
    server.join().unwrap_or_else(|_| {
        Err(flor_core::Error::Replay(
            "the worker server thread failed".into(),
        ))
    })
}

/// The interpreter named by `--python` or by the Python package (`FLORDB_PYTHON`).
fn chosen_interpreter(args: &ReplayArgs) -> Option<String> {
    args.python.clone().or_else(|| {
        std::env::var("FLORDB_PYTHON")
            .ok()
            .filter(|p| !p.is_empty())
    })
}

/// The interpreter: `--python`, the one the Python package runs in, the one the newest
/// selected run used, or `python3`.
fn interpreter(args: &ReplayArgs, c: &Campaign) -> String {
    chosen_interpreter(args)
        .or_else(|| {
            c.runs
                .iter()
                .rev()
                .filter_map(|r| r.target.python.clone())
                .find(|p| Path::new(p).exists())
        })
        .unwrap_or_else(|| "python3".into())
}

/// Runs the jobs with a progress bar on a terminal (tasks done, running, ETA from the
/// estimates), or one line per finished task otherwise.
fn run_with_progress(c: &Campaign, jobs: &[Job], launcher: &dyn Launcher) -> Vec<JobResult> {
    let total: f64 = jobs.iter().map(|j| j.estimate.max(0.01)).sum();
    let bar = ProgressBar::new((total * 1000.0) as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {msg} ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let terminal = !bar.is_hidden();
    bar.enable_steady_tick(Duration::from_millis(200));
    struct State {
        done: usize,
        done_est: f64,
        running: Vec<(usize, Instant)>,
    }
    let state = Mutex::new(State {
        done: 0,
        done_est: 0.0,
        running: Vec::new(),
    });
    let describe = |job: &Job| {
        let run = c
            .runs
            .iter()
            .find(|r| job.argv.iter().any(|a| a == &r.target.run_id))
            .map_or("?", |r| r.target.run_id.as_str());
        let iters = job
            .argv
            .windows(2)
            .rev()
            .find(|w| w[0] == "--iter")
            .map(|w| format!(" {}", w[1]))
            .unwrap_or_default();
        format!("{run}{iters}")
    };
    let refresh = |s: &State| {
        let now = Instant::now();
        let running: f64 = s
            .running
            .iter()
            .map(|(i, t)| now.duration_since(*t).as_secs_f64().min(jobs[*i].estimate))
            .sum();
        bar.set_position(((s.done_est + running) * 1000.0) as u64);
        bar.set_message(format!(
            "{}/{} task(s) done, {} running",
            s.done,
            jobs.len(),
            s.running.len()
        ));
    };
    let results = pool::execute(jobs, c.workers, launcher, &|event| {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Started(job) => s.running.push((job.id, Instant::now())),
            Event::Finished(job, result) => {
                s.running.retain(|(i, _)| *i != job.id);
                s.done += 1;
                s.done_est += job.estimate.max(0.01);
                let status = if result.ok() {
                    "done".to_string()
                } else {
                    failure_word(result)
                };
                let line = format!(
                    "task {}/{} {}: {status} in {}",
                    s.done,
                    jobs.len(),
                    describe(job),
                    output::duration(result.secs)
                );
                if terminal {
                    bar.println(line);
                } else {
                    eprintln!("flor replay: {line}");
                }
            }
        }
        refresh(&s);
    });
    bar.finish_and_clear();
    results
}

fn failure_word(result: &JobResult) -> String {
    match result.code {
        Some(130) | Some(-2) => "interrupted".into(),
        Some(c) if c < 0 => format!("killed by signal {}", -c),
        Some(c) => format!("failed (exit {c})"),
        None => format!("not run ({})", result.error.as_deref().unwrap_or("?")),
    }
}

struct Report {
    replayed: Vec<String>,
    failures: Vec<String>,
    /// How each replayed run was replayed, and what its check found.
    checks: Vec<String>,
}

/// Merges each run whose tasks all succeeded into its replay file; for a run with a
/// failed task, removes its tasks' files and reports the error with its output's tail.
fn merge(c: &Campaign, jobs: &[TaskJob], results: &[JobResult]) -> Result<Report> {
    let mut report = Report {
        replayed: Vec::new(),
        failures: Vec::new(),
        checks: Vec::new(),
    };
    for (ri, r) in c.runs.iter().enumerate() {
        let mine: Vec<usize> = (0..jobs.len()).filter(|&k| jobs[k].run == ri).collect();
        if mine.is_empty() {
            continue;
        }
        let parts: Vec<PathBuf> = mine.iter().map(|&k| jobs[k].part.clone()).collect();
        let failed: Vec<usize> = mine.iter().copied().filter(|&k| !results[k].ok()).collect();
        if failed.is_empty() {
            let provenance = serde_json::json!({
                "script": c.script,
                "version": r.version,
                "statements": c.statements.iter().map(|s| serde_json::json!({
                    "name": s.name, "line": s.line, "text": s.text,
                })).collect::<Vec<_>>(),
                "placed": r.outcomes.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "request": c.tag,
            });
            let header = LineHeader::new(&r.target.projid, &r.target.tstamp, &r.target.filename);
            let merged = merge_parts(&header, &parts, &r.output, provenance)?;
            let filled: usize = r
                .apply
                .iter()
                .map(|n| merged.values.get(n).copied().unwrap_or(0))
                .sum();
            let asked = r.outer.as_ref().is_none_or(|o| !o.want.is_empty());
            if filled == 0 && asked {
                let _ = std::fs::remove_file(&r.output);
                report.failures.push(format!(
                    "flor replay: run {}: the replay ran but no statement of {} logged anything: the place it was put never ran (a loop driven by another framework's callbacks, a branch not taken); nothing recorded for this run",
                    r.target.run_id,
                    r.apply.join(", ")
                ));
                continue;
            }
            report
                .checks
                .extend(describe_check(r, &merged.verification));
            report.replayed.push(r.target.run_id.clone());
            for &k in &mine {
                let _ = std::fs::remove_file(&jobs[k].job.log);
            }
            continue;
        }
        for part in &parts {
            let _ = std::fs::remove_file(part);
            let _ = std::fs::remove_file(report_path(part));
        }
        for &k in &failed {
            let (job, result) = (&jobs[k].job, &results[k]);
            if result.code.is_none()
                && result
                    .error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("not started"))
            {
                continue;
            }
            let mut msg = format!(
                "flor replay: run {} task {}: {}; nothing recorded for this run (output: {})",
                r.target.run_id,
                jobs[k].task,
                failure_word(result),
                job.log.display()
            );
            for line in tail(&job.log, 15) {
                msg.push_str("\n    ");
                msg.push_str(&line);
            }
            report.failures.push(msg);
        }
    }
    Ok(report)
}

/// What the tasks of a replayed run told about how they replayed it, then one line on
/// what its check found.
fn describe_check(r: &RunReplay, v: &Verification) -> Vec<String> {
    let loop_name = r.outer.as_ref().map_or("iteration", |o| o.name.as_str());
    let mut parts = Vec::new();
    if v.compared > 0 {
        parts.push(format!(
            "{} recorded value(s) compared, all equal",
            v.compared
        ));
    }
    if !v.verified.is_empty() {
        parts.push(format!("verified: {loop_name} {}", ranges(&v.verified)));
    }
    if !v.unchecked.is_empty() {
        parts.push(format!(
            "not re-checked (checkpoints and analysis only): {loop_name} {}",
            ranges(&v.unchecked)
        ));
    }
    for why in &v.retried {
        parts.push(format!(
            "diverged after a checkpoint restore ({why}) and was recomputed from the start"
        ));
    }
    if parts.is_empty() {
        parts.push("nothing to compare".into());
    }
    let run = &r.target.run_id;
    let mut lines: Vec<String> = v
        .notices
        .iter()
        .map(|n| format!("run {run}: {n}"))
        .collect();
    lines.push(format!("run {run}: {}", parts.join("; ")));
    lines
}

fn tail(path: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Prints the replayed values: the applied names of the replayed runs.
fn show_values(
    store: &Store,
    c: &Campaign,
    replayed: &[String],
    out: &mut impl Write,
) -> Result<()> {
    if replayed.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = c
        .statements
        .iter()
        .map(|s| s.name.as_str())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let frame = pivot::dataframe(store, &names)?;
    let Some(ids) = frame.column("run_id") else {
        return Ok(());
    };
    let source = frame.column("source");
    let keep: Vec<usize> = (0..frame.len())
        .filter(|&i| matches!(ids.data.get(i), Value::Str(s) if replayed.contains(&s)))
        .filter(|&i| source.is_none_or(|s| s.data.get(i) == Value::Str("replay".into())))
        .collect();
    output::table(&frame.take(&keep), false, out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: ReplayArgs,
    }

    fn parse(argv: &[&str]) -> Result<(Vec<String>, Option<String>)> {
        let wrap = Wrap::try_parse_from(std::iter::once("replay").chain(argv.iter().copied()))?;
        selectors(&wrap.args)
    }

    #[test]
    fn names_lists_and_flordb_spellings() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(parse(&["a", "@12"]).unwrap(), (names(&["a", "@12"]), None));
        assert_eq!(parse(&["a,b"]).unwrap(), (names(&["a", "b"]), None));
        assert_eq!(
            parse(&["--apply", "a,b"]).unwrap(),
            (names(&["a", "b"]), None)
        );
        assert_eq!(
            parse(&["a", "lr < 0.1"]).unwrap(),
            (names(&["a"]), Some("lr < 0.1".to_string()))
        );
        assert!(parse(&["a", "lr < 0.1", "--where", "x = 1"]).is_err());
        assert!(parse(&["lr < 0.1"]).is_err());
        assert!(parse(&[]).is_err());
        assert!(parse(&["--apply", "a", "b"]).is_err());
    }

    #[test]
    fn durations_and_ratios_read_well() {
        assert_eq!(ratio(0.42), "0.4x");
        assert_eq!(ratio(57.3), "57x");
        assert_eq!(output::duration(3.21), "3.2 s");
        assert_eq!(output::duration(185.0), "3 min 05 s");
    }
}
