//! The command line: argh definitions only. Each subcommand's help is what `iotad help`
//! prints and what the README quotes.

use std::path::PathBuf;

use argh::FromArgs;

use crate::export::Format;

/// iotad: an IoT network anomaly detector. It reads traffic with libpcap, keeps per-device
/// feature windows, and (with a model) flags devices that stop behaving like themselves.
#[derive(FromArgs, Debug)]
pub struct Cli {
    #[argh(subcommand)]
    pub command: Command,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum Command {
    Run(RunArgs),
    Config(ConfigArgs),
    Features(FeaturesArgs),
    Replay(ReplayArgs),
    Synth(SynthArgs),
    Train(TrainArgs),
    Quantize(QuantizeArgs),
    Eval(EvalArgs),
    Bench(BenchArgs),
    Tune(TuneArgs),
}

/// Watch a live interface: learn each device, score its windows, write events (the daemon).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "run")]
pub struct RunArgs {
    /// configuration file (JSON; default /etc/iotad/config.json when it exists); the flags
    /// below override it
    #[argh(option, short = 'c')]
    pub config: Option<PathBuf>,
    /// interface to capture on (default: the interface of the default route)
    #[argh(option, short = 'i')]
    pub interface: Option<String>,
    /// JSON-lines event log (- for standard output)
    #[argh(option)]
    pub events: Option<PathBuf>,
    /// state file: learned state is restored from it and checkpointed to it
    #[argh(option)]
    pub state: Option<PathBuf>,
    /// model file (GGUF or safetensors; default: the built-in model)
    #[argh(option)]
    pub model: Option<PathBuf>,
    /// windows of learning after the first (default 360: an hour)
    #[argh(option)]
    pub learning_windows: Option<u32>,
    /// CPU core to pin the capture thread to
    #[argh(option)]
    pub core: Option<usize>,
    /// MAC address of a gateway (repeatable); others are detected from traffic
    #[argh(option)]
    pub gateway: Vec<String>,
}

/// Print an example configuration, check one, or list every key.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "config")]
pub struct ConfigArgs {
    /// print a full configuration file with every key, its default and what it means
    #[argh(switch)]
    pub example: bool,
    /// check a configuration file: exit 0 when valid, else the key that is wrong
    #[argh(option)]
    pub check: Option<PathBuf>,
    /// print every key as a Markdown table (the README's)
    #[argh(switch)]
    pub markdown: bool,
    /// print one key's value (such as http.bind) in the file --check names, or the defaults
    #[argh(option)]
    pub get: Option<String>,
}

/// Write one row of features per device and window (the model's training data).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "features")]
pub struct FeaturesArgs {
    /// capture files (pcap or pcapng; - reads standard input); each is cut into windows on
    /// its own
    #[argh(positional)]
    pub captures: Vec<PathBuf>,
    /// output file (default: standard output)
    #[argh(option, short = 'o')]
    pub out: Option<PathBuf>,
    /// output format: csv (default) or jsonl
    #[argh(option, default = "Format::Csv")]
    pub format: Format,
    /// BPF filter applied while reading (tcpdump syntax)
    #[argh(option)]
    pub filter: Option<String>,
    /// configuration file (JSON); flags below override it
    #[argh(option, short = 'c')]
    pub config: Option<PathBuf>,
    /// window length in seconds (default 10)
    #[argh(option)]
    pub window_secs: Option<u32>,
    /// MAC address of a gateway (repeatable); others are detected from traffic
    #[argh(option)]
    pub gateway: Vec<String>,
    /// print counters and peak memory to stderr at the end
    #[argh(switch)]
    pub stats: bool,
    /// print the feature table (Markdown) and exit
    #[argh(switch)]
    pub list: bool,
}

/// Run captures through the offline pipeline and summarize every device found.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "replay")]
pub struct ReplayArgs {
    /// capture files (pcap or pcapng; - reads standard input)
    #[argh(positional)]
    pub captures: Vec<PathBuf>,
    /// BPF filter applied while reading (tcpdump syntax)
    #[argh(option)]
    pub filter: Option<String>,
    /// configuration file (JSON); flags below override it
    #[argh(option, short = 'c')]
    pub config: Option<PathBuf>,
    /// window length in seconds (default 10)
    #[argh(option)]
    pub window_secs: Option<u32>,
    /// MAC address of a gateway (repeatable); others are detected from traffic
    #[argh(option)]
    pub gateway: Vec<String>,
    /// print JSON lines instead: every event, every device, then a summary record per
    /// capture
    #[argh(switch)]
    pub json: bool,
    /// the model to score windows with (default: the built-in one); its alerts are listed
    /// before the device table
    #[argh(option, short = 'm')]
    pub model: Option<PathBuf>,
    /// step the model in f32 (a Q8_0 model's weights dequantized) instead of Q8_0
    #[argh(switch)]
    pub f32: bool,
    /// only summarize the devices, without scoring
    #[argh(switch)]
    pub no_model: bool,
    /// windows after the start during which thresholds are learned and nothing alerts
    /// (default 360, one hour of 10-s windows)
    #[argh(option, default = "360")]
    pub learning_windows: u32,
    /// what the detector learned: restored from this file when it exists, saved to it
    /// (atomically) after each capture, so a later run does not learn again
    #[argh(option)]
    pub state: Option<PathBuf>,
}

/// Write a synthetic capture of a small home network, with attacks injected on request.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "synth")]
pub struct SynthArgs {
    /// output pcap file (required unless --list-devices)
    #[argh(option, short = 'o')]
    pub out: Option<PathBuf>,
    /// random seed: the same seed writes the same file
    #[argh(option, default = "1")]
    pub seed: u64,
    /// length of the capture in seconds (default 3600)
    #[argh(option, default = "3600")]
    pub duration: u64,
    /// number of devices (default 6: camera, plug, hub, phone, and more of each)
    #[argh(option, default = "6")]
    pub devices: usize,
    /// stop after this many packets (the capture is then shorter than --duration)
    #[argh(option)]
    pub packets: Option<u64>,
    /// inject an attack: KIND@SECONDS[+DURATION]:MAC, KIND one of portscan, synflood,
    /// udpflood, telnet-brute, dns-tunnel, arp-scan, fin-scan, null-scan, xmas-scan, ack-scan
    /// (one probe every 20 s, no SYN), ftp-brute, ssh-brute (port 2222, bursts every 2
    /// minutes), miner (a pool on port 3333); SECONDS from the capture's start;
    /// DURATION in seconds (default 60); MAC of a synthesized device (see --list-devices);
    /// the victim is the next device (repeatable)
    #[argh(option)]
    pub attack: Vec<String>,
    /// write the ground truth (what was sent, per device and window) as JSON to this file
    #[argh(option)]
    pub truth: Option<PathBuf>,
    /// print the synthesized devices (MAC, IP, kind) and exit
    #[argh(switch)]
    pub list_devices: bool,
}

/// Train the LSTM+RNN on captures or feature CSVs of normal traffic; writes a model file.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "train")]
pub struct TrainArgs {
    /// capture files of normal traffic (pcap or pcapng)
    #[argh(positional)]
    pub captures: Vec<PathBuf>,
    /// feature CSV files written by `iotad features` to train on (repeatable)
    #[argh(option)]
    pub csv: Vec<PathBuf>,
    /// the model file to write (safetensors)
    #[argh(option, short = 'o')]
    pub out: PathBuf,
    /// fine-tune this model instead of starting from scratch (its standardization, and what
    /// a new device is held to, are kept)
    #[argh(option)]
    pub base: Option<PathBuf>,
    /// random seed: the same data and seed give the same model (default 1)
    #[argh(option, default = "1")]
    pub seed: u64,
    /// most passes over the data; training stops earlier when validation stops improving
    /// (default 30)
    #[argh(option, default = "30")]
    pub epochs: u32,
    /// LSTM hidden size (default 64)
    #[argh(option, default = "64")]
    pub lstm: usize,
    /// RNN hidden size (default 32)
    #[argh(option, default = "32")]
    pub rnn: usize,
    /// window length in seconds, when training on captures (default 10)
    #[argh(option)]
    pub window_secs: Option<u32>,
}

/// Write a model as GGUF with quantized weight matrices, and report how closely its scores
/// follow the f32 model's on a synthesized network with attacks.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "quantize")]
pub struct QuantizeArgs {
    /// the f32 model (safetensors, as `iotad train` writes it)
    #[argh(option, short = 'm')]
    pub model: PathBuf,
    /// the GGUF file to write
    #[argh(option, short = 'o')]
    pub out: PathBuf,
    /// q8_0 (default) or q4_0
    #[argh(option, default = "String::from(\"q8_0\")")]
    pub r#type: String,
}

/// Measure detection on labelled captures (a MANIFEST.json like ../shared/data's), for the
/// model and a z-score baseline.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "eval")]
pub struct EvalArgs {
    /// the manifest of labelled captures
    #[argh(positional)]
    pub manifest: PathBuf,
    /// the model to evaluate (default: the built-in one)
    #[argh(option, short = 'm')]
    pub model: Option<PathBuf>,
    /// step the model in f32 (a Q8_0 model's weights dequantized) instead of Q8_0
    #[argh(switch)]
    pub f32: bool,
    /// only captures whose file name contains this
    #[argh(option)]
    pub only: Option<String>,
    /// learning windows per capture (default: the benign prefix before the first attack, or
    /// the first day of a benign capture; none when the attack starts at once: its devices
    /// are then all new)
    #[argh(option)]
    pub learning_windows: Option<u32>,
    /// instead of detection figures, how closely this other model's scores and alerts follow
    /// the model's on every capture (e.g. a quantized GGUF against the f32 model)
    #[argh(option)]
    pub compare: Option<PathBuf>,
    /// fine-tune the model on each capture's learning period first (as `iotad train --base`
    /// on a Pi's own windows does), then evaluate the fine-tuned model
    #[argh(switch)]
    pub finetune: bool,
    /// a ground-truth filter that does not parse is a warning, not an error: every packet
    /// its attacker sends during the attack counts then
    #[argh(switch)]
    pub lenient: bool,
    /// print JSON instead of a table
    #[argh(switch)]
    pub json: bool,
    /// print the table as Markdown, headed by the model's name, the date and the number of
    /// captures (the README's evaluation table: `make readme-eval`)
    #[argh(switch)]
    pub markdown: bool,
}

/// Measure the pipeline's speed and memory on a capture (a synthesized one by default).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "bench")]
pub struct BenchArgs {
    /// capture to measure (default: synthesize one of --packets packets)
    #[argh(positional)]
    pub capture: Option<PathBuf>,
    /// packets in the synthesized capture (default 1000000)
    #[argh(option, default = "1_000_000")]
    pub packets: u64,
    /// devices in the synthesized capture (default 256)
    #[argh(option, default = "256")]
    pub devices: usize,
    /// timed repetitions of each measurement; the best is reported (default 3)
    #[argh(option, default = "3")]
    pub repeat: u32,
    /// instead, live capture: make a veth pair, capture one end as `iotad run` does and
    /// inject the capture's frames into the other at rising rates; print the highest rate
    /// with no kernel drop (needs root)
    #[argh(switch)]
    pub live: bool,
    /// seconds of injection per rate with --live (default 2)
    #[argh(option, default = "2.0")]
    pub live_secs: f64,
}

/// Tune the Pi for capture (CPU governor, the NIC's IRQ affinity), undo it, or show the plan.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "tune")]
pub struct TuneArgs {
    /// print what would be changed and the temperature and throttling (the default)
    #[argh(switch)]
    pub dry_run: bool,
    /// apply the plan and record what changed in the state file
    #[argh(switch)]
    pub apply: bool,
    /// put back every value the last --apply changed
    #[argh(switch)]
    pub restore: bool,
    /// configuration file (its capture and tune sections; default /etc/iotad/config.json
    /// when it exists)
    #[argh(option, short = 'c')]
    pub config: Option<PathBuf>,
    /// where /sys and /proc are looked for (default /)
    #[argh(option)]
    pub root: Option<PathBuf>,
    /// the record of what --apply changed (default /run/iotad/tune.json)
    #[argh(option)]
    pub state: Option<PathBuf>,
    /// the capture interface whose IRQs are moved (default: the configured one, else the
    /// interface of the default route)
    #[argh(option, short = 'i')]
    pub interface: Option<String>,
    /// CPU frequency governor to set (default performance)
    #[argh(option)]
    pub governor: Option<String>,
    /// CPU the NIC's interrupts go to
    #[argh(option)]
    pub irq_cpu: Option<usize>,
}
