//! Temporary driver for `flor propagate` until the subcommand is wired into the `flor` binary:
//! `cargo run -p flor-cli --example propagate -- --stmt NAME --from NEW.py --to OLD.py`.

#[path = "../src/propagate.rs"]
mod propagate;

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: propagate::PropagateArgs,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match propagate::run(&cli.args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flor: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
