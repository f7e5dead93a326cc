//! `iotad tune` against a fake Raspberry Pi 5 tree built in a scratch folder: the plan names
//! the governor, the NIC's IRQ and the temperature; apply then restore leaves every file as
//! it was; a read-only tree makes each setting "not possible" with the reason.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{iotad, s, scratch};

/// A Pi 5 as tune sees it: one cpufreq policy for the four Cortex-A76 cores, eth0 (the RP1's
/// Cadence GEM) on one interrupt, thermal zone 0, and a vcgencmd that reports throttling
/// since boot.
fn pi5(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    let files = [
        ("sys/devices/system/cpu/online", "0-3\n"),
        ("sys/devices/system/cpu/cpufreq/policy0/scaling_governor", "ondemand\n"),
        (
            "sys/devices/system/cpu/cpufreq/policy0/scaling_available_governors",
            "conservative ondemand userspace powersave performance schedutil \n",
        ),
        ("sys/devices/system/cpu/cpufreq/policy0/affected_cpus", "0 1 2 3\n"),
        ("sys/class/thermal/thermal_zone0/temp", "52750\n"),
        (
            "proc/interrupts",
            "           CPU0       CPU1       CPU2       CPU3       \n\
             \x20 9:          0          0          0          0     GICv2  25 Level     vgic\n\
             \x2011:      84213      61820      59944      60112     GICv2  30 Level     arch_timer\n\
             106:      18420          0          0          0  rp1_irq_chip   6 Level     eth0\n\
             107:          0          0          0          0  rp1_irq_chip  34 Level     dw_axi_dmac_platform\n\
             IPI0:      1203       1877       1549       1671       Rescheduling interrupts\n",
        ),
        ("proc/irq/106/smp_affinity_list", "0-3\n"),
        ("proc/irq/107/smp_affinity_list", "0-3\n"),
        (
            "proc/net/route",
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
             eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n",
        ),
    ];
    for (path, text) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    root
}

/// A configuration pointing tune at the fake tree, its state file and a fake vcgencmd.
fn config(dir: &Path, root: &Path) -> PathBuf {
    let vc = dir.join("vcgencmd");
    std::fs::write(&vc, "#!/bin/sh\necho throttled=0x50000\n").unwrap();
    std::fs::set_permissions(&vc, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let cfg = dir.join("config.json");
    let text = serde_json::json!({
        "tune": {"root": root, "state_file": dir.join("run/tune.json"), "vcgencmd": vc}
    });
    std::fs::write(&cfg, text.to_string()).unwrap();
    cfg
}

fn tune(cfg: &Path, args: &[&str]) -> (bool, String) {
    let out = iotad()
        .args(["tune", "--config", s(cfg)])
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Every file under `root` with its contents.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut all = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                all.insert(p.clone(), std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    all
}

#[test]
fn plan_names_governor_irq_and_temperature() {
    let dir = scratch("tune-plan");
    let root = pi5(&dir);
    let cfg = config(&dir, &root);
    let before = snapshot(&root);
    let (ok, out) = tune(&cfg, &["--dry-run"]);
    println!("{out}");
    assert!(ok, "{out}");
    assert!(
        out.contains("CPU governor (cpufreq policy0): would set ondemand -> performance"),
        "{out}"
    );
    assert!(
        out.contains("NIC IRQ 106 (eth0) affinity: would set 0-3 -> 1"),
        "{out}"
    );
    assert!(!out.contains("IRQ 107"), "only eth0's IRQ: {out}");
    assert!(out.contains("SoC temperature: 52.8 °C"), "{out}");
    assert!(
        out.contains("throttling: now: none; since boot: under-voltage, throttled"),
        "{out}"
    );
    assert_eq!(snapshot(&root), before, "a dry run changes nothing");
    // no flag is a dry run too
    assert_eq!(tune(&cfg, &[]).1, out);
}

#[test]
fn apply_then_restore_leaves_the_tree_as_it_was() {
    let dir = scratch("tune-apply");
    let root = pi5(&dir);
    let cfg = config(&dir, &root);
    let before = snapshot(&root);
    let (ok, out) = tune(&cfg, &["--apply"]);
    println!("{out}");
    assert!(ok, "{out}");
    assert!(
        out.contains("CPU governor (cpufreq policy0): applied (ondemand -> performance"),
        "{out}"
    );
    assert!(
        out.contains("NIC IRQ 106 (eth0) affinity: applied (0-3 -> 1"),
        "{out}"
    );
    let gov = root.join("sys/devices/system/cpu/cpufreq/policy0/scaling_governor");
    assert_eq!(std::fs::read_to_string(&gov).unwrap(), "performance\n");
    let irq = root.join("proc/irq/106/smp_affinity_list");
    assert_eq!(std::fs::read_to_string(&irq).unwrap(), "1\n");
    assert!(
        dir.join("run/tune.json").exists(),
        "the changes are recorded"
    );

    // applied again: everything is already so, and the record keeps the first values
    let (ok, again) = tune(&cfg, &["--apply"]);
    assert!(ok, "{again}");
    assert!(
        again.contains("policy0): already so (performance)"),
        "{again}"
    );
    assert!(again.contains("affinity: already so (1)"), "{again}");

    let (ok, out) = tune(&cfg, &["--restore"]);
    println!("{out}");
    assert!(ok, "{out}");
    assert!(out.contains("restored"), "{out}");
    assert_eq!(
        snapshot(&root),
        before,
        "restore puts every file back as it was"
    );
    assert!(!dir.join("run/tune.json").exists());
    let (ok, out) = tune(&cfg, &["--restore"]);
    assert!(ok && out.contains("nothing to restore"), "{out}");
}

#[test]
fn irq_the_controller_will_not_move_is_not_possible() {
    let dir = scratch("tune-effective");
    let root = pi5(&dir);
    // the kernel shows where the interrupt really goes: here it stays on CPU 0
    std::fs::write(root.join("proc/irq/106/effective_affinity_list"), "0\n").unwrap();
    let cfg = config(&dir, &root);
    let (ok, out) = tune(&cfg, &["--apply"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(
            "NIC IRQ 106 (eth0) affinity: not possible: the interrupt controller keeps it on CPU 0"
        ),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("proc/irq/106/smp_affinity_list")).unwrap(),
        "0-3\n",
        "the write that did not take is undone"
    );
}

#[test]
fn no_cpufreq_is_not_possible() {
    let dir = scratch("tune-nocpufreq");
    let root = pi5(&dir);
    std::fs::remove_dir_all(root.join("sys/devices/system/cpu/cpufreq")).unwrap();
    let cfg = config(&dir, &root);
    let (ok, out) = tune(&cfg, &["--dry-run"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("CPU governor: not possible: no cpufreq"),
        "{out}"
    );
}

#[test]
fn read_only_tree_is_not_possible_with_the_reason() {
    let dir = scratch("tune-ro");
    let writable = pi5(&dir);
    let before = snapshot(&writable);
    let ro = dir.join("ro");
    std::fs::create_dir_all(&ro).unwrap();
    let root = unsafe { libc::geteuid() } == 0;
    // root writes through file modes: bind the tree read-only instead
    let mounted = root
        && Command::new("mount")
            .args(["--bind", s(&writable), s(&ro)])
            .status()
            .is_ok_and(|st| st.success())
        && Command::new("mount")
            .args(["-o", "remount,ro,bind", s(&ro)])
            .status()
            .is_ok_and(|st| st.success());
    let (tree, reason) = if mounted {
        (ro.clone(), "read-only")
    } else if !root {
        for f in before.keys() {
            std::fs::set_permissions(f, std::os::unix::fs::PermissionsExt::from_mode(0o444))
                .unwrap();
        }
        (writable.clone(), "no permission")
    } else {
        let _ = Command::new("umount").arg(&ro).status();
        eprintln!("*** SKIPPED: root here, and a read-only bind mount failed: not tested ***");
        return;
    };
    let cfg = config(&dir, &tree);
    let (ok, out) = tune(&cfg, &["--apply"]);
    if mounted {
        let _ = Command::new("umount").arg(&ro).status();
    }
    println!("{out}");
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "CPU governor (cpufreq policy0): not possible: {reason}"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "NIC IRQ 106 (eth0) affinity: not possible: {reason}"
        )),
        "{out}"
    );
    assert!(!dir.join("run/tune.json").exists(), "nothing to record");
    assert_eq!(snapshot(&writable), before);
}

#[test]
fn run_applies_at_start_and_undoes_at_exit() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "*** SKIPPED: not root: iotad run cannot capture on lo; tuning at start not tested ***"
        );
        return;
    }
    let dir = scratch("tune-run");
    let root = pi5(&dir);
    let cfg = dir.join("run.json");
    let text = serde_json::json!({
        "capture": {"interface": "lo"},
        "state": {"file": dir.join("state.json")},
        "tune": {"root": root, "state_file": dir.join("run/tune.json"), "vcgencmd": "/nonexistent"}
    });
    std::fs::write(&cfg, text.to_string()).unwrap();
    // the fake tree's eth0 interrupt is lo's here
    let irqs = root.join("proc/interrupts");
    let t = std::fs::read_to_string(&irqs)
        .unwrap()
        .replace("eth0", "lo");
    std::fs::write(&irqs, t).unwrap();
    let before_irqs = snapshot(&root);
    let child = iotad()
        .args(["run", "--config", s(&cfg)])
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let gov = root.join("sys/devices/system/cpu/cpufreq/policy0/scaling_governor");
    let start = std::time::Instant::now();
    while std::fs::read_to_string(&gov).unwrap() != "performance\n" {
        assert!(
            start.elapsed().as_secs() < 20,
            "iotad run did not apply the governor"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    println!("{log}");
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("tuning: CPU governor (cpufreq policy0): applied"),
        "{log}"
    );
    assert!(
        log.contains("tuning: NIC IRQ 106 (lo) affinity: applied"),
        "{log}"
    );
    assert!(log.contains("tuning: restored"), "{log}");
    assert_eq!(
        snapshot(&root),
        before_irqs,
        "iotad run puts back what it changed"
    );
}
