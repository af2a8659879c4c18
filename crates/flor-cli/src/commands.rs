//! One function per command; each opens the store, asks the engine, prints.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use flor_core::pivot::{self, Column, ColumnData, Frame};
use flor_core::record::Value;
use flor_core::store::{RunInfo, Store};

use crate::output;
use crate::Command;

/// How tables are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for reading.
    Table,
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON object per row, in a JSON array.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct RunsArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct DataframeArgs {
    /// Logged names to show; none shows the run table (every run with its args and
    /// run-level values).
    #[arg(value_name = "NAME")]
    names: Vec<String>,
    /// Keep only rows where this SQL condition holds, over the table's columns
    /// (e.g. "lr < 0.01 and epoch = 4").
    #[arg(long = "where", value_name = "SQL")]
    where_clause: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Print every row of a long table instead of its head and tail.
    #[arg(long)]
    all: bool,
}

#[derive(Debug, Args)]
pub(crate) struct QueryArgs {
    /// The SQL statement. Use ? placeholders with --param for values.
    sql: String,
    /// A value for the next ? placeholder (numbers are bound as numbers).
    #[arg(long = "param", value_name = "VALUE")]
    params: Vec<String>,
    /// Allow statements that modify the cache (it is rebuilt by `flor unpack`).
    #[arg(long)]
    write: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Print every row of a long table instead of its head and tail.
    #[arg(long)]
    all: bool,
}

#[derive(Debug, Args)]
pub(crate) struct UnpackArgs {
    /// First write back the run files that were deleted here but that git still holds
    /// (refs/flor/runs/<run>).
    #[arg(long)]
    restore: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CheckpointsArgs {
    /// The run (its run_id, tstamp or --flor name; default: the newest run).
    run: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

pub(crate) fn dispatch(project: Option<PathBuf>, command: Command) -> Result<i32> {
    let start = match project {
        Some(p) => p,
        None => std::env::current_dir().context("cannot read the current directory")?,
    };
    let open = || Store::discover(&start).context("cannot open the FlorDB store");
    match command {
        Command::Runs(args) => {
            let runs = open()?.runs()?;
            let frame = runs_frame(&runs);
            print_frame(&frame, args.format, true)?;
            Ok(0)
        }
        Command::Dataframe(args) => {
            let store = open()?;
            let names: Vec<&str> = args.names.iter().map(String::as_str).collect();
            let mut frame = pivot::dataframe(&store, &names)?;
            if let Some(clause) = &args.where_clause {
                frame = pivot::filter(&frame, clause)?;
            }
            print_frame(&frame, args.format, args.all)?;
            Ok(if frame.is_empty() { 1 } else { 0 })
        }
        Command::Query(args) => {
            let params: Vec<Value> = args.params.iter().map(|p| parse_param(p)).collect();
            let result = open()?.query(&args.sql, &params, args.write)?;
            let frame = rows_frame(&result.columns, result.rows);
            print_frame(&frame, args.format, args.all)?;
            Ok(0)
        }
        Command::Checkpoints(args) => {
            let store = open()?;
            let runs = store.runs()?;
            let run = match &args.run {
                Some(wanted) => runs.iter().find(|r| {
                    r.run_id == *wanted || r.tstamp == *wanted || r.name.as_deref() == Some(wanted)
                }),
                None => runs.last(),
            }
            .with_context(|| match &args.run {
                Some(w) => format!("no recorded run {w:?} in this project (flor runs lists them)"),
                None => "no recorded run in this project".to_string(),
            })?;
            let manifests = flor_core::ckpt::list(&store.layout().flor_dir(), &run.run_id)?;
            if manifests.is_empty() {
                eprintln!(
                    "run {} has no checkpoints here (recorded without flor.checkpointing, or they stay on the machine that recorded it)",
                    run.run_id
                );
                return Ok(1);
            }
            print_frame(&checkpoints_frame(&manifests), args.format, true)?;
            Ok(0)
        }
        Command::Unpack(args) => {
            let store = open()?;
            if args.restore {
                let restored = store.restore_from_git()?;
                println!(
                    "restored {} run file(s) from git{}",
                    restored.len(),
                    if restored.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", restored.join(", "))
                    }
                );
            }
            let db = store.layout().db_path();
            let report = store.unpack()?;
            println!(
                "rebuilt {} from {} run file(s): {} record(s)",
                db.display(),
                report.imported,
                report.records
            );
            Ok(0)
        }
        Command::Stat => stat(&start),
        Command::Propagate(args) => crate::propagate::run(&args),
        Command::Replay(args) => crate::replay::run(&start, &args),
        Command::Capture(args) => crate::capture::capture(&start, &args),
        Command::Run(args) => crate::capture::run(&args),
    }
}

fn print_frame(frame: &Frame, format: Format, all: bool) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match format {
        Format::Table => output::table(frame, all, &mut out)?,
        Format::Csv => output::csv(frame, &mut out)?,
        Format::Json => output::json(frame, &mut out)?,
    }
    out.flush()?;
    Ok(())
}

/// A --param value: a number when it reads as one, else text.
fn parse_param(text: &str) -> Value {
    if let Ok(i) = text.parse::<i64>() {
        Value::Int(i)
    } else if let Ok(f) = text.parse::<f64>() {
        Value::Float(f)
    } else {
        Value::Str(text.to_string())
    }
}

fn runs_frame(runs: &[RunInfo]) -> Frame {
    let start = RunInfo::COLUMNS.iter().position(|c| *c == "start");
    let rows = runs
        .iter()
        .map(|r| {
            let mut row = r.to_row();
            if let (Some(i), Some(t)) = (start, r.start) {
                row[i] = Value::Str(flor_core::record::local_time(t));
            }
            row
        })
        .collect();
    let columns: Vec<String> = RunInfo::COLUMNS.iter().map(|c| c.to_string()).collect();
    rows_frame(&columns, rows)
}

/// One row per checkpoint: where, what it holds, and the loop-carried state it saved.
fn checkpoints_frame(manifests: &[flor_core::ckpt::Manifest]) -> Frame {
    use flor_core::ckpt::Point;
    let columns: Vec<String> = [
        "loop",
        "iteration",
        "point",
        "objects",
        "raw_bytes",
        "carried",
    ]
    .iter()
    .map(|c| c.to_string())
    .collect();
    let rows = manifests
        .iter()
        .map(|m| {
            let point = match m.point {
                Point::End => "end".to_string(),
                Point::Nested => format!("nested{}", m.index),
            };
            let objects: Vec<&str> = m.objects.iter().map(|o| o.name.as_str()).collect();
            let carried = match &m.carried {
                None if m.point == Point::End => "(not saved by this FlorDB version)".to_string(),
                None => String::new(),
                Some(c) => c
                    .iter()
                    .map(|c| match &c.note {
                        Some(note) if c.how == "failed" => format!("{}: failed ({note})", c.path),
                        _ => format!("{}: {}", c.path, c.how),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            vec![
                Value::Str(m.loop_name.clone()),
                Value::Int(m.iteration),
                Value::Str(point),
                Value::Str(objects.join(", ")),
                Value::Int(m.raw_bytes as i64),
                Value::Str(carried),
            ]
        })
        .collect();
    rows_frame(&columns, rows)
}

fn rows_frame(columns: &[String], rows: Vec<Vec<Value>>) -> Frame {
    let mut per_column: Vec<Vec<Value>> = vec![Vec::with_capacity(rows.len()); columns.len()];
    for row in rows {
        for (i, v) in row.into_iter().enumerate() {
            per_column[i].push(v);
        }
    }
    Frame {
        columns: columns
            .iter()
            .zip(per_column)
            .map(|(name, vals)| Column {
                name: name.clone(),
                data: ColumnData::from_values(vals),
            })
            .collect(),
    }
}

fn stat(start: &std::path::Path) -> Result<i32> {
    println!("flordb: {}", env!("CARGO_PKG_VERSION"));
    println!("architecture: {}", std::env::consts::ARCH);
    println!("operating_system: {}", std::env::consts::OS);
    if let Ok(v) = std::env::var("FLOR_PYTHON_VERSION") {
        println!("python_version: {v}");
    }
    match flor_core::store::find_root(start) {
        Some(root) => {
            let store = Store::open(&root)?;
            let runs = store.runs()?;
            let db = std::fs::metadata(store.layout().db_path())
                .map(|m| m.len())
                .unwrap_or(0);
            println!("project: {}", root.display());
            println!("runs: {}", runs.len());
            println!("records: {}", runs.iter().map(|r| r.records).sum::<i64>());
            println!("cache_bytes: {db}");
        }
        None => println!("project: none (no .git or .flor here or above)"),
    }
    Ok(0)
}
