//! The `iotad` binary: parses the command line and hands each subcommand to its function.

use std::process::ExitCode;

use argh::FromArgs;
use iotad::cli::{Cli, Command};
use iotad::{bench, capture, commands, synth};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    // argh reads a lone "-" as an unknown flag: pass standard input by its path instead
    let args: Vec<String> = std::env::args()
        .map(|a| {
            if a == "-" {
                capture::STDIN.to_string()
            } else {
                a
            }
        })
        .collect();
    let cmd = std::path::Path::new(&args[0])
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("iotad");
    let rest: Vec<&str> = args[1..].iter().map(String::as_str).collect();
    let cli = match Cli::from_args(&[cmd], &rest) {
        Ok(cli) => cli,
        Err(early) => {
            return match early.status {
                Ok(()) => {
                    println!("{}", early.output);
                    ExitCode::SUCCESS
                }
                Err(()) => {
                    eprintln!("{}\nRun {cmd} --help for more information.", early.output);
                    ExitCode::from(2)
                }
            };
        }
    };
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
