//! `flor capture --preview | --extract`: metrics from the lines runs printed, with no
//! replay (`flor_core::extract`), and `flor run`, which records a script that does not
//! import flordb (the Python package runs it; this binary hands it over).

use std::path::Path;

use anyhow::{Context, Result};
use clap::Args;

use flor_core::extract::{self, RunExtraction};
use flor_core::store::Store;

#[derive(Debug, Args)]
pub(crate) struct CaptureArgs {
    /// Show what each run's captured lines give, writing nothing (the default).
    #[arg(long, conflicts_with = "extract")]
    preview: bool,
    /// Write the values as `source = extract` rows, replacing earlier extractions.
    #[arg(long)]
    extract: bool,
    /// Values shown per run with --preview.
    #[arg(long, default_value_t = 5, value_name = "N")]
    show: usize,
}

pub(crate) fn capture(start: &Path, args: &CaptureArgs) -> Result<i32> {
    let store = Store::discover(start).context("cannot open the FlorDB store")?;
    let runs = if args.extract {
        extract::extract(&store)?
    } else {
        extract::preview(&store)?
    };
    if runs.is_empty() {
        eprintln!(
            "flor capture: no run has captured output (runs record what they print unless FLOR_CAPTURE=0)"
        );
        return Ok(1);
    }
    for run in &runs {
        println!("{}", summary(run));
        if !args.extract {
            for (ctx, name, value) in run.records.iter().take(args.show) {
                let place: Vec<String> = ctx
                    .iter()
                    .map(|s| format!("{}={}", s.name, s.iteration.unwrap_or_default()))
                    .collect();
                println!("    {:<24} {name} = {}", place.join(" "), value.display());
            }
        }
    }
    let values: usize = runs.iter().map(|r| r.records.len()).sum();
    if args.extract {
        println!(
            "wrote {values} value(s) of {} run(s) as source = extract (flor.dataframe(NAME) shows them; `flor unpack` drops them)",
            runs.iter().filter(|r| !r.records.is_empty()).count()
        );
    } else {
        println!("{values} value(s) in all; nothing written (--extract writes them)");
    }
    Ok(if values == 0 { 1 } else { 0 })
}

fn summary(run: &RunExtraction) -> String {
    let names = run.names();
    format!(
        "run {}: {} of {} captured line(s) matched{}",
        run.run_id,
        run.matched,
        run.lines,
        if names.is_empty() {
            String::new()
        } else {
            format!(": {} value(s) of {}", run.records.len(), names.join(", "))
        }
    )
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The script, then its own arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "SCRIPT [ARGS]"
    )]
    command: Vec<String>,
}

/// Hands `flor run` to the Python package, which runs the script under the recorder.
pub(crate) fn run(args: &RunArgs) -> Result<i32> {
    let python = std::env::var("FLORDB_PYTHON").unwrap_or_else(|_| "python3".into());
    let status = std::process::Command::new(&python)
        .args(["-m", "flordb", "run"])
        .args(&args.command)
        .status()
        .with_context(|| format!("cannot start {python} (set FLORDB_PYTHON to the interpreter flordb is installed in)"))?;
    Ok(status.code().unwrap_or(1))
}
