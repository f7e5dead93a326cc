//! `iotad tune`: what the Pi can be set to for capture, applied and undone. Two settings,
//! the CPU frequency governor of every cpufreq policy and the capture NIC's IRQ affinity,
//! and two readings, the SoC temperature and the firmware's throttling flags.
//!
//! [`plan`] reads the system and says, per setting, what it would write, that it is already
//! so, or why it is not possible (no permission, no cpufreq, a read-only file system);
//! [`apply`] writes the plan and returns what it changed, which [`Record`] keeps in a file so
//! [`restore`] can put every value back. Every path is read under a root (`--root`,
//! `tune.root`), so the tests run all of it against a fake Pi 5 tree.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

/// The `tune` configuration section.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TuneConfig {
    pub at_start: bool,
    pub root: PathBuf,
    pub governor: Option<String>,
    pub irq_cpu: Option<usize>,
    pub state_file: PathBuf,
    pub vcgencmd: String,
}

impl Default for TuneConfig {
    fn default() -> TuneConfig {
        TuneConfig {
            at_start: true,
            root: PathBuf::from("/"),
            governor: Some("performance".into()),
            irq_cpu: None,
            state_file: PathBuf::from("/run/iotad/tune.json"),
            vcgencmd: "vcgencmd".into(),
        }
    }
}

impl TuneConfig {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(g) = &self.governor {
            if g.is_empty() || !g.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "tune.governor must be a governor's name like performance, not {g:?}"
                ));
            }
        }
        if self.irq_cpu.is_some_and(|c| c >= 1024) {
            return Err("tune.irq_cpu must be below 1024".into());
        }
        Ok(())
    }
}

/// One value to write: the file, what it held (exactly, to be written back), what it gets.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Write {
    pub path: PathBuf,
    pub before: String,
    pub after: String,
}

/// What the plan says of one setting.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Change(Write),
    AlreadySo(String),
    NotPossible(String),
}

/// One setting and its step.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub name: String,
    pub step: Step,
}

/// What `plan` found: the settings and the readings (temperature, throttling).
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub root: PathBuf,
    pub items: Vec<Item>,
    pub readings: Vec<(String, String)>,
}

/// What became of one setting.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Applied(Write),
    AlreadySo(String),
    NotPossible(String),
}

/// What `apply` did, item by item, with the readings of the plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    pub items: Vec<(String, Outcome)>,
    pub readings: Vec<(String, String)>,
}

impl Applied {
    /// The writes made, in order: what `restore` undoes.
    pub fn record(&self) -> Record {
        Record {
            writes: self
                .items
                .iter()
                .filter_map(|(_, o)| match o {
                    Outcome::Applied(w) => Some(w.clone()),
                    _ => None,
                })
                .collect(),
        }
    }
}

/// The state file: the writes `apply` made.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct Record {
    pub writes: Vec<Write>,
}

impl Record {
    pub fn load(path: &Path) -> Result<Option<Record>, String> {
        match std::fs::read_to_string(path) {
            Ok(t) => serde_json::from_str(&t)
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Saves the record, adding to what an earlier `apply` recorded (its `before` values are
    /// the ones to restore).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let mut all = Record::load(path)?.unwrap_or_default();
        for w in &self.writes {
            if !all.writes.iter().any(|o| o.path == w.path) {
                all.writes.push(w.clone());
            }
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(&all).expect("plain data");
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text + "\n")
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

/// Joins an absolute system path under `root`.
fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// Why an I/O error makes a setting impossible, in the words the output uses.
fn why(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EROFS) => "read-only",
        Some(libc::EACCES) | Some(libc::EPERM) => "no permission",
        Some(libc::ENOENT) => "missing",
        _ => "cannot write",
    }
}

/// Checks that `path` can be written without writing it (opening for writing truncates
/// nothing): `None` when it can, else the reason.
fn writable(path: &Path) -> Option<String> {
    match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(_) => None,
        Err(e) => Some(format!("{}: {} ({e})", why(&e), path.display())),
    }
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// A CPU list (`0-3,5`) as CPU numbers.
pub fn cpu_list(s: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.trim().parse::<usize>(), b.trim().parse::<usize>()) {
                    cpus.extend(a..=b.min(a + 4096));
                }
            }
            None => cpus.extend(part.trim().parse::<usize>().ok()),
        }
    }
    cpus
}

/// The interface of the default route, from `proc/net/route` under `root`.
pub fn default_interface(root: &Path) -> Option<String> {
    let routes = read(&under(root, "/proc/net/route"))?;
    routes.lines().skip(1).find_map(|l| {
        let mut cols = l.split_whitespace();
        let (iface, dest) = (cols.next()?, cols.next()?);
        (dest == "00000000").then(|| iface.to_string())
    })
}

/// The IRQs `/proc/interrupts` names `iface` on (`eth0`, or queues like `eth0-rx-0`).
pub fn nic_irqs(interrupts: &str, iface: &str) -> Vec<u32> {
    let queue = format!("{iface}-");
    interrupts
        .lines()
        .filter_map(|l| {
            let (irq, rest) = l.trim_start().split_once(':')?;
            let irq = irq.parse::<u32>().ok()?;
            rest.split(|c: char| c.is_whitespace() || c == ',')
                .any(|t| t == iface || t.starts_with(&queue))
                .then_some(irq)
        })
        .collect()
}

/// Reads the system under `cfg.root` and says what tuning would do. `interface` is the
/// capture interface (else the default route's); the NIC's IRQs go to `cfg.irq_cpu`, else
/// `capture_core`, else CPU 1 (CPU 0 takes most other interrupts on a Pi).
pub fn plan(cfg: &TuneConfig, interface: Option<&str>, capture_core: Option<usize>) -> Plan {
    let root = cfg.root.as_path();
    let mut items = Vec::new();
    governor_items(root, cfg.governor.as_deref(), &mut items);
    irq_items(root, cfg, interface, capture_core, &mut items);
    Plan {
        root: root.to_path_buf(),
        items,
        readings: vec![temperature(root), throttling(&cfg.vcgencmd)],
    }
}

fn governor_items(root: &Path, target: Option<&str>, items: &mut Vec<Item>) {
    let Some(target) = target else {
        return;
    };
    let dir = under(root, "/sys/devices/system/cpu/cpufreq");
    let mut policies: Vec<(u32, PathBuf)> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| {
                let e = e.ok()?;
                let n = e
                    .file_name()
                    .to_str()?
                    .strip_prefix("policy")?
                    .parse()
                    .ok()?;
                Some((n, e.path()))
            })
            .collect()
        })
        .unwrap_or_default();
    policies.sort();
    if policies.is_empty() {
        items.push(Item {
            name: "CPU governor".into(),
            step: Step::NotPossible(format!("no cpufreq: no policy* in {}", dir.display())),
        });
        return;
    }
    for (n, p) in policies {
        let name = format!("CPU governor (cpufreq policy{n})");
        let file = p.join("scaling_governor");
        let step = match read(&file) {
            None => Step::NotPossible(format!("no cpufreq: cannot read {}", file.display())),
            Some(now) if now.trim() == target => Step::AlreadySo(target.to_string()),
            Some(now) => {
                let offered = read(&p.join("scaling_available_governors")).unwrap_or_default();
                if !offered.is_empty() && !offered.split_whitespace().any(|g| g == target) {
                    Step::NotPossible(format!(
                        "the kernel offers no {target} governor (only {})",
                        offered.trim()
                    ))
                } else if let Some(reason) = writable(&file) {
                    Step::NotPossible(reason)
                } else {
                    Step::Change(Write {
                        path: file,
                        before: now,
                        after: target.to_string(),
                    })
                }
            }
        };
        items.push(Item { name, step });
    }
}

fn irq_items(
    root: &Path,
    cfg: &TuneConfig,
    interface: Option<&str>,
    capture_core: Option<usize>,
    items: &mut Vec<Item>,
) {
    let iface = match interface {
        Some(i) => i.to_string(),
        None => match default_interface(root) {
            Some(i) => i,
            None => {
                items.push(Item {
                    name: "NIC IRQ affinity".into(),
                    step: Step::NotPossible(
                        "no capture interface: none configured and no default route".into(),
                    ),
                });
                return;
            }
        },
    };
    let online = read(&under(root, "/sys/devices/system/cpu/online"))
        .map(|s| cpu_list(&s))
        .unwrap_or_default();
    let target = cfg
        .irq_cpu
        .or(capture_core)
        .unwrap_or(if online.len() > 1 { 1 } else { 0 });
    let name = |irq: Option<u32>| match irq {
        Some(n) => format!("NIC IRQ {n} ({iface}) affinity"),
        None => format!("NIC IRQ affinity ({iface})"),
    };
    let Some(interrupts) = read(&under(root, "/proc/interrupts")) else {
        items.push(Item {
            name: name(None),
            step: Step::NotPossible("cannot read /proc/interrupts".into()),
        });
        return;
    };
    let irqs = nic_irqs(&interrupts, &iface);
    if irqs.is_empty() {
        items.push(Item {
            name: name(None),
            step: Step::NotPossible(format!("/proc/interrupts names no IRQ of {iface}")),
        });
        return;
    }
    for irq in irqs {
        let file = under(root, &format!("/proc/irq/{irq}/smp_affinity_list"));
        let step = if !online.is_empty() && !online.contains(&target) {
            Step::NotPossible(format!("CPU {target} is not online"))
        } else {
            match read(&file) {
                None => Step::NotPossible(format!("cannot read {}", file.display())),
                Some(now) if cpu_list(&now) == [target] => Step::AlreadySo(target.to_string()),
                Some(now) => match writable(&file) {
                    Some(reason) => Step::NotPossible(reason),
                    None => Step::Change(Write {
                        path: file,
                        before: now,
                        after: target.to_string(),
                    }),
                },
            }
        };
        items.push(Item {
            name: name(Some(irq)),
            step,
        });
    }
}

/// The SoC's temperature in °C, if the kernel exposes it.
pub fn soc_celsius(root: &Path) -> Option<f32> {
    let milli = read(&under(root, "/sys/class/thermal/thermal_zone0/temp"))?;
    milli.trim().parse::<i64>().ok().map(|m| m as f32 / 1000.0)
}

/// Whether the firmware throttles now (`vcgencmd get_throttled` bits 0-3), with its answer
/// in words; None where there is no vcgencmd.
pub fn throttled_now(vcgencmd: &str) -> Option<(bool, String)> {
    let out = Command::new(vcgencmd).arg("get_throttled").output().ok()?;
    let answer = String::from_utf8_lossy(&out.stdout);
    let hex = answer.trim().strip_prefix("throttled=")?;
    let v = u32::from_str_radix(hex.trim_start_matches("0x"), 16).ok()?;
    Some((v & 0xf != 0, throttled_words(&answer)?))
}

fn temperature(root: &Path) -> (String, String) {
    let file = under(root, "/sys/class/thermal/thermal_zone0/temp");
    let text = match read(&file).and_then(|t| t.trim().parse::<i64>().ok()) {
        Some(milli) => format!("{:.1} °C", milli as f64 / 1000.0),
        None => format!("not available (no {})", file.display()),
    };
    ("SoC temperature".into(), text)
}

const THROTTLE_BITS: [&str; 4] = [
    "under-voltage",
    "frequency capped",
    "throttled",
    "soft temperature limit",
];

/// `vcgencmd get_throttled`'s answer (`throttled=0x50005`) in words: bits 0-3 now,
/// 16-19 since boot.
pub fn throttled_words(answer: &str) -> Option<String> {
    let hex = answer.trim().strip_prefix("throttled=")?;
    let v = u32::from_str_radix(hex.trim_start_matches("0x"), 16).ok()?;
    let words = |shift: u32| {
        let w: Vec<&str> = (0..4)
            .filter(|b| (v >> (b + shift)) & 1 == 1)
            .map(|b| THROTTLE_BITS[b as usize])
            .collect();
        if w.is_empty() {
            "none".to_string()
        } else {
            w.join(", ")
        }
    };
    Some(format!(
        "now: {}; since boot: {} ({})",
        words(0),
        words(16),
        answer.trim()
    ))
}

fn throttling(vcgencmd: &str) -> (String, String) {
    let text = match Command::new(vcgencmd).arg("get_throttled").output() {
        Ok(out) if out.status.success() => {
            let answer = String::from_utf8_lossy(&out.stdout);
            throttled_words(&answer)
                .unwrap_or_else(|| format!("unreadable answer {:?}", answer.trim()))
        }
        Ok(out) => format!(
            "{vcgencmd} get_throttled failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(_) => format!("not available (no {vcgencmd}: not a Raspberry Pi OS firmware)"),
    };
    ("throttling".into(), text)
}

fn write_value(w: &Write, value: &str) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&w.path)
        .and_then(|mut f| io::Write::write_all(&mut f, value.as_bytes()))
        .map_err(|e| format!("{}: {} ({e})", why(&e), w.path.display()))
}

/// Writes what the plan changes; each item says applied, already so, or not possible.
pub fn apply(plan: &Plan) -> Applied {
    let items = plan
        .items
        .iter()
        .map(|item| {
            let outcome = match &item.step {
                Step::AlreadySo(v) => Outcome::AlreadySo(v.clone()),
                Step::NotPossible(r) => Outcome::NotPossible(r.clone()),
                Step::Change(w) => match write_value(w, &format!("{}\n", w.after)) {
                    Err(r) => Outcome::NotPossible(r),
                    Ok(()) => effective(w),
                },
            };
            (item.name.clone(), outcome)
        })
        .collect();
    Applied {
        items,
        readings: plan.readings.clone(),
    }
}

/// After an IRQ affinity write: the kernel's `effective_affinity_list` says where the
/// interrupt really goes (some interrupt controllers route it to one CPU whatever is asked).
fn effective(w: &Write) -> Outcome {
    if w.path.file_name().and_then(|n| n.to_str()) == Some("smp_affinity_list") {
        let eff = w.path.with_file_name("effective_affinity_list");
        if let Some(now) = read(&eff) {
            if cpu_list(&now) != cpu_list(&w.after) {
                // undo: the write did not take effect, so there is nothing to record
                let _ = write_value(w, &w.before);
                return Outcome::NotPossible(format!(
                    "the interrupt controller keeps it on CPU {} ({})",
                    now.trim(),
                    eff.display()
                ));
            }
        }
    }
    Outcome::Applied(w.clone())
}

/// Puts back every value `record` changed, newest first; returns one line per value.
pub fn restore(record: &Record) -> Vec<(PathBuf, Result<(), String>)> {
    record
        .writes
        .iter()
        .rev()
        .map(|w| (w.path.clone(), write_value(w, &w.before)))
        .collect()
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "tuning plan (root {}):", self.root.display())?;
        for item in &self.items {
            match &item.step {
                Step::Change(w) => writeln!(
                    f,
                    "  {}: would set {} -> {} ({})",
                    item.name,
                    w.before.trim(),
                    w.after,
                    w.path.display()
                )?,
                Step::AlreadySo(v) => writeln!(f, "  {}: already so ({v})", item.name)?,
                Step::NotPossible(r) => writeln!(f, "  {}: not possible: {r}", item.name)?,
            }
        }
        for (name, value) in &self.readings {
            writeln!(f, "  {name}: {value}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Applied(w) => write!(
                f,
                "applied ({} -> {}, {})",
                w.before.trim(),
                w.after,
                w.path.display()
            ),
            Outcome::AlreadySo(v) => write!(f, "already so ({v})"),
            Outcome::NotPossible(r) => write!(f, "not possible: {r}"),
        }
    }
}

impl fmt::Display for Applied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "tuning applied:")?;
        for (name, o) in &self.items {
            writeln!(f, "  {name}: {o}")?;
        }
        for (name, value) in &self.readings {
            writeln!(f, "  {name}: {value}")?;
        }
        Ok(())
    }
}

/// `iotad tune`: the plan (`--dry-run`, the default), `--apply` (recorded), `--restore`.
pub fn command(a: crate::cli::TuneArgs) -> Result<(), String> {
    use crate::config::{Config, DEFAULT_PATH};
    if [a.dry_run, a.apply, a.restore]
        .iter()
        .filter(|x| **x)
        .count()
        > 1
    {
        return Err("give one of --dry-run, --apply and --restore".into());
    }
    let path = match &a.config {
        Some(p) => Some(p.clone()),
        None if Path::new(DEFAULT_PATH).exists() => Some(PathBuf::from(DEFAULT_PATH)),
        None => None,
    };
    let cfg = Config::load(path.as_deref())?;
    let mut t = cfg.tune;
    if let Some(r) = a.root {
        t.root = r;
    }
    if let Some(s) = a.state {
        t.state_file = s;
    }
    if let Some(g) = a.governor {
        t.governor = Some(g);
    }
    if let Some(c) = a.irq_cpu {
        t.irq_cpu = Some(c);
    }
    t.validate()?;
    if a.restore {
        let Some(record) = Record::load(&t.state_file)? else {
            println!(
                "nothing to restore: no {} (no --apply changed anything)",
                t.state_file.display()
            );
            return Ok(());
        };
        let mut failed = 0;
        for (path, r) in restore(&record) {
            match r {
                Ok(()) => println!("restored {}", path.display()),
                Err(e) => {
                    failed += 1;
                    println!("cannot restore: {e}");
                }
            }
        }
        std::fs::remove_file(&t.state_file)
            .map_err(|e| format!("cannot remove {}: {e}", t.state_file.display()))?;
        return match failed {
            0 => Ok(()),
            n => Err(format!("{n} values could not be restored")),
        };
    }
    let interface = a.interface.or(cfg.capture.interface);
    let plan = plan(&t, interface.as_deref(), cfg.capture.core);
    if !a.apply {
        print!("{plan}");
        let report = crate::daemon::visibility::report_path(cfg.state.file.as_deref());
        print!("{}", crate::daemon::visibility::describe(report.as_deref()));
        return Ok(());
    }
    let applied = apply(&plan);
    print!("{applied}");
    let record = applied.record();
    if !record.writes.is_empty() {
        record.save(&t.state_file)?;
        println!(
            "recorded in {} (iotad tune --restore undoes it)",
            t.state_file.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_irqs_and_throttle_bits() {
        assert_eq!(cpu_list("0-3\n"), [0, 1, 2, 3]);
        assert_eq!(cpu_list("1,3-4"), [1, 3, 4]);
        let interrupts = "           CPU0       CPU1\n\
             106:       4521          0  rp1_irq_chip   6 Level     eth0\n\
             107:          0          0  GICv2 153 Level     eth0-rx-0\n\
             108:          0          0  GICv2 154 Level     eth01\n\
             ERR:          0\n";
        assert_eq!(nic_irqs(interrupts, "eth0"), [106, 107]);
        assert_eq!(
            throttled_words("throttled=0x50005\n").unwrap(),
            "now: under-voltage, throttled; since boot: under-voltage, throttled (throttled=0x50005)"
        );
        assert_eq!(
            throttled_words("throttled=0x0").unwrap(),
            "now: none; since boot: none (throttled=0x0)"
        );
        assert!(throttled_words("error").is_none());
    }
}
