use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    regkit::interrupt::install();
    let cli = regkit::cli::Cli::parse();
    regkit::cli::run(cli)
}
