//! The run a replay reproduces: which one (the newest finished run of the script, or one
//! named), its args, how many iterations each outer loop had, and where the replay's
//! records go.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::Timing;
use crate::record::verify::Expected;
use crate::record::{Kind, Value};
use crate::store::{RunFile, RunInfo, Store};
use crate::{Error, Result};

/// A recorded run, as replay needs it.
#[derive(Debug, Clone)]
pub struct Target {
    pub run_id: String,
    pub tstamp: String,
    pub projid: String,
    pub filename: String,
    pub script: Option<String>,
    /// Run-level `flor.arg` values, in the order they were read (the last read wins).
    pub args: Vec<(String, Value)>,
    /// Iterations of each outer loop, by name (the largest recorded position + 1).
    pub loop_counts: BTreeMap<String, i64>,
    /// The `.flor/` folder of the project.
    pub flor_dir: PathBuf,
    /// The code version (snapshot commit), if the run had one.
    pub version: Option<String>,
    /// The command line the run was started with (FlorDB's flags included).
    pub argv: Vec<String>,
    /// The interpreter that ran it.
    pub python: Option<String>,
    /// The working directory it started in (see `record::RunConfig::cwd`).
    pub cwd: Option<String>,
    /// Unix seconds when it started.
    pub start: Option<f64>,
    /// The settings that change its numbers (`record::meta::ENV`), if recorded.
    pub env: Option<serde_json::Value>,
    /// Its recorded timings, for the cost estimate.
    pub timing: Timing,
    /// Where its state came from when it resumed another run (`record::meta::START`
    /// values, in the order recorded): replay starts from the same copies.
    pub starts: Vec<serde_json::Value>,
}

/// Finds the run to replay. `run` names one by run id or tstamp; otherwise the newest
/// finished run whose script is `script` (a path relative to the project root). Never
/// another script's run: flordb 4 took the newest run file of any script (spec §9.3 #8).
pub fn find(store: &Store, script: Option<&str>, run: Option<&str>) -> Result<Target> {
    find_with_records(store, script, run).map(|(target, _)| target)
}

/// [`find`], with what the run recorded: the values a replay's check compares against.
pub fn find_with_expected(
    store: &Store,
    script: Option<&str>,
    run: Option<&str>,
) -> Result<(Target, Expected)> {
    let (target, file) = find_with_records(store, script, run)?;
    Ok((target, Expected::from_records(&file.records)))
}

fn find_with_records(
    store: &Store,
    script: Option<&str>,
    run: Option<&str>,
) -> Result<(Target, RunFile)> {
    let runs = store.runs()?;
    let chosen: &RunInfo = match run {
        Some(wanted) => runs
            .iter()
            .find(|r| r.run_id == wanted || r.tstamp == wanted)
            .ok_or_else(|| Error::NoRun(wanted.to_string()))?,
        None => {
            let script = script.ok_or_else(|| {
                Error::Replay(
                    "replay needs a script file inside the project (python path/to/train.py --replay_flor ...)".into(),
                )
            })?;
            let same: Vec<&RunInfo> = runs
                .iter()
                .filter(|r| r.script.as_deref() == Some(script))
                .collect();
            same.iter()
                .rev()
                .find(|r| r.status == "finished")
                .copied()
                .ok_or_else(|| {
                    if same.is_empty() {
                        Error::Replay(format!(
                            "no recorded run of {script} to replay: record one first (python {script})"
                        ))
                    } else {
                        Error::Replay(format!(
                            "no finished run of {script} to replay ({} run(s) failed or were killed)",
                            same.len()
                        ))
                    }
                })?
        }
    };
    let path = store
        .layout()
        .runs_dir()
        .join(format!("{}.jsonl", chosen.run_id));
    let file = RunFile::read(&path)?;
    let mut args: Vec<(String, Value)> = Vec::new();
    let mut loop_counts: BTreeMap<String, i64> = BTreeMap::new();
    for rec in &file.records {
        if let Some(seg) = rec.ctx.as_ref().and_then(|c| c.first()) {
            if let Some(it) = seg.iteration {
                let n = loop_counts.entry(seg.name.clone()).or_insert(0);
                *n = (*n).max(it + 1);
            }
        } else if rec.arg && rec.kind == Kind::Log {
            args.retain(|(n, _)| *n != rec.name);
            args.push((rec.name.clone(), rec.value.clone()));
        }
    }
    let argv = file
        .argv
        .as_deref()
        .and_then(|a| serde_json::from_str::<Vec<String>>(a).ok())
        .unwrap_or_default();
    let target = Target {
        version: chosen.version.clone().or(file.version.clone()),
        argv,
        python: file.python.clone(),
        cwd: file.cwd.clone(),
        start: file.start,
        env: file.env.clone(),
        timing: Timing::from_records(&file.records),
        run_id: chosen.run_id.clone(),
        tstamp: file.tstamp.clone(),
        projid: file.projid.clone(),
        filename: file.filename.clone(),
        script: chosen.script.clone(),
        args,
        loop_counts,
        flor_dir: store.layout().flor_dir(),
        starts: file.starts.clone(),
    };
    Ok((target, file))
}

impl Target {
    /// The file a replay of `names` writes, under `.flor/replays/<run>/`. The same
    /// request (names and `tag`: the iterations and overrides) replaces its earlier
    /// file, so replaying twice does not duplicate rows.
    pub fn output(&self, names: &[String], tag: &str) -> PathBuf {
        let mut sorted: Vec<&str> = names.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let key = format!("{}\u{0}{tag}", sorted.join("\u{0}"));
        let hash = blake3::hash(key.as_bytes()).to_hex();
        let label: String = sorted
            .join(",")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_,.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .take(60)
            .collect();
        self.flor_dir
            .join("replays")
            .join(&self.run_id)
            .join(format!("{label}.{}.jsonl", &hash[..12]))
    }
}
