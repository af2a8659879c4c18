//! `flor propagate`: show where today's log statements go in an old version of a script.
//!
//! Prints the placement as a unified diff against the old file on stdout, and one line per
//! statement on stderr (placed, already present, or why it cannot be placed). The old file itself
//! is never written. Exit status: 0 when every statement is placed or present, 1 when some cannot
//! be placed, 2 on errors (through `anyhow` in the caller).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use flor_core::analyze::{self, Outcome};

/// Place today's flor.log statements into an old version of the script.
#[derive(Debug, Clone, clap::Args)]
pub struct PropagateArgs {
    /// Carry the statement logging NAME (or the one starting on line N, as @N); repeatable.
    #[arg(long = "stmt", value_name = "NAME", required = true)]
    pub stmts: Vec<String>,
    /// Read today's script, which holds the statements, from NEW.
    #[arg(long, value_name = "NEW")]
    pub from: PathBuf,
    /// Read the old version to place them into from OLD.
    #[arg(long, value_name = "OLD")]
    pub to: PathBuf,
}

/// What `flor propagate` prints: the diff (stdout), the per-statement report (stderr), the status.
#[derive(Debug)]
pub struct Report {
    pub diff: String,
    pub notes: String,
    pub all_placed: bool,
}

/// Propagates and renders, without printing.
pub fn report(args: &PropagateArgs) -> anyhow::Result<Report> {
    let read = |p: &PathBuf| {
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
    };
    let (new_src, old_src) = (read(&args.from)?, read(&args.to)?);
    let stmts: Vec<&str> = args.stmts.iter().map(String::as_str).collect();
    let result = analyze::propagate(&new_src, &old_src, &stmts)
        .with_context(|| format!("cannot propagate from {}", args.from.display()))?;
    let diff = if result.source == old_src {
        String::new()
    } else {
        result.diff(&old_src, &args.to.display().to_string())
    };
    let mut notes = String::new();
    for outcome in &result.outcomes {
        notes.push_str(&outcome.to_string());
        notes.push('\n');
    }
    let all_placed = result
        .outcomes
        .iter()
        .all(|o| !matches!(o, Outcome::CannotPlace { .. }));
    Ok(Report {
        diff,
        notes,
        all_placed,
    })
}

/// Runs `flor propagate`.
/// Prints the diff (stdout) and one line per statement (stderr); returns the exit
/// code: 0 when every statement is placed or already present, 1 otherwise.
pub fn run(args: &PropagateArgs) -> anyhow::Result<i32> {
    let report = report(args)?;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out
        .write_all(report.diff.as_bytes())
        .and_then(|()| out.flush())
    {
        // A closed pipe (`| head`) is not an error worth reporting.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e).context("cannot write the diff");
        }
    }
    eprint!("{}", report.notes);
    Ok(if report.all_placed { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_and_notes() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new.py");
        let old = dir.path().join("old.py");
        std::fs::write(
            &new,
            "import flor\nfor e in flor.loop('epoch', range(2)):\n    step(model)\n    flor.log('w', model.w)\n    flor.log('g', g)\n",
        )
        .unwrap();
        std::fs::write(
            &old,
            "import flor\nfor e in flor.loop('epoch', range(2)):\n    step(net)\n",
        )
        .unwrap();
        let args = PropagateArgs {
            stmts: vec!["w".into(), "g".into()],
            from: new,
            to: old.clone(),
        };
        let r = report(&args).unwrap();
        assert!(r.diff.contains("+    flor.log('w', net.w)\n"), "{}", r.diff);
        assert!(
            r.diff.starts_with(&format!("--- {}", old.display())),
            "{}",
            r.diff
        );
        assert_eq!(
            r.notes,
            "w: placed at line 4\ng: cannot place: free variable \"g\" has no counterpart in this version\n"
        );
        assert!(!r.all_placed);
    }
}
