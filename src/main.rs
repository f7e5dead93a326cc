//! The `iotad` binary: parses the command line and hands each subcommand to its function.

use std::process::ExitCode;

use iotad::cli::{Cli, Command};
use iotad::{bench, commands, synth};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli: Cli = argh::from_env();
    let result = match cli.command {
        Command::Features(a) => commands::features(a),
        Command::Replay(a) => commands::replay(a),
        Command::Synth(a) => synth::command(a),
        Command::Bench(a) => bench::command(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("iotad: {e}");
            ExitCode::FAILURE
        }
    }
}
