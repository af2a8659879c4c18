//! The `flor` binary.

fn main() {
    std::process::exit(flor_cli::run(std::env::args_os()));
}
