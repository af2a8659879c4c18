//! A replay across runs and versions (`flor replay`, `flor.replay`): which runs, what
//! each run's version needs (today's statements propagated into it), which outer
//! iterations each run executes and from which checkpoint, how the work splits into
//! tasks (run x segment) for one pool of workers, and what it should cost.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::analyze::{self, Outcome, Statement};
use crate::ckpt::{self, ChunkStore, Key};
use crate::git::Repo;
use crate::pivot::{self, Column, ColumnData};
use crate::record::Value;
use crate::store::{RunInfo, Store};
use crate::{Error, Result};

use super::{find, makespan, plan, restored_bytes, Action, Plan, Request as LoopRequest, Target};

/// What the user asked for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Log names or `@LINE`s of today's script.
    pub selectors: Vec<String>,
    /// Today's script, relative to the project root; default: the newest run's script.
    pub script: Option<String>,
    /// A SQL condition over the pivoted table; a run is selected if any row holds.
    pub where_sql: Option<String>,
    /// Only these runs (ids, tstamps or names), if any are given.
    pub runs: Vec<String>,
    /// `--iter LOOP=SPEC`, as given.
    pub iters: Vec<(String, String)>,
    /// `--override KEY=VALUE`, as given.
    pub overrides: Vec<(String, String)>,
    pub workers: usize,
}

/// The whole replay, planned.
#[derive(Debug)]
pub struct Campaign {
    pub script: String,
    /// The file holding the statements, relative to the root: the script, or one of the
    /// project's own modules it imports (`helpers.py` with the training step).
    pub file: String,
    /// The selected statements of today's script.
    pub statements: Vec<Statement>,
    /// Where the statements came from when today's script does not have them.
    pub source_note: Option<String>,
    pub runs: Vec<RunReplay>,
    /// Selected runs that cannot be replayed, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Runs of other scripts, left alone.
    pub other_scripts: usize,
    pub workers: usize,
    /// Identifies the request among a run's replay files (same request, same file).
    pub tag: String,
    /// `--iter LOOP=SPEC` as asked.
    pub iters: Vec<(String, String)>,
    /// Whether the worker server is up already (it may start with the plan): the
    /// estimate then leaves its start-up out.
    pub server_ready: bool,
    /// What a forked task costs beyond its predicted work, learned from the project's
    /// previous replay ([`super::calibration`]).
    pub task_overhead: f64,
}

/// One run's part of the replay.
#[derive(Debug)]
pub struct RunReplay {
    pub target: Target,
    pub version: String,
    /// One per selected statement (a name logged at several places: one per place).
    pub outcomes: Vec<Outcome>,
    /// The run's version of the script with the statements spliced in.
    pub source: String,
    /// The names this run's replay records.
    pub apply: Vec<String>,
    /// 0: after the loops only; 1: in the outer loop; 2: in a nested loop.
    pub level: usize,
    pub outer: Option<Outer>,
    /// The run's complete checkpoints of its first outer loop, read once.
    pub checkpoints: Vec<ckpt::Manifest>,
    pub tasks: Vec<Task>,
    /// The replay file the run's results go to.
    pub output: PathBuf,
    /// Names the run recorded that the plan runs again, so the replay compares them with
    /// the record (clock-dependent ones left out).
    pub checked: Vec<String>,
    /// The user's ignored files as the run saw them when it started: its replay's
    /// checkout links those and leaves out what was written since (a `ckpt.pth` that a
    /// resume block would load).
    pub as_of: crate::git::AsOf,
}

impl RunReplay {
    /// The folder the run's replay starts in: where the run started (relative to the
    /// checkout, or absolute outside it).
    pub fn start_dir(&self, script: &str) -> PathBuf {
        match self.target.cwd.as_deref() {
            Some(cwd) => PathBuf::from(cwd),
            None => {
                let argv0 = self.target.argv.first().map_or(script, String::as_str);
                start_dir(argv0, script)
            }
        }
    }
}

/// The outer loop of a run, as the replay executes it.
#[derive(Debug)]
pub struct Outer {
    pub name: String,
    pub iterations: i64,
    /// The iterations whose values are asked for.
    pub want: Vec<i64>,
    /// What runs, from which checkpoint (all of `want` in one process).
    pub plan: Plan,
    /// Loop levels of the statements in it (1: the outer loop's own code, 2: nested).
    pub levels: BTreeSet<usize>,
    /// What it carries across iterations beyond the enrolled objects (see
    /// `analyze::CarriedVar`): the checkpoints a task starts from must hold it.
    pub carried: Vec<String>,
}

/// One process's share of a run: outer iterations (`None`: no loop statement, the loop
/// is skipped to its end state) and the names it records.
#[derive(Debug, Clone)]
pub struct Task {
    pub iterations: Option<Vec<i64>>,
    pub apply: Vec<String>,
    /// Estimated seconds, forked from the worker server: process start and setup
    /// (which the server does once, [`Campaign::boot_secs`]) excluded.
    pub secs: f64,
    /// The outer iteration whose end checkpoint the task starts from (-1: the loop's
    /// entry); `None`: it recomputes from the start without one.
    pub start: Option<i64>,
}

impl Campaign {
    /// Seconds to start the worker server (paid once by a pool of forked workers): a
    /// process start and the setup, the slowest run's.
    pub fn boot_secs(&self) -> f64 {
        self.runs
            .iter()
            .map(|r| r.target.timing.start_secs())
            .fold(0.0, f64::max)
    }

    pub fn tasks(&self) -> impl Iterator<Item = (usize, &Task)> {
        self.runs
            .iter()
            .enumerate()
            .flat_map(|(i, r)| r.tasks.iter().map(move |t| (i, t)))
    }

    /// Estimated wall time from now: the start-up unless the server is up, then the
    /// tasks on the pool.
    pub fn estimate_secs(&self) -> f64 {
        let secs: Vec<f64> = self.tasks().map(|(_, t)| t.secs).collect();
        if secs.is_empty() {
            return 0.0;
        }
        let boot = if self.server_ready {
            0.0
        } else {
            self.boot_secs()
        };
        boot + makespan(&secs, self.workers)
    }

    /// What re-running the selected trainings would take, from their recorded times.
    pub fn retrain_secs(&self) -> f64 {
        self.runs
            .iter()
            .map(|r| r.target.timing.retrain_secs())
            .sum()
    }
}

/// The script whose statements are replayed: `--script`, else the newest run's.
pub fn today_script(store: &Store, req: &Request) -> Result<String> {
    match &req.script {
        Some(s) => Ok(s.clone()),
        None => newest_script(&store.runs()?),
    }
}

fn newest_script(runs: &[RunInfo]) -> Result<String> {
    runs.iter()
        .rev()
        .find_map(|r| r.script.clone())
        .ok_or_else(|| Error::Replay("no recorded run to replay in this project".into()))
}

/// Plans a replay of `req` over the project in `store`, with today's script read from
/// the working tree of `repo`.
pub fn prepare(store: &Store, repo: &Repo, req: &Request) -> Result<Campaign> {
    let all = store.runs()?;
    let script = match &req.script {
        Some(s) => s.clone(),
        None => newest_script(&all)?,
    };
    let today_path = repo.root().join(&script);
    let script_src = std::fs::read_to_string(&today_path).map_err(|e| Error::io(&today_path, e))?;
    // Output channels (`io::stdout`) are no statements: the run's own code prints them.
    let (channels, selectors): (Vec<&str>, Vec<&str>) = req
        .selectors
        .iter()
        .map(String::as_str)
        .partition(|s| s.starts_with("io::"));
    if selectors.is_empty() && channels.is_empty() {
        return Err(Error::Replay(
            "nothing to apply: name the flor.log statements to replay (flor replay NAME ...)"
                .into(),
        ));
    }
    let mut file = script.clone();
    let found = if selectors.is_empty() {
        Ok(Vec::new())
    } else {
        analyze::statements(&script_src, &selectors)
    };
    let (today, statements, source_note) = match found {
        Ok(found) => (script_src.clone(), found, None),
        Err(e @ analyze::AnalyzeError::UnknownName { .. }) => {
            if let Some((module, source, found)) =
                statements_in_modules(repo.root(), &script, &script_src, &selectors)
            {
                let note = format!("the statements are in {module}, which {script} imports");
                file = module;
                (source, found, Some(note))
            } else {
                // As flordb 2.x did: the statement may live in a version that was run, not
                // in the checked-out file (a teammate's branch, an older commit).
                let (source, found, note) =
                    statements_from_history(repo, &all, &script, &selectors)
                        .ok_or_else(|| Error::Replay(format!("{script}: {e}")))?;
                (source, found, Some(note))
            }
        }
        Err(e) => return Err(Error::Replay(format!("{script}: {e}"))),
    };
    let names: Vec<String> = dedup(statements.iter().map(|s| s.name.clone()));
    check_iter_names(&req.iters, &[&today, &script_src])?;

    let mut selected: Vec<&RunInfo> = all
        .iter()
        .filter(|r| r.script.as_deref() == Some(script.as_str()))
        .collect();
    let other_scripts = all.len() - selected.len();
    if !req.runs.is_empty() {
        for wanted in &req.runs {
            if !all.iter().any(|r| names_run(r, wanted)) {
                return Err(Error::NoRun(wanted.clone()));
            }
        }
        selected.retain(|r| req.runs.iter().any(|w| names_run(r, w)));
    }
    if let Some(clause) = &req.where_sql {
        let matching = runs_where(store, clause, &names)?;
        selected.retain(|r| matching.contains(&r.run_id));
    }

    let tag = request_tag(&req.iters, &req.overrides);
    let mut campaign = Campaign {
        script: script.clone(),
        file: file.clone(),
        source_note,
        statements,
        runs: Vec::new(),
        skipped: Vec::new(),
        other_scripts,
        workers: req.workers.max(1),
        tag,
        iters: req.iters.clone(),
        server_ready: false,
        task_overhead: super::calibration::forked_task_secs(&store.layout().flor_dir()),
    };
    let mut sources: HashMap<String, std::result::Result<String, String>> = HashMap::new();
    for info in selected {
        match prepare_run(
            store,
            repo,
            req,
            (&today, &file),
            (&selectors, &channels),
            info,
            &mut sources,
            &campaign.tag,
        ) {
            Ok(run) => campaign.runs.push(run),
            Err(reason) => campaign.skipped.push((info.run_id.clone(), reason)),
        }
    }
    split_tasks(&mut campaign);
    Ok(campaign)
}

/// Whether `wanted` is the run's id, tstamp or `--flor` name.
fn names_run(r: &RunInfo, wanted: &str) -> bool {
    r.run_id == wanted || r.tstamp == wanted || r.name.as_deref() == Some(wanted)
}

/// Refuses `--iter LOOP=SPEC` for a loop that none of `sources` has: a misspelled name
/// would otherwise ask for nothing and replay everything.
fn check_iter_names(iters: &[(String, String)], sources: &[&str]) -> Result<()> {
    let mut known: Vec<String> = sources
        .iter()
        .filter_map(|s| analyze::read_script(s).ok())
        .flat_map(|info| info.loops.into_iter().map(|l| l.name.as_str().to_owned()))
        .collect();
    known.sort();
    known.dedup();
    for (name, spec) in iters {
        if !known.contains(name) {
            return Err(Error::Replay(format!(
                "--iter {name}={spec}: the script has no loop named {name:?} (its loops: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )));
        }
    }
    Ok(())
}

/// The project's own modules that `script` imports (files beside it or below its folder:
/// `helpers.py`, `utils/data.py`), relative to the root, in import order.
pub fn local_modules(root: &Path, script: &str, source: &str) -> Vec<String> {
    let dir = Path::new(script).parent().unwrap_or(Path::new(""));
    analyze::imported_modules(source)
        .into_iter()
        .filter_map(|name| {
            let rel = dir.join(name.replace('.', "/"));
            let candidates = [rel.with_extension("py"), rel.join("__init__.py")];
            candidates
                .into_iter()
                .find(|p| root.join(p).is_file())
                .map(|p| p.to_string_lossy().into_owned())
        })
        .collect()
}

/// The first of the script's own modules that holds every selected statement: its path,
/// source and statements.
fn statements_in_modules(
    root: &Path,
    script: &str,
    source: &str,
    selectors: &[&str],
) -> Option<(String, String, Vec<Statement>)> {
    local_modules(root, script, source)
        .into_iter()
        .find_map(|module| {
            let text = std::fs::read_to_string(root.join(&module)).ok()?;
            let found = analyze::statements(&text, selectors).ok()?;
            Some((module, text, found))
        })
}

/// The newest recorded version of `script` that logs every selected name: its source,
/// the statements and a note saying where they came from.
fn statements_from_history(
    repo: &Repo,
    runs: &[RunInfo],
    script: &str,
    selectors: &[&str],
) -> Option<(String, Vec<Statement>, String)> {
    let mut tried = HashSet::new();
    runs.iter()
        .rev()
        .filter(|r| r.script.as_deref() == Some(script))
        .filter_map(|r| Some((r, r.version.clone()?)))
        .filter(|(_, v)| tried.insert(v.clone()))
        .find_map(|(r, version)| {
            let source = repo.read_file_at(&version, script).ok()?;
            let found = analyze::statements(&source, selectors).ok()?;
            let note = format!(
                "{script} here does not log {}; the statements come from version {} (run {})",
                selectors.join(", "),
                short(&version),
                r.name.as_deref().unwrap_or(&r.run_id)
            );
            Some((source, found, note))
        })
}

/// The ids of runs with at least one row of the pivoted table where `clause` holds.
/// Names the clause mentions become columns; requested names no run has logged yet
/// are empty columns, so `x IS NULL` selects the runs that lack `x`.
fn runs_where(store: &Store, clause: &str, requested: &[String]) -> Result<HashSet<String>> {
    let known: HashSet<String> = store
        .query("SELECT text FROM names", &[], false)?
        .rows
        .into_iter()
        .filter_map(|row| match row.into_iter().next() {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        })
        .collect();
    let idents = identifiers(clause);
    let cols: Vec<&str> = idents
        .iter()
        .filter(|t| known.contains(*t))
        .map(String::as_str)
        .collect();
    let mut frame = pivot::dataframe(store, &cols)?;
    let rows = frame.len();
    for name in requested.iter().filter(|n| idents.contains(n)) {
        if frame.column(name).is_none() {
            frame.columns.push(Column {
                name: name.clone(),
                data: ColumnData::from_values(vec![Value::Null; rows]),
            });
        }
    }
    let kept = pivot::filter(&frame, clause)?;
    let ids = kept
        .column("run_id")
        .map(|c| {
            (0..kept.len()).filter_map(|i| match c.data.get(i) {
                Value::Str(s) => Some(s),
                _ => None,
            })
        })
        .into_iter()
        .flatten()
        .collect();
    Ok(ids)
}

/// Identifier-like words of a SQL clause (bare, or in double quotes), in order.
fn identifiers(clause: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = clause.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '"' {
            let rest = &clause[i + 1..];
            if let Some(end) = rest.find('"') {
                out.push(rest[..end].to_string());
                for _ in 0..=rest[..end].chars().count() {
                    chars.next();
                }
            }
        } else if c == '\'' {
            // A string literal: skip it.
            for (_, d) in chars.by_ref() {
                if d == '\'' {
                    break;
                }
            }
        } else if c.is_alphabetic() || c == '_' {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if d.is_alphanumeric() || d == '_' || d == ':' {
                    end = j + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(clause[i..end].to_string());
        }
    }
    dedup(out)
}

#[allow(clippy::too_many_arguments)]
fn prepare_run(
    store: &Store,
    repo: &Repo,
    req: &Request,
    (today, file): (&str, &str),
    (selectors, channels): (&[&str], &[&str]),
    info: &RunInfo,
    sources: &mut HashMap<String, std::result::Result<String, String>>,
    tag: &str,
) -> std::result::Result<RunReplay, String> {
    if info.status != "finished" {
        return Err(format!("the run did not finish (status {})", info.status));
    }
    let target = find(store, None, Some(&info.run_id)).map_err(|e| e.to_string())?;
    let script = target.script.clone().unwrap_or_default();
    let version = target
        .version
        .clone()
        .ok_or("the run has no code version (it ran outside git)")?;
    let old = sources
        .entry(version.clone())
        .or_insert_with(|| {
            if !repo.has_commit(&version) {
                return Err(format!(
                    "its code version {} is not in this repository (fetch refs/flor/* from where it ran)",
                    short(&version)
                ));
            }
            repo.read_file_at(&version, file)
                .map_err(|_| format!("{file} is missing from its code version {}", short(&version)))
        })
        .clone()?;
    let result = if selectors.is_empty() {
        analyze::Propagation {
            source: old.clone(),
            outcomes: Vec::new(),
        }
    } else {
        analyze::propagate(today, &old, selectors).map_err(|e| e.to_string())?
    };
    let mut apply: Vec<String> = dedup(result.outcomes.iter().filter_map(|o| match o {
        Outcome::Placed { name, .. } | Outcome::AlreadyPresent { name, .. } => Some(name.clone()),
        Outcome::CannotPlace { .. } => None,
    }));
    if apply.is_empty() && channels.is_empty() {
        let why: Vec<String> = result.outcomes.iter().map(ToString::to_string).collect();
        return Err(format!(
            "no statement could be placed in its version: {}",
            why.join("; ")
        ));
    }
    let statement_names = apply.clone();
    apply.extend(channels.iter().map(|c| c.to_string()));
    apply.sort();
    let info_script = analyze::read_script(&result.source).map_err(|e| e.to_string())?;
    let sites: Vec<_> = info_script
        .sites
        .iter()
        .filter(|s| {
            s.name
                .literal()
                .is_some_and(|n| statement_names.iter().any(|a| a == n))
        })
        .collect();
    // A statement in one of the script's modules runs wherever the script calls it: in
    // the script's outer loop, replayed in full (its own loops are nested there).
    // What a script prints comes from every step: its outer loop runs in full (as it
    // does for a statement in a module, below).
    let main = if !channels.is_empty() && file == script {
        let outer = info_script
            .loops
            .iter()
            .find(|l| l.level == 1 && l.kind == analyze::LoopKind::Loop);
        outer.map(|l| (l.name.as_str().to_owned(), info_script.clone()))
    } else if file == script {
        None
    } else {
        let text = repo.read_file_at(&version, &script).map_err(|_| {
            format!(
                "{script} is missing from its code version {}",
                short(&version)
            )
        })?;
        let info = analyze::read_script(&text).map_err(|e| e.to_string())?;
        info.loops
            .iter()
            .find(|l| l.level == 1 && l.kind == analyze::LoopKind::Loop)
            .map(|l| (l.name.as_str().to_owned(), info.clone()))
    };
    let level = match &main {
        Some(_) => 2,
        None => sites.iter().map(|s| effective_level(s)).max().unwrap_or(0),
    };
    let checkpoints = usable_manifests(&target)?;
    let outer_site = match &main {
        Some((name, _)) => Some(name.clone()),
        None => sites
            .iter()
            .find(|s| s.level >= 1)
            .map(|s| s.loops[0].clone()),
    };
    let outer = match outer_site {
        None => None,
        Some(name) => {
            let iterations = target.loop_counts.get(&name).copied().unwrap_or(0);
            let spec = spec_for(&req.iters, &name);
            let want =
                requested(spec, iterations).map_err(|e| format!("--iter {name}={spec}: {e}"))?;
            let levels: BTreeSet<usize> = match &main {
                Some(_) => BTreeSet::from([2]),
                None => sites
                    .iter()
                    .filter(|s| s.level >= 1 && s.loops[0] == name)
                    .map(|s| effective_level(s))
                    .collect(),
            };
            let carried = carried_paths(main.as_ref().map_or(&info_script, |(_, i)| i), &name);
            let plan = plan(
                &loop_request(iterations, &want, &levels, &carried),
                &checkpoints,
            );
            Some(Outer {
                name,
                iterations,
                want,
                plan,
                levels,
                carried,
            })
        }
    };
    let output = target.output(&apply, tag);
    let checked = checked_names(
        main.as_ref().map_or(&info_script, |(_, i)| i),
        &apply,
        outer.as_ref(),
    );
    let as_of = repo.ignored_as_of(target.start);
    Ok(RunReplay {
        target,
        version,
        outcomes: result.outcomes,
        source: result.source,
        apply,
        level,
        outer,
        checkpoints,
        tasks: Vec::new(),
        output,
        checked,
        as_of,
    })
}

/// The recorded names a plan runs again in the outer loop's iterations: every name of the
/// loop where an iteration runs in full or silently, the outer level's own names (but
/// those reading what the nested loops build) where it runs without its nested loops.
fn checked_names(
    info: &analyze::ScriptInfo,
    apply: &[String],
    outer: Option<&Outer>,
) -> Vec<String> {
    let Some(o) = outer else {
        return Vec::new();
    };
    let full = o.plan.steps.iter().any(|s| s.action != Action::Own);
    let own = o.plan.steps.iter().any(|s| s.action == Action::Own);
    dedup(
        info.sites
            .iter()
            .filter(|s| !s.clock && s.level >= 1 && s.loops[0] == o.name)
            .filter(|s| (full) || (own && s.level == 1 && !s.needs_nested))
            .filter_map(|s| s.name.literal())
            .filter(|n| !apply.iter().any(|a| a == n))
            .map(str::to_owned),
    )
}

/// 0 after the loops, 1 in the outer loop's own code, 2 where the nested loops must run:
/// in them, or reading what they build (see `analyze::LogSite::needs_nested`).
fn effective_level(site: &analyze::LogSite) -> usize {
    if site.needs_nested {
        2
    } else {
        site.level.min(2)
    }
}

fn usable_manifests(target: &Target) -> std::result::Result<Vec<ckpt::Manifest>, String> {
    let chunks = ChunkStore::new(&target.flor_dir);
    Ok(ckpt::list(&target.flor_dir, &target.run_id)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|m| m.occurrence == 0 && m.complete(&chunks))
        .collect())
}

/// The carried state of the script's first outer loop named `name`, as paths.
pub fn carried_paths(info: &analyze::ScriptInfo, name: &str) -> Vec<String> {
    info.loops
        .iter()
        .find(|l| l.level == 1 && l.name.as_str() == name)
        .map(|l| l.carried.iter().map(|c| c.path.clone()).collect())
        .unwrap_or_default()
}

fn loop_request(
    iterations: i64,
    want: &[i64],
    levels: &BTreeSet<usize>,
    carried: &[String],
) -> LoopRequest {
    let set: BTreeSet<i64> = want.iter().copied().collect();
    LoopRequest {
        occurrence: 0,
        carried: carried.to_vec(),
        iterations,
        own: if levels.contains(&1) {
            set.clone()
        } else {
            BTreeSet::new()
        },
        full: if levels.iter().any(|&l| l >= 2) {
            set
        } else {
            BTreeSet::new()
        },
    }
}

/// Splits runs into tasks so that the pool's workers share the work: a run with much
/// work gets several contiguous segments of its outer iterations, each from its own
/// checkpoint, as long as a segment outweighs the set-up it repeats.
fn split_tasks(c: &mut Campaign) {
    let overhead = c.task_overhead;
    let whole: Vec<f64> = c
        .runs
        .iter()
        .map(|r| task_secs(r, None, overhead))
        .collect();
    let total: f64 = whole.iter().sum();
    let workers = c.workers as f64;
    for (r, &secs) in c.runs.iter_mut().zip(&whole) {
        let want = r.outer.as_ref().map(|o| o.want.clone());
        let Some(want) = want.filter(|w| !w.is_empty()) else {
            r.tasks = vec![Task {
                iterations: r.outer.as_ref().map(|o| o.want.clone()),
                apply: r.apply.clone(),
                secs,
                start: None,
            }];
            continue;
        };
        let fixed = r.target.timing.teardown + overhead;
        let mut k = if total > 0.0 {
            ((workers * secs / total).ceil() as usize).clamp(1, want.len())
        } else {
            1
        };
        while k > 1 && (secs - fixed) / (k as f64) < fixed {
            k -= 1;
        }
        let run_level = run_level_names(r);
        r.tasks = (0..k)
            .map(|j| {
                let chunk = want[want.len() * j / k..want.len() * (j + 1) / k].to_vec();
                // Statements after the loop need the end state once: the last task's.
                let apply = if j + 1 == k {
                    r.apply.clone()
                } else {
                    r.apply
                        .iter()
                        .filter(|n| !run_level.contains(*n))
                        .cloned()
                        .collect()
                };
                let start = r.outer.as_ref().and_then(|o| {
                    let p = plan(
                        &loop_request(o.iterations, &chunk, &o.levels, &o.carried),
                        &r.checkpoints,
                    );
                    p.steps.first().and_then(|s| s.restore).map(|k| k.iteration)
                });
                Task {
                    secs: task_secs(r, Some(&chunk), overhead),
                    iterations: Some(chunk),
                    apply,
                    start,
                }
            })
            .collect();
    }
}

/// Estimated seconds of replaying `iters` (default: all wanted) of a run in one process
/// forked from the worker server, which costs `overhead` beyond its work.
fn task_secs(r: &RunReplay, iters: Option<&[i64]>, overhead: f64) -> f64 {
    let t = &r.target.timing;
    let manifests = &r.checkpoints;
    let Some(outer) = &r.outer else {
        if r.target.loop_counts.is_empty() {
            return t.script; // no flor.loop: the whole script runs again
        }
        // After-loop statements only: the loop is skipped to its end state, or run
        // through when no checkpoint holds that state.
        let through = if manifests.is_empty() {
            t.outer_loop
        } else {
            0.0
        };
        return t.forked_task_secs(&[], 0, overhead) + through;
    };
    let iters = iters.unwrap_or(&outer.want);
    let p = plan(
        &loop_request(outer.iterations, iters, &outer.levels, &outer.carried),
        manifests,
    );
    let steps: Vec<(i64, Action)> = p.steps.iter().map(|s| (s.iteration, s.action)).collect();
    let sizes: HashMap<Key, u64> = manifests.iter().map(|m| (m.key(), m.raw_bytes)).collect();
    t.forked_task_secs(&steps, restored_bytes(&p, &steps, &sizes), overhead)
}

/// Names that are logged only after the loops in this run's version.
fn run_level_names(r: &RunReplay) -> HashSet<String> {
    let Ok(info) = analyze::read_script(&r.source) else {
        return HashSet::new();
    };
    r.apply
        .iter()
        .filter(|n| {
            info.sites
                .iter()
                .filter(|s| s.name.literal() == Some(n.as_str()))
                .all(|s| s.level == 0)
        })
        .cloned()
        .collect()
}

fn spec_for<'a>(iters: &'a [(String, String)], loop_name: &str) -> &'a str {
    iters
        .iter()
        .rev()
        .find(|(n, _)| n == loop_name)
        .map_or("all", |(_, s)| s.as_str())
}

/// The iterations an `--iter` SPEC selects out of `n` (`all`, `last`, `none`, `0,2,5`).
pub fn requested(spec: &str, n: i64) -> std::result::Result<Vec<i64>, String> {
    match spec.trim() {
        "all" => Ok((0..n).collect()),
        "none" | "" => Ok(Vec::new()),
        "last" => Ok(if n > 0 { vec![n - 1] } else { Vec::new() }),
        list => {
            let mut out = BTreeSet::new();
            for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let i: i64 = part.parse().map_err(|_| {
                    format!("expected all, last, none or iterations like 0,2,5, not {part:?}")
                })?;
                if !(0..n).contains(&i) {
                    return Err(format!(
                        "the recorded loop only has {n} iteration(s) (valid: 0..{})",
                        n - 1
                    ));
                }
                out.insert(i);
            }
            Ok(out.into_iter().collect())
        }
    }
}

/// The request's identity among a run's replay files, as the single-run replay spells it
/// (`[[[loop, spec], ...], [[key, value], ...]]`, Python's JSON separators).
pub fn request_tag(iters: &[(String, String)], overrides: &[(String, String)]) -> String {
    let pairs = |items: &[(String, String)]| {
        let mut sorted: Vec<&(String, String)> = items.iter().collect();
        sorted.sort();
        sorted.dedup_by(|a, b| a.0 == b.0);
        let parts: Vec<String> = sorted
            .iter()
            .map(|(k, v)| format!("[{}, {}]", json_str(k), json_str(v)))
            .collect();
        format!("[{}]", parts.join(", "))
    };
    format!("[{}, {}]", pairs(iters), pairs(overrides))
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn dedup(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .filter(|s| seen.insert(s.clone()))
        .collect()
}

/// The first 10 characters of a commit.
pub fn short(commit: &str) -> &str {
    &commit[..commit.len().min(10)]
}

/// The folder a run was started from, relative to the root: `argv[0]` names the script
/// relative to it (`python train.py` in `examples/`, `python examples/train.py` at the root).
pub fn start_dir(argv0: &str, script: &str) -> PathBuf {
    let arg = Path::new(argv0);
    if arg.is_relative() {
        let script_path = Path::new(script);
        let mut base = script_path.to_path_buf();
        for _ in arg.components() {
            if !base.pop() {
                return PathBuf::new();
            }
        }
        if base.join(arg) == script_path {
            return base;
        }
    }
    Path::new(script)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_clause_identifiers_skip_literals_and_keep_quoted_names() {
        assert_eq!(
            identifiers("lr < 0.01 and \"time::iter\" > 2 and opt = 'adam b' and acc IS NULL"),
            vec!["lr", "and", "time::iter", "opt", "acc", "IS", "NULL"]
        );
    }

    #[test]
    fn iter_specs() {
        assert_eq!(requested("all", 3).unwrap(), vec![0, 1, 2]);
        assert_eq!(requested("last", 3).unwrap(), vec![2]);
        assert_eq!(requested("none", 3).unwrap(), Vec::<i64>::new());
        assert_eq!(requested("2,0", 3).unwrap(), vec![0, 2]);
        assert!(requested("3", 3).unwrap_err().contains("only has 3"));
        assert!(requested("x", 3).is_err());
    }

    #[test]
    fn tag_matches_the_single_run_spelling() {
        let iters = vec![("epoch".to_string(), "0,1".to_string())];
        assert_eq!(request_tag(&iters, &[]), "[[[\"epoch\", \"0,1\"]], []]");
        assert_eq!(request_tag(&[], &[]), "[[], []]");
    }

    #[test]
    fn start_dir_follows_argv0() {
        assert_eq!(
            start_dir("train.py", "examples/train.py"),
            PathBuf::from("examples")
        );
        assert_eq!(
            start_dir("examples/train.py", "examples/train.py"),
            PathBuf::new()
        );
        assert_eq!(
            start_dir("/abs/train.py", "examples/train.py"),
            PathBuf::from("examples")
        );
        assert_eq!(start_dir("train.py", "train.py"), PathBuf::new());
    }
}
