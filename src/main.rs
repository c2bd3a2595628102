//! The `strata` binary: parses the command line and runs one command.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
