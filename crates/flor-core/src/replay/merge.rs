//! Joining the files of a run's replay tasks into its one replay file, atomically, with a
//! provenance line first (which statements, which version, what the check found) that the
//! store skips.
//!
//! Each task leaves its check's report beside its file (`<part>.verify.json`, written by
//! the Python layer: `record::verify` counts, and whether the task started over from the
//! loop's start). An outer iteration whose re-executed statements logged recorded values,
//! all equal, is *verified*; one that re-logged none rests on the static analysis alone.
//! Every value carries that as `"verified": true|false`, and a `flor::verified` record
//! per iteration (and one outside the loops) lets the pivot show it beside the values.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::record::{parse_line, segments_json, write_line, Kind, LineHeader, Record, Value};
use crate::{Error, Result};

/// The metadata record naming what produced a replay file.
pub const PROVENANCE: &str = crate::record::meta::REPLAY;

/// The record that says whether the values of one outer iteration were verified.
pub const VERIFIED: &str = "flor::verified";

/// What the checks of a run's tasks found, over the iterations that logged values.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Verification {
    /// Recorded values compared in all.
    pub compared: u64,
    /// Outer iterations whose values were verified against the record.
    pub verified: Vec<i64>,
    /// Outer iterations whose values rest on the analysis alone (nothing recorded re-ran).
    pub unchecked: Vec<i64>,
    /// Values logged outside the loops: `Some(true)` verified, `Some(false)` unchecked.
    pub outside: Option<bool>,
    /// Tasks that diverged after a restore and were recomputed from the loop's start:
    /// what differed.
    pub retried: Vec<String>,
    /// Names the check left out, and why.
    pub skipped: BTreeMap<String, String>,
    /// What the tasks told about how they replayed (checkpoints refused or set aside,
    /// iterations recomputed, other library versions), each once, in order.
    pub notices: Vec<String>,
}

/// What [`merge_parts`] wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Merged {
    /// Records written (args included, the check's marks not).
    pub records: usize,
    /// Values written per name (args left out).
    pub values: BTreeMap<String, usize>,
    pub verification: Verification,
}

/// One task's check, as its report file says.
#[derive(Debug, Default)]
struct TaskCheck {
    iterations: BTreeMap<i64, (u64, u64)>,
    outside: (u64, u64),
    compared: u64,
    retry_of: Option<String>,
    skipped: BTreeMap<String, String>,
    notices: Vec<String>,
}

impl TaskCheck {
    fn read(part: &Path) -> Option<TaskCheck> {
        let text = std::fs::read_to_string(report_path(part)).ok()?;
        let json: serde_json::Value = serde_json::from_str(&text).ok()?;
        let check = json.get("check")?;
        let counts = |v: &serde_json::Value| {
            let get = |k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
            (get("compared"), get("mismatched"))
        };
        let iterations = check
            .get("iterations")
            .and_then(serde_json::Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.parse().ok()?, counts(v))))
                    .collect()
            })
            .unwrap_or_default();
        let skipped = check
            .get("skipped")
            .and_then(serde_json::Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Some(TaskCheck {
            iterations,
            outside: check.get("outside").map(counts).unwrap_or_default(),
            compared: check
                .get("compared")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0),
            retry_of: json
                .get("retry_of")
                .and_then(|r| r.get("message"))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned),
            skipped,
            notices: json
                .get("notices")
                .and_then(serde_json::Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|n| n.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    fn verified(&self, iteration: Option<i64>) -> bool {
        let (compared, mismatched) = match iteration {
            Some(it) => self.iterations.get(&it).copied().unwrap_or_default(),
            None => self.outside,
        };
        compared > 0 && mismatched == 0
    }
}

/// Where a task's (or a replay's) check report lives.
pub fn report_path(part: &Path) -> PathBuf {
    let mut name = part.as_os_str().to_owned();
    name.push(".verify.json");
    PathBuf::from(name)
}

/// Writes `output` from the tasks' `parts` (in task order; a missing part recorded
/// nothing), keeping the args of the first part only, then removes the parts and their
/// reports.
pub fn merge_parts(
    header: &LineHeader,
    parts: &[PathBuf],
    output: &Path,
    provenance: serde_json::Value,
) -> Result<Merged> {
    if let Some(dir) = output.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    // The body goes to a file of its own first: the provenance line that leads the
    // output says what the check found, which is known only once every part was read.
    let pid = std::process::id();
    let body_path = output.with_extension(format!("jsonl.{pid}.body"));
    let mut body =
        BufWriter::new(std::fs::File::create(&body_path).map_err(|e| Error::io(&body_path, e))?);
    let mut put = |text: &str| -> Result<()> {
        body.write_all(text.as_bytes())
            .map_err(|e| Error::io(&body_path, e))
    };
    let mut records = 0;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut v = Verification::default();
    // Iterations that logged values: (segment JSON, verified).
    let mut marks: BTreeMap<i64, (String, bool)> = BTreeMap::new();
    let mut outside: Option<bool> = None;
    for (j, part) in parts.iter().enumerate() {
        let Ok(file) = std::fs::File::open(part) else {
            continue;
        };
        let check = TaskCheck::read(part).unwrap_or_default();
        v.compared += check.compared;
        v.retried.extend(check.retry_of.clone());
        v.skipped.extend(check.skipped.clone());
        for notice in &check.notices {
            if !v.notices.contains(notice) {
                v.notices.push(notice.clone());
            }
        }
        for line in BufReader::new(file).lines() {
            let line = line.map_err(|e| Error::io(part, e))?;
            let Ok(parsed) = parse_line(&line) else {
                continue;
            };
            // Every task records the run's args; one copy is enough.
            if parsed.arg {
                if j == 0 {
                    put(&format!("{line}\n"))?;
                    records += 1;
                }
                continue;
            }
            if parsed.kind != Kind::Log {
                // Captured lines asked for (`io::stdout`) are values of their channel.
                if parsed.kind == Kind::Io {
                    *counts.entry(parsed.name.clone()).or_default() += 1;
                }
                put(&format!("{line}\n"))?;
                records += 1;
                continue;
            }
            *counts.entry(parsed.name.clone()).or_default() += 1;
            let first = parsed.ctx.as_ref().and_then(|c| c.first());
            let iteration = first.and_then(|s| s.iteration);
            let ok = check.verified(iteration);
            match (first, iteration) {
                (Some(seg), Some(it)) => {
                    let seg_json = segments_json(std::slice::from_ref(seg));
                    marks.entry(it).or_insert((seg_json, ok));
                }
                _ => outside = Some(outside.unwrap_or(true) && ok),
            }
            let trimmed = line.trim_end();
            match trimmed.strip_suffix('}') {
                Some(open) => put(&format!("{open}, \"verified\": {ok}}}\n"))?,
                None => put(&format!("{trimmed}\n"))?,
            }
            records += 1;
        }
    }
    let mark = |ok: bool| Record {
        name: VERIFIED.into(),
        value: Value::Bool(ok),
        kind: Kind::Log,
        arg: false,
    };
    for (&it, (seg, ok)) in &marks {
        let mut text = String::new();
        write_line(header, Some(seg), &mark(*ok), &mut text);
        put(&text)?;
        if *ok {
            v.verified.push(it);
        } else {
            v.unchecked.push(it);
        }
    }
    if let Some(ok) = outside {
        let mut text = String::new();
        write_line(header, None, &mark(ok), &mut text);
        put(&text)?;
    }
    v.outside = outside;
    body.flush().map_err(|e| Error::io(&body_path, e))?;
    drop(body);

    let mut provenance = provenance;
    if let Some(map) = provenance.as_object_mut() {
        map.insert(
            "verification".into(),
            serde_json::to_value(&v).unwrap_or_default(),
        );
    }
    let meta = Record {
        name: PROVENANCE.into(),
        value: Value::Json(provenance),
        kind: Kind::Meta,
        arg: false,
    };
    let mut first = String::new();
    write_line(header, None, &meta, &mut first);

    let tmp = output.with_extension(format!("jsonl.{pid}.merging"));
    let written = (|| {
        let mut out = std::fs::File::create(&tmp)?;
        out.write_all(first.as_bytes())?;
        std::io::copy(&mut std::fs::File::open(&body_path)?, &mut out)?;
        out.sync_all()
    })();
    let _ = std::fs::remove_file(&body_path);
    written.map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, output).map_err(|e| Error::io(output, e))?;
    for part in parts {
        let _ = std::fs::remove_file(part);
        let _ = std::fs::remove_file(report_path(part));
    }
    Ok(Merged {
        records,
        values: counts,
        verification: v,
    })
}

/// The iterations in `iters`, as `0-3,5` (for messages).
pub fn ranges(iters: &[i64]) -> String {
    let set: BTreeSet<i64> = iters.iter().copied().collect();
    let mut out: Vec<String> = Vec::new();
    let mut run: Option<(i64, i64)> = None;
    for x in set {
        run = match run {
            Some((a, b)) if x == b + 1 => Some((a, x)),
            Some((a, b)) => {
                out.push(if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                });
                Some((x, x))
            }
            None => Some((x, x)),
        };
    }
    if let Some((a, b)) = run {
        out.push(if a == b {
            a.to_string()
        } else {
            format!("{a}-{b}")
        });
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RunFile;

    fn line(name: &str, epoch: i64, arg: bool) -> String {
        let ctx = if arg {
            "null".to_string()
        } else {
            format!("[{{\"name\": \"epoch\", \"iteration\": {epoch}, \"value\": null}}]")
        };
        let arg = if arg { ", \"arg\": true" } else { "" };
        format!("{{\"projid\": \"p\", \"tstamp\": \"2026-01-01T00:00:00\", \"filename\": \"train.py\", \"ctx\": {ctx}, \"name\": \"{name}\", \"value\": 1, \"type\": 1{arg}}}\n")
    }

    #[test]
    fn parts_become_one_file_with_one_copy_of_the_args_and_the_checks_marks() {
        let dir = tempfile::tempdir().unwrap();
        let parts: Vec<PathBuf> = (0..3)
            .map(|j| dir.path().join(format!("out.part{j}")))
            .collect();
        std::fs::write(&parts[0], line("lr", 0, true) + &line("w", 0, false)).unwrap();
        std::fs::write(&parts[2], line("lr", 0, true) + &line("w", 2, false)).unwrap();
        // Task 0 re-logged a recorded value in epoch 0, and it matched; task 2 re-ran none.
        let report = serde_json::json!({
            "check": {"compared": 4, "iterations": {"0": {"compared": 4, "mismatched": 0}},
                      "outside": {"compared": 0, "mismatched": 0}, "skipped": {"ms": "clock"}},
            "retry_of": {"message": "loss at epoch 0: recorded 1, replayed 2"},
        });
        std::fs::write(report_path(&parts[0]), report.to_string()).unwrap();
        let output = dir.path().join("replays/r1/w.abc.jsonl");
        let header = LineHeader::new("p", "2026-01-01T00:00:00", "train.py");
        let merged = merge_parts(
            &header,
            &parts,
            &output,
            serde_json::json!({"version": "abc"}),
        )
        .unwrap();
        assert_eq!(merged.records, 3);
        assert_eq!(merged.values["w"], 2);
        let v = merged.verification;
        assert!(parts
            .iter()
            .all(|p| !p.exists() && !report_path(p).exists()));
        assert_eq!(v.verified, vec![0]);
        assert_eq!(v.unchecked, vec![2]);
        assert_eq!(v.compared, 4);
        assert_eq!(v.retried.len(), 1);
        let file = RunFile::read(&output).unwrap();
        let names: Vec<&str> = file.records.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, vec!["lr", "w", "w", VERIFIED, VERIFIED]);
        let marks: Vec<&Value> = file.records[3..].iter().map(|r| &r.value).collect();
        assert_eq!(marks, vec![&Value::Bool(true), &Value::Bool(false)]);
        let text = std::fs::read_to_string(&output).unwrap();
        assert!(text.contains("\"name\": \"w\", \"value\": 1, \"type\": 1, \"verified\": true}"));
        let prov = file.provenance.unwrap();
        assert_eq!(prov["version"], "abc");
        assert_eq!(prov["verification"]["verified"], serde_json::json!([0]));
    }

    #[test]
    fn iteration_ranges_read_well() {
        assert_eq!(ranges(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
        assert_eq!(ranges(&[]), "");
    }
}
