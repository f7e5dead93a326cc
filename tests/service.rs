//! The systemd unit: `systemd-analyze verify` finds nothing wrong with it, and
//! `systemd-analyze security --offline=true` rates its exposure 2.0 or lower. Skipped loudly
//! when systemd-analyze is not installed (Debian's `systemd` package; `make test-deps`).

mod common;

use std::path::Path;
use std::process::Command;

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/iotad.service");

fn analyze() -> bool {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!(
            "*** SKIPPED: systemd-analyze not found (apt-get install systemd): the unit is not \
             checked ***"
        );
    }
    found
}

/// The unit with its binary pointing at the one cargo built (verify checks it exists).
fn unit_copy(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(UNIT).expect("systemd/iotad.service");
    let text = text.replace("/usr/local/bin/iotad", env!("CARGO_BIN_EXE_iotad"));
    let path = dir.join("iotad.service");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn unit_verifies_clean() {
    if !analyze() {
        return;
    }
    let dir = common::scratch("service-verify");
    let unit = unit_copy(&dir);
    let out = Command::new("systemd-analyze")
        .args(["verify", common::s(&unit)])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // systemd-analyze complains of other units on the machine it loads along (network-online
    // and the like); what concerns us names iotad.service
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("iotad")).collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

#[test]
fn unit_exposure_is_at_most_2() {
    if !analyze() {
        return;
    }
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager", UNIT])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure level in: {text}"));
    let level: f64 = line
        .split(':')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("unreadable: {line}"));
    eprintln!("{line}");
    assert!(level <= 2.0, "{line}");
    // the README quotes the figure
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(
        readme.contains(&format!("exposure level {level:.1}")),
        "README.md does not quote the exposure level {level:.1}"
    );
}

#[test]
fn unit_has_what_the_daemon_needs() {
    let text = std::fs::read_to_string(UNIT).unwrap();
    for want in [
        "Type=notify",
        "WatchdogSec=30",
        "DynamicUser=yes",
        "AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN",
        "CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN",
        "StateDirectory=iotad",
        "ConfigurationDirectory=iotad",
        "ExecStart=/usr/local/bin/iotad run --config /etc/iotad/config.json --state /var/lib/iotad/state.json",
        "ExecStartPre=+/usr/local/bin/iotad tune --apply",
        "ExecStopPost=+/usr/local/bin/iotad tune --restore",
        "RestrictAddressFamilies=AF_PACKET AF_NETLINK AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service",
        "Restart=on-failure",
    ] {
        assert!(text.lines().any(|l| l == want), "the unit lacks {want}");
    }
}
