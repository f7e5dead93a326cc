//! The `iotad` binary: parses the command line and hands each subcommand to its function.

use std::process::ExitCode;

use argh::FromArgs;
use iotad::cli::{Cli, Command};
use iotad::{bench, capture, commands, daemon, synth, tune};

fn main() -> ExitCode {
    // candle runs single-threaded: the daemon's loop is pinned to one core, and without this
    // every f32 matmul re-reads /proc/cpuinfo and quantized matmuls spin a second core.
    // Set before candle's first use; an explicit setting in the environment wins.
    for var in ["RAYON_NUM_THREADS", "CANDLE_NUM_THREADS"] {
        if std::env::var_os(var).is_none() {
            std::env::set_var(var, "1");
        }
    }
    if std::env::args().nth(1).as_deref() != Some("run") {
        commands::end_quietly_on_a_closed_pipe();
    }
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
        Command::Run(a) => daemon::command(a),
        Command::Config(a) => commands::config_command(a),
        Command::Features(a) => commands::features(a),
        Command::Replay(a) => commands::replay(a),
        Command::Synth(a) => synth::command(a),
        Command::Train(a) => commands::train(a),
        Command::Quantize(a) => commands::quantize(a),
        Command::Eval(a) => commands::eval(a),
        Command::Bench(a) => bench::command(a),
        Command::Tune(a) => tune::command(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("iotad: {e}");
            ExitCode::FAILURE
        }
    }
}
