//! Reading one `.flor/runs/<run>.jsonl` file: FlorDB's own files (with `flor::run`,
//! `flor::version` and `flor::end` metadata lines) and flordb 4's plain ones.

use std::io::BufRead;
use std::path::Path;

use crate::record::{meta, parse_line, Kind, ParsedLine, Value};
use crate::{Error, Result};

/// How a run's file says it ended.
#[derive(Debug, Clone, PartialEq)]
pub enum FileStatus {
    /// `flor::end` says the run finished, or the file is flordb's (written at exit).
    Finished,
    /// `flor::end` says it failed, with the exit code.
    Failed(i64),
    /// No end record yet: still running, or killed (the caller checks the process).
    Open,
}

/// Everything one run file holds.
#[derive(Debug, Clone)]
pub struct RunFile {
    pub run_id: String,
    /// The name the user gave the run (`--flor NAME`), if any.
    pub name: Option<String>,
    pub projid: String,
    pub tstamp: String,
    pub filename: String,
    pub script: Option<String>,
    pub argv: Option<String>,
    pub python: Option<String>,
    /// The working directory it started in (see `record::RunConfig::cwd`).
    pub cwd: Option<String>,
    /// The settings that change its numbers (`record::meta::ENV`), if recorded.
    pub env: Option<serde_json::Value>,
    /// Where the run's state came from when it resumed another run (`meta::START`).
    pub starts: Vec<serde_json::Value>,
    pub pid: Option<i64>,
    pub host: Option<String>,
    pub start: Option<f64>,
    pub end: Option<f64>,
    pub branch: Option<String>,
    pub version: Option<String>,
    pub status: FileStatus,
    /// A replay file's provenance (`flor::replay`): statements, version, request.
    pub provenance: Option<serde_json::Value>,
    /// The records, in file order, without the metadata lines.
    pub records: Vec<ParsedLine>,
}

impl RunFile {
    /// Reads a run file. A torn last line (the process was killed mid-write) is
    /// dropped; any other bad line is an error naming the line.
    pub fn read(path: &Path) -> Result<RunFile> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let run_id = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut run = RunFile {
            run_id,
            name: None,
            projid: String::new(),
            tstamp: String::new(),
            filename: String::new(),
            script: None,
            argv: None,
            provenance: None,
            python: None,
            cwd: None,
            env: None,
            starts: Vec::new(),
            pid: None,
            host: None,
            start: None,
            end: None,
            branch: None,
            version: None,
            status: FileStatus::Finished,
            records: Vec::new(),
        };
        let mut own_format = false;
        let mut pending_error: Option<Error> = None;
        for (index, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| Error::io(path, e))?;
            if line.trim().is_empty() {
                continue;
            }
            if let Some(err) = pending_error.take() {
                return Err(err);
            }
            let parsed = match parse_line(&line) {
                Ok(p) => p,
                Err(message) => {
                    // Only fatal if another line follows: a torn tail is a crash, not corruption.
                    pending_error = Some(Error::BadRecord {
                        path: path.to_path_buf(),
                        line: index + 1,
                        message,
                    });
                    continue;
                }
            };
            if run.projid.is_empty() {
                run.projid = parsed.projid.clone().unwrap_or_default();
                run.tstamp = parsed.tstamp.clone().unwrap_or_default();
                run.filename = parsed.filename.clone().unwrap_or_default();
            }
            if parsed.kind == Kind::Meta {
                own_format = true;
                run.apply_meta(&parsed.name, &parsed.value);
            } else {
                run.records.push(parsed);
            }
        }
        if own_format && !matches!(run.status, FileStatus::Failed(_)) && run.end.is_none() {
            run.status = FileStatus::Open;
        }
        if run.tstamp.is_empty() {
            run.tstamp = run.run_id.clone();
        }
        Ok(run)
    }

    fn apply_meta(&mut self, name: &str, value: &Value) {
        let Value::Json(json) = value else { return };
        let text = |key: &str| json.get(key).and_then(|v| v.as_str()).map(str::to_string);
        match name {
            meta::RUN => {
                self.script = text("script");
                self.name = text("name");
                self.python = text("python");
                self.cwd = text("cwd");
                self.host = text("host");
                self.argv = json.get("argv").map(|v| v.to_string());
                self.pid = json.get("pid").and_then(|v| v.as_i64());
                self.start = json.get("start").and_then(|v| v.as_f64());
            }
            meta::VERSION => {
                self.version = text("commit");
                self.branch = text("branch");
            }
            meta::REPLAY => self.provenance = Some(json.clone()),
            meta::ENV => self.env = Some(json.clone()),
            meta::START => self.starts.push(json.clone()),
            meta::END => {
                self.end = json.get("end").and_then(|v| v.as_f64());
                let code = json.get("exit_code").and_then(|v| v.as_i64()).unwrap_or(0);
                self.status = match json.get("status").and_then(|v| v.as_str()) {
                    Some("finished") => FileStatus::Finished,
                    _ => FileStatus::Failed(code),
                };
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flordb_files_read_as_finished_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("2026-11-27T01:05:08.862043.jsonl");
        std::fs::write(
            &path,
            concat!(
                r#"{"projid": "p", "tstamp": "2026-11-27T01:05:08.862043", "filename": "train.py", "ctx": null, "name": "lr", "value": 0.01, "type": 1}"#,
                "\n",
                r#"{"projid": "p", "tstamp": "2026-11-27T01:05:08.862043", "filename": "train.py", "ctx": [{"name": "epoch", "iteration": 0, "value": "0"}], "name": "acc", "value": 0.5, "type": 1}"#,
                "\n"
            ),
        )
        .unwrap();
        let run = RunFile::read(&path).unwrap();
        assert_eq!(run.status, FileStatus::Finished);
        assert_eq!(run.records.len(), 2);
        assert_eq!(run.filename, "train.py");
        assert_eq!(run.run_id, "2026-11-27T01:05:08.862043");
    }

    #[test]
    fn named_runs_keep_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let header = r#"{"projid": "p", "tstamp": "t", "filename": "f", "ctx": null, "name": "flor::run", "value": {"pid": 1, "name": "EpicDemo"}, "type": 0}"#;
        std::fs::write(&path, format!("{header}\n")).unwrap();
        assert_eq!(
            RunFile::read(&path).unwrap().name.as_deref(),
            Some("EpicDemo")
        );
    }

    #[test]
    fn torn_last_line_is_dropped_but_corruption_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let good = r#"{"projid": "p", "tstamp": "t", "filename": "f", "ctx": null, "name": "flor::run", "value": {"pid": 1}, "type": 0}"#;
        let path = dir.path().join("r.jsonl");
        std::fs::write(&path, format!("{good}\n{{\"projid\": \"p\", \"tst")).unwrap();
        let run = RunFile::read(&path).unwrap();
        assert_eq!(run.status, FileStatus::Open);
        std::fs::write(&path, format!("{{garbage\n{good}\n")).unwrap();
        let err = RunFile::read(&path).unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }
}
