//! One short function per subcommand: read the options, wire the stages, report.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::cli::{FeaturesArgs, ReplayArgs, TrainArgs};
use crate::config::PipelineConfig;
use crate::detect::{DetectConfig, Detector};
use crate::device::{oui, Table};
use crate::engine::{self, Engine, Scored};
use crate::export::{Row, WindowWriter};
use crate::model::{self, train::Sequences, train::TrainConfig, Sizes};
use crate::pipeline::Pipeline;
use crate::window::features;

/// An error for the person at the terminal, and whether work was done before it.
pub type CmdResult = Result<(), String>;

/// Builds the configuration from a file and the flags that override it.
pub fn config(
    path: Option<&Path>,
    window_secs: Option<u32>,
    gateways: &[String],
) -> Result<PipelineConfig, String> {
    let mut cfg = PipelineConfig::load(path)?;
    if let Some(w) = window_secs {
        cfg.window_secs = w;
    }
    cfg.gateways.extend(gateways.iter().cloned());
    cfg.validate()?;
    Ok(cfg)
}

/// A closed standard output (`iotad features big.pcap | head -1`) ends an offline command
/// quietly, as it ends any Unix tool: SIGPIPE back to its default. Not for the daemon, whose
/// sockets must see EPIPE as an error instead.
pub fn end_quietly_on_a_closed_pipe() {
    // SAFETY: restoring a signal's default disposition has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// `iotad config`: the example file, a check, or the key table.
pub fn config_command(a: crate::cli::ConfigArgs) -> CmdResult {
    if let Some(key) = &a.get {
        let cfg = crate::config::Config::load(a.check.as_deref())?;
        let v = serde_json::to_value(&cfg).map_err(|e| e.to_string())?;
        let got = key
            .split('.')
            .try_fold(&v, |v, k| v.get(k))
            .ok_or_else(|| format!("no key {key:?}: `iotad config --markdown` lists them"))?;
        match got {
            serde_json::Value::String(s) => println!("{s}"),
            other => println!("{other}"),
        }
    } else if let Some(path) = &a.check {
        crate::config::Config::load(Some(path))?;
        println!("{}: valid", path.display());
    } else if a.markdown {
        print!("{}", crate::config::Config::markdown());
    } else if a.example {
        print!("{}", crate::config::Config::example());
    } else {
        return Err("say what to do: --example, --check FILE, --get KEY or --markdown".into());
    }
    Ok(())
}

fn need_captures(captures: &[PathBuf]) -> CmdResult {
    if captures.is_empty() {
        return Err(
            "no capture given: name one or more pcap/pcapng files, or - for standard input".into(),
        );
    }
    Ok(())
}

/// Runs every capture through a fresh engine (its detector from `detector`), showing each
/// scored window to `on`, then the finished engine (holding the capture's events) to `each`;
/// damaged captures are reported after all captures were processed.
fn for_each_capture(
    captures: &[PathBuf],
    filter: Option<&str>,
    cfg: &PipelineConfig,
    mut detector: impl FnMut() -> Result<Option<Detector>, String>,
    mut on: impl FnMut(&str, Scored<'_>) -> io::Result<()>,
    mut each: impl FnMut(&str, &mut Engine) -> CmdResult,
) -> CmdResult {
    let mut errors = Vec::new();
    for path in captures {
        let name = crate::capture::display_name(path);
        let mut write_err = None;
        let mut engine = Engine::new(cfg, crate::capture::LinkType::Ethernet, detector()?)?;
        let run = engine::run_file(&mut engine, path, filter, &mut |w| {
            if write_err.is_none() {
                write_err = on(&name, w).err();
            }
        });
        if let Some(e) = write_err {
            return Err(format!("cannot write output: {e}"));
        }
        match run {
            Ok(damage) => {
                each(&name, &mut engine)?;
                if let Some(d) = damage {
                    errors.push(d.to_string());
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

pub fn features(a: FeaturesArgs) -> CmdResult {
    if a.list {
        print!("{}", features::markdown_table());
        return Ok(());
    }
    need_captures(&a.captures)?;
    let cfg = config(a.config.as_deref(), a.window_secs, &a.gateway)?;
    // the output is written beside itself and replaces the old file only once something was
    // written: a missing or unreadable capture leaves an existing output as it was (a device
    // such as /dev/null is written in place)
    let tmp = match &a.out {
        Some(p) => {
            crate::files::refuse_overwriting_inputs(p, &a.captures)?;
            crate::files::temporary_beside(p)
        }
        None => None,
    };
    let target = tmp.as_deref().or(a.out.as_deref());
    let out: Box<dyn Write> = match target {
        Some(t) => Box::new(File::create(t).map_err(|e| {
            format!(
                "cannot create {}: {e}",
                a.out.as_deref().unwrap_or(t).display()
            )
        })?),
        None => Box::new(io::stdout().lock()),
    };
    let mut writer = WindowWriter::new(BufWriter::with_capacity(64 * 1024, out), a.format)
        .map_err(|e| format!("cannot write output: {e}"))?;
    let result = for_each_capture(
        &a.captures,
        a.filter.as_deref(),
        &cfg,
        || Ok(None),
        |name, w| {
            writer.write(&Row {
                capture: name,
                mac: w.device.mac,
                start_ns: w.start_ns,
                features: w.features,
            })
        },
        |name, e| {
            if a.stats {
                eprint!("{}", stats_text(name, e.pipeline()));
            }
            Ok(())
        },
    );
    let rows = writer.rows();
    let finished = writer
        .finish()
        .map_err(|e| format!("cannot write output: {e}"));
    if let (Some(t), Some(out)) = (&tmp, &a.out) {
        if finished.is_ok() && (result.is_ok() || rows > 0) {
            std::fs::rename(t, out).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
        } else {
            let _ = std::fs::remove_file(t);
        }
    }
    finished?;
    if a.stats {
        eprintln!("rows written: {rows}");
        if let Some(kb) = peak_rss_kb() {
            eprintln!("peak RSS: {kb} kB");
        }
    }
    result
}

/// Counters of one pipeline run, for stderr.
fn stats_text(name: &str, p: &Pipeline) -> String {
    let st = p.stats();
    let mut s = format!(
        "{name}: {} packets, {} devices seen, {} evicted, {} gateways, {} unattributed, {} windows",
        st.packets,
        p.table().stats().devices_seen,
        p.table().stats().evicted,
        p.table().gateways().len(),
        st.unattributed,
        p.windows().stats().closed,
    );
    let ws = p.windows().stats();
    if ws.late_packets > 0 || ws.skipped_windows > 0 {
        s += &format!(
            ", {} out-of-order packets, {} empty windows skipped",
            ws.late_packets, ws.skipped_windows
        );
    }
    s.push('\n');
    for (m, n) in st.malformed.iter() {
        s += &format!("  dropped {n} packets: {m}\n");
    }
    for (m, n) in st.damaged_upper.iter() {
        s += &format!("  kept {n} packets with damaged {m}\n");
    }
    s
}

/// The process's peak resident set (VmHWM), from /proc.
pub fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// One device's summary after a replay.
#[derive(serde::Serialize)]
struct DeviceSummary<'a> {
    kind: &'static str,
    capture: &'a str,
    mac: String,
    vendor: Option<&'a str>,
    name: &'a str,
    vendor_class: &'a str,
    ipv4: Vec<String>,
    ipv6: Vec<String>,
    packets_out: u64,
    packets_in: u64,
    first_seen: String,
    last_seen: String,
    /// Incidents the device opened (absent without a model).
    #[serde(skip_serializing_if = "Option::is_none")]
    alerts: Option<u64>,
}

pub fn replay(a: ReplayArgs) -> CmdResult {
    need_captures(&a.captures)?;
    let cfg = config(a.config.as_deref(), a.window_secs, &a.gateway)?;
    let model = if a.no_model {
        None
    } else {
        Some(model::file::load_for(a.model.as_deref(), a.f32)?)
    };
    if let Some(m) = &model {
        if m.meta.window_secs != cfg.window_secs {
            return Err(format!(
                "the model was trained on {}-s windows, the replay uses {}-s windows",
                m.meta.window_secs, cfg.window_secs
            ));
        }
    }
    let dcfg = DetectConfig {
        learning_windows: a.learning_windows,
        ..DetectConfig::default()
    };
    if let (Some(m), Some(path)) = (&model, &a.state) {
        // a broken state file is reported before any work
        Detector::new(m.clone(), dcfg.clone(), cfg.max_devices, cfg.window_ns()).restore(path)?;
    }
    let mut out = BufWriter::new(io::stdout().lock());
    let result = for_each_capture(
        &a.captures,
        a.filter.as_deref(),
        &cfg,
        // each capture gets a fresh detector: its own learning period and devices
        || {
            let Some(m) = &model else { return Ok(None) };
            let mut d = Detector::new(m.clone(), dcfg.clone(), cfg.max_devices, cfg.window_ns());
            if let Some(path) = &a.state {
                if path.exists() {
                    let n = d.restore(path)?;
                    log::info!("restored what {n} devices learned from {}", path.display());
                } else {
                    log::info!("no saved state at {}: starting fresh", path.display());
                }
            }
            Ok(Some(d))
        },
        |_, _| Ok(()),
        |name, engine| {
            let events: Vec<crate::detect::Event> = engine.drain_events().collect();
            if let Some(path) = &a.state {
                engine.checkpoint(path)?;
            }
            let learning = engine.detector().map(|d| {
                log::debug!("{name}: detector {:?}", d.stats());
                crate::report::Learning {
                    windows: a.learning_windows,
                    window_secs: cfg.window_secs,
                    ends_ns: d.learning_ends_ns(),
                    capture_end_ns: engine
                        .pipeline()
                        .table()
                        .devices()
                        .map(|(_, d)| d.last_seen_ns)
                        .max()
                        .unwrap_or(0),
                    scored: d.stats().windows,
                }
            });
            let write = |e: io::Error| format!("cannot write output: {e}");
            if a.json {
                for e in &events {
                    let line = serde_json::to_string(e).map_err(|e| e.to_string())?;
                    writeln!(out, "{line}").map_err(write)?;
                }
            } else {
                writeln!(out, "{name}:").map_err(write)?;
                if let Some(l) = &learning {
                    writeln!(out, "  {}", l.text()).map_err(write)?;
                    write!(out, "{}", crate::report::timeline(&events)).map_err(write)?;
                }
            }
            let alerts = model
                .as_ref()
                .map(|_| crate::report::alerts_per_device(&events));
            print_summary(
                &mut out,
                name,
                engine.pipeline(),
                &cfg,
                a.json,
                alerts.as_ref(),
            )
            .map_err(write)?;
            if a.json {
                let summary = crate::report::Summary {
                    kind: "summary",
                    capture: name,
                    packets: engine.pipeline().stats().packets,
                    devices: engine.pipeline().table().devices().count(),
                    learning_covers_capture: learning.is_some_and(|l| l.covers_capture()),
                    learning,
                    incidents_opened: events.iter().filter(|e| e.opens()).count() as u64,
                    open_at_end: crate::report::open_at_end(&events)
                        .iter()
                        .filter_map(|e| e.incident)
                        .collect(),
                    events: events.len(),
                };
                let line = serde_json::to_string(&summary).map_err(|e| e.to_string())?;
                writeln!(out, "{line}").map_err(write)?;
            }
            Ok(())
        },
    );
    out.flush()
        .map_err(|e| format!("cannot write output: {e}"))?;
    result
}

fn print_summary(
    out: &mut impl Write,
    name: &str,
    p: &Pipeline,
    cfg: &PipelineConfig,
    json: bool,
    alerts: Option<&std::collections::BTreeMap<String, u64>>,
) -> io::Result<()> {
    let table: &Table = p.table();
    let ouis: Vec<u32> = table.devices().map(|(_, d)| d.mac.oui()).collect();
    let vendors = oui::lookup(&cfg.oui_file, &ouis);
    let rows: Vec<DeviceSummary<'_>> = table
        .devices()
        .map(|(_, d)| DeviceSummary {
            kind: "device",
            capture: name,
            mac: d.mac.to_string(),
            vendor: vendors.get(&d.mac.oui()).map(String::as_str),
            name: d.identity.name(),
            vendor_class: &d.identity.vendor_class,
            ipv4: d.identity.ipv4.iter().map(|a| a.to_string()).collect(),
            ipv6: d.identity.ipv6.iter().map(|a| a.to_string()).collect(),
            packets_out: d.packets_out,
            packets_in: d.packets_in,
            first_seen: crate::export::Rfc3339(d.first_seen_ns).to_string(),
            last_seen: crate::export::Rfc3339(d.last_seen_ns).to_string(),
            alerts: alerts.map(|n| n.get(&d.mac.to_string()).copied().unwrap_or(0)),
        })
        .collect();
    if json {
        for r in &rows {
            writeln!(
                out,
                "{}",
                serde_json::to_string(r).map_err(io::Error::other)?
            )?;
        }
        return Ok(());
    }
    writeln!(out, "{}", stats_text(name, p).trim_end())?;
    let gws: Vec<String> = table.gateways().iter().map(|m| m.to_string()).collect();
    writeln!(
        out,
        "  gateways: {}",
        if gws.is_empty() {
            "none found".into()
        } else {
            gws.join(", ")
        }
    )?;
    writeln!(
        out,
        "  {:<17}  {:<15}  {:>9}  {:>9}  {:>6}  {:<20}  {:<24}  name",
        "device", "ipv4", "pkts out", "pkts in", "alerts", "first seen", "vendor"
    )?;
    for r in &rows {
        let vendor: String = r.vendor.unwrap_or("-").chars().take(24).collect();
        writeln!(
            out,
            "  {:<17}  {:<15}  {:>9}  {:>9}  {:>6}  {:<20}  {:<24}  {}",
            r.mac,
            r.ipv4.first().map(String::as_str).unwrap_or("-"),
            r.packets_out,
            r.packets_in,
            r.alerts
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into()),
            r.first_seen,
            vendor,
            if r.name.is_empty() { "-" } else { r.name }
        )?;
    }
    Ok(())
}

pub fn train(a: TrainArgs) -> CmdResult {
    if a.captures.is_empty() && a.csv.is_empty() {
        return Err("nothing to train on: name captures, or feature CSVs with --csv".into());
    }
    // sizes are checked before anything is built (candle panics on 0, and 100,000 asks for
    // 160 GB)
    if a.epochs == 0 {
        return Err("--epochs must be at least 1 (0 would write an untrained model)".into());
    }
    for (flag, v) in [("--lstm", a.lstm), ("--rnn", a.rnn)] {
        if !(1..=1024).contains(&v) {
            return Err(format!("{flag} must be 1 to 1024, not {v}"));
        }
    }
    // the output is checked before the hours of training: not an input, and writable
    let inputs: Vec<PathBuf> = a.captures.iter().chain(&a.csv).cloned().collect();
    crate::files::refuse_overwriting_inputs(&a.out, &inputs)?;
    crate::files::check_writable(&a.out)?;
    // the window length comes from the CSVs (a model labelled 10-s trained on 60-s rows
    // would judge every device wrongly): they must agree with each other and with
    // --window-secs
    let mut from_csv: Option<(u32, &Path)> = None;
    let mut seqs = Sequences::default();
    for csv in &a.csv {
        let more = Sequences::from_csv(csv)?;
        if let Some(w) = more.window_secs {
            match (from_csv, a.window_secs) {
                (Some((other, p)), _) if other != w => {
                    return Err(format!(
                        "{} holds {w}-s windows, {} holds {other}-s windows: train on one length",
                        csv.display(),
                        p.display()
                    ));
                }
                (_, Some(flag)) if flag != w => {
                    return Err(format!(
                        "{} holds {w}-s windows, not the {flag} s of --window-secs",
                        csv.display()
                    ));
                }
                _ => from_csv = Some((w, csv)),
            }
        }
        seqs.devices.extend(more.devices);
        seqs.sources.extend(more.sources);
    }
    let cfg = config(None, a.window_secs.or(from_csv.map(|(w, _)| w)), &[])?;
    let started = std::time::Instant::now();
    for path in &a.captures {
        let windows = engine::device_windows(path, &cfg, u64::MAX)?;
        seqs.push_capture(crate::capture::display_name(path), windows);
    }
    let base = a.base.as_deref().map(model::file::load).transpose()?;
    let tc = TrainConfig {
        sizes: Sizes {
            lstm: a.lstm,
            rnn: a.rnn,
            ..Sizes::default()
        },
        window_secs: cfg.window_secs,
        max_epochs: a.epochs,
        seed: a.seed,
        ..TrainConfig::default()
    };
    log::info!("candle threads: {}", candle_core::utils::get_num_threads());
    let m = model::train::train(&seqs, &tc, base.as_ref())?;
    model::file::save(&m, &a.out)?;
    let t = &m.meta.training;
    log::info!(
        "wrote {}: {} windows of {} devices, {} epochs, validation loss {:.4}, population threshold {:.2}, {:.1} s",
        a.out.display(),
        t.windows,
        t.devices,
        t.epochs,
        t.validation_loss,
        m.meta.population_threshold,
        started.elapsed().as_secs_f32()
    );
    Ok(())
}

pub fn eval(a: crate::cli::EvalArgs) -> CmdResult {
    let m = model::file::load_for(a.model.as_deref(), a.f32)?;
    let captures = crate::eval::read_manifest(&a.manifest, a.lenient)?;
    if let Some(other) = &a.compare {
        let o = model::file::load(other)?;
        println!(
            "{:<46} {:>8} {:>10} {:>9} {:>7} {:>7}  same",
            "capture", "windows", "pearson r", "max diff", "alerts", "other"
        );
        for c in captures.iter().filter(|c| {
            a.only
                .as_ref()
                .is_none_or(|x| c.file.to_string_lossy().contains(x.as_str()))
        }) {
            let first_ts = crate::eval::first_timestamp(&c.file)?;
            let dcfg = crate::eval::detect_config(c, first_ts, a.learning_windows);
            let g = crate::eval::agreement(&m, &o, &c.file, dcfg)?;
            let name = c
                .file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            println!(
                "{:<46} {:>8} {:>10.5} {:>9.4} {:>7} {:>7}  {}",
                name.chars().take(46).collect::<String>(),
                g.windows,
                g.pearson_r,
                g.max_abs_diff,
                g.alerts_a,
                g.alerts_b,
                if g.same_alerts { "yes" } else { "NO" }
            );
        }
        return Ok(());
    }
    let mut reports = Vec::new();
    for c in captures.iter().filter(|c| {
        a.only
            .as_ref()
            .is_none_or(|o| c.file.to_string_lossy().contains(o.as_str()))
    }) {
        reports.push(crate::eval::evaluate(
            c,
            &m,
            a.learning_windows,
            a.finetune,
        )?);
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&reports).map_err(|e| e.to_string())?
        );
    } else if a.markdown {
        let name = match &a.model {
            Some(p) => format!("`{}`", p.display()),
            None => "built in (`models/iotad.gguf`, Q8_0)".into(),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let date: String = crate::export::Rfc3339(now)
            .to_string()
            .chars()
            .take(10)
            .collect();
        print!("{}", crate::eval::markdown(&reports, &name, &date));
    } else {
        print!("{}", crate::eval::table(&reports));
    }
    Ok(())
}

pub fn quantize(a: crate::cli::QuantizeArgs) -> CmdResult {
    let dtype = model::quant::parse_type(&a.r#type)?;
    let f32_model = model::file::load(&a.model)?;
    let magic = std::fs::read(&a.model).map_err(|e| e.to_string())?;
    if magic.starts_with(model::quant::MAGIC) {
        return Err(format!(
            "{} is already quantized: quantize the f32 (safetensors) model",
            a.model.display()
        ));
    }
    model::quant::save_gguf(&f32_model, dtype, &a.out)?;
    let q = model::file::load(&a.out)?;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    println!(
        "wrote {} ({}): {} bytes; the f32 model: {} bytes",
        a.out.display(),
        a.r#type,
        size(&a.out),
        size(&a.model)
    );
    // how closely the scores follow the f32 model's: a synthesized network with attacks
    let dir = std::env::temp_dir().join(format!("iotad-quantize-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let pcap = dir.join("check.pcap");
    let attacks = [
        "portscan@2400:02:10:00:00:00:00",
        "dns-tunnel@2700:02:10:03:00:00:03",
        "telnet-brute@3000:02:10:02:00:00:02",
    ];
    let scenario = crate::synth::Scenario {
        seed: 77,
        devices: 8,
        duration_s: 3600,
        max_packets: None,
        attacks: attacks
            .iter()
            .map(|s| s.parse())
            .collect::<Result<Vec<_>, _>>()?,
    };
    scenario.write(&pcap, None)?;
    let dcfg = crate::detect::DetectConfig {
        learning_windows: 180,
        ..Default::default()
    };
    let agreement = crate::eval::agreement(&f32_model, &q, &pcap, dcfg);
    let _ = std::fs::remove_dir_all(&dir);
    let g = agreement?;
    println!(
        "on a synthesized hour of 8 devices with 3 attacks ({} device-windows): Pearson r of scores {:.5}, largest difference {:.4}, incidents opened: f32 {}, {} {}, {}",
        g.windows,
        g.pearson_r,
        g.max_abs_diff,
        g.alerts_a,
        a.r#type,
        g.alerts_b,
        if g.same_alerts { "the same" } else { "NOT the same" }
    );
    Ok(())
}
