//! The `flor` command line: the definition of its commands plus glue over `flor-core`.
//! The same code runs as the `flor` binary and inside Python (`python -m flordb`, and
//! the `flor` script the Python package installs).
//!
//! Exit codes: 0 success, 1 the command ran but found nothing or something failed,
//! 2 a usage or engine error.

mod capture;
mod commands;
mod output;
pub mod propagate;
pub mod replay;

use std::ffi::OsString;

use clap::{Parser, Subcommand};

pub use commands::Format;

/// FlorDB: hindsight logging for machine learning. Query every run of every version of
/// a training script as one table.
#[derive(Debug, Parser)]
#[command(name = "flor", version, propagate_version = true)]
pub struct Cli {
    /// The project folder (default: the current directory or the repository around it).
    #[arg(short = 'C', long = "project", global = true, value_name = "DIR")]
    project: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List every recorded run with its script, version, status and duration.
    Runs(commands::RunsArgs),
    /// Show logged values of every run as one pivoted table.
    Dataframe(commands::DataframeArgs),
    /// Run SQL on the query cache (tables runs, records, names, ctxs, replays; view logs).
    Query(commands::QueryArgs),
    /// List one run's checkpoints: objects, size, and the loop-carried state each saved.
    Checkpoints(commands::CheckpointsArgs),
    /// Rebuild the query cache from the run files in .flor/runs/.
    Unpack(commands::UnpackArgs),
    /// Show the environment and the store's size, for bug reports.
    Stat,
    /// Show where today's log statements go in an old version of a script.
    Propagate(propagate::PropagateArgs),
    /// Replay past runs to fill in values of log statements added to today's script.
    Replay(replay::ReplayArgs),
    /// Turn metrics that runs printed (`epoch 3 | loss: 0.12`) into values, with no replay.
    Capture(capture::CaptureArgs),
    /// Record a script that does not import flordb: `flor run train.py ARGS...`.
    Run(capture::RunArgs),
}

/// Runs the command line on `argv` (program name first) and returns the exit code.
pub fn run<I, T>(argv: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() { 2 } else { 0 };
            let _ = err.print();
            return code;
        }
    };
    match commands::dispatch(cli.project, cli.command) {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => 0,
        Err(err) => {
            eprintln!("flor: {err:#}");
            2
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_command_has_help() {
        Cli::command().debug_assert();
        for sub in Cli::command().get_subcommands() {
            assert!(sub.get_about().is_some(), "{} has no help", sub.get_name());
        }
    }
}
