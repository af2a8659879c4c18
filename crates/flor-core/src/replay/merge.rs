//! Joining the files of a run's replay tasks into its one replay file, atomically, with a
//! provenance line first (which statements, which version) that the store skips.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use crate::record::{write_line, Kind, LineHeader, Record, Value};
use crate::{Error, Result};

use super::Target;

/// The metadata record naming what produced a replay file.
pub const PROVENANCE: &str = crate::record::meta::REPLAY;

/// Writes `output` from the tasks' `parts` (in task order; a missing part recorded
/// nothing), keeping the args of the first part only, then removes the parts.
pub fn merge_parts(
    target: &Target,
    parts: &[PathBuf],
    output: &Path,
    provenance: serde_json::Value,
) -> Result<usize> {
    if let Some(dir) = output.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = output.with_extension("jsonl.merging");
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?);
    let header = LineHeader::new(&target.projid, &target.tstamp, &target.filename);
    let meta = Record {
        name: PROVENANCE.into(),
        value: Value::Json(provenance),
        kind: Kind::Meta,
        arg: false,
    };
    let mut line = String::new();
    write_line(&header, None, &meta, &mut line);
    out.write_all(line.as_bytes())
        .map_err(|e| Error::io(&tmp, e))?;
    let mut records = 0;
    for (j, part) in parts.iter().enumerate() {
        let Ok(file) = std::fs::File::open(part) else {
            continue;
        };
        for line in BufReader::new(file).lines() {
            let line = line.map_err(|e| Error::io(part, e))?;
            // Every task records the run's args; one copy is enough.
            if j > 0 && is_arg(&line) {
                continue;
            }
            writeln!(out, "{line}").map_err(|e| Error::io(&tmp, e))?;
            records += 1;
        }
    }
    out.into_inner()
        .map_err(|e| Error::io(&tmp, e.into_error()))?
        .sync_all()
        .map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, output).map_err(|e| Error::io(output, e))?;
    for part in parts {
        let _ = std::fs::remove_file(part);
    }
    Ok(records)
}

fn is_arg(line: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(line)
        .is_ok_and(|v| v.get("arg").and_then(serde_json::Value::as_bool) == Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RunFile;

    #[test]
    fn parts_become_one_file_with_one_copy_of_the_args() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target {
            run_id: "r1".into(),
            tstamp: "2026-01-01T00:00:00".into(),
            projid: "p".into(),
            filename: "train.py".into(),
            script: Some("train.py".into()),
            args: vec![],
            loop_counts: Default::default(),
            flor_dir: dir.path().to_path_buf(),
            version: None,
            argv: vec![],
            python: None,
            timing: Default::default(),
        };
        let line = |name: &str, epoch: i64, arg: bool| {
            let ctx = if arg {
                "null".to_string()
            } else {
                format!("[{{\"name\": \"epoch\", \"iteration\": {epoch}, \"value\": null}}]")
            };
            let arg = if arg { ", \"arg\": true" } else { "" };
            format!("{{\"projid\": \"p\", \"tstamp\": \"2026-01-01T00:00:00\", \"filename\": \"train.py\", \"ctx\": {ctx}, \"name\": \"{name}\", \"value\": 1, \"type\": 1{arg}}}\n")
        };
        let parts: Vec<PathBuf> = (0..3)
            .map(|j| dir.path().join(format!("out.part{j}")))
            .collect();
        std::fs::write(&parts[0], line("lr", 0, true) + &line("w", 0, false)).unwrap();
        std::fs::write(&parts[2], line("lr", 0, true) + &line("w", 2, false)).unwrap();
        let output = dir.path().join("replays/r1/w.abc.jsonl");
        let n = merge_parts(
            &target,
            &parts,
            &output,
            serde_json::json!({"version": "abc"}),
        )
        .unwrap();
        assert_eq!(n, 3);
        assert!(parts.iter().all(|p| !p.exists()));
        let file = RunFile::read(&output).unwrap();
        let names: Vec<&str> = file.records.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, vec!["lr", "w", "w"]);
        assert_eq!(file.tstamp, "2026-01-01T00:00:00");
        assert_eq!(file.provenance, Some(serde_json::json!({"version": "abc"})));
    }
}
