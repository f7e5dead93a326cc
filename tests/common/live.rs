//! Helpers of the tests that run `iotad run` on real interfaces: a veth pair the test makes,
//! the daemon with its log, synthesized captures played with tcpreplay. Need root, `ip` and
//! `tcpreplay` (Debian: iproute2, tcpreplay); [`cannot_run`] says when they are missing, and
//! each test then says so loudly and does nothing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why these tests cannot run here, if they cannot: not root, or one of `tools` (with `ip`
/// and `tcpreplay`) missing; `packages` names the Debian packages of `tools`.
pub fn cannot_run(tools: &[&str], packages: &str) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (veth pairs need CAP_NET_ADMIN)".into());
    }
    for tool in ["ip", "tcpreplay"].iter().chain(tools) {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!(
                "no {tool} (Debian packages: iproute2 tcpreplay {packages})"
            ));
        }
    }
    None
}

/// A veth pair, deleted when dropped.
pub struct Veth {
    pub capture: String,
    pub inject: String,
}

impl Veth {
    pub fn new(tag: &str) -> Veth {
        let id = std::process::id() % 100_000;
        let v = Veth {
            capture: format!("ic{tag}{id}"),
            inject: format!("ij{tag}{id}"),
        };
        v.create();
        v
    }

    pub fn create(&self) {
        sh(&format!(
            "ip link add {} type veth peer name {} && ip link set {} up && ip link set {} up",
            self.capture, self.inject, self.capture, self.inject
        ));
        // IPv6 autoconfiguration would add the test host's own frames: keep the link quiet
        for i in [&self.capture, &self.inject] {
            let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{i}/disable_ipv6"), "1");
        }
    }

    pub fn delete(&self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.capture])
            .status();
    }

    /// Plays `pcap` onto the inject end at `speed` times its own pace (0: top speed).
    pub fn play(&self, pcap: &Path, speed: f64) {
        let mut cmd = Command::new("tcpreplay");
        cmd.args(["-q", "-i", &self.inject]);
        if speed > 0.0 {
            cmd.arg(format!("--multiplier={speed}"));
        } else {
            cmd.arg("--topspeed");
        }
        let out = cmd.arg(pcap).output().expect("tcpreplay runs");
        assert!(
            out.status.success(),
            "tcpreplay: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        self.delete();
    }
}

pub fn sh(cmd: &str) {
    let st = Command::new("sh").args(["-c", cmd]).status().unwrap();
    assert!(st.success(), "{cmd}");
}

/// A running `iotad run`, its stderr going to a file.
pub struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    pub fn start(dir: &Path, name: &str, args: &[&str]) -> Daemon {
        let log = dir.join(format!("{name}.log"));
        let child = super::iotad()
            .arg("run")
            .args(args)
            .env("RUST_LOG", "info")
            // glibc raises its mmap threshold once a large block is freed, and later such
            // blocks stay on the heap: a one-off step of about 1 MB in the resident set that
            // a memory figure must not be read as (a fixed threshold turns it off)
            .env("MALLOC_MMAP_THRESHOLD_", "131072")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("iotad starts");
        let d = Daemon {
            child: Some(child),
            log,
        };
        d.wait_for_log("capturing on", Duration::from_secs(10));
        d
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn wait_for_log(&self, what: &str, limit: Duration) {
        let t = Instant::now();
        while !self.log().contains(what) {
            assert!(
                t.elapsed() < limit,
                "no {what:?} in the log within {limit:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Resident memory, kB.
    pub fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// SIGTERM; returns how long it took to exit, whether it exited 0, and its log.
    pub fn terminate(mut self) -> (Duration, bool, String) {
        let mut child = self.child.take().unwrap();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let t = Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "iotad did not exit");
            std::thread::sleep(Duration::from_millis(10));
        };
        (t.elapsed(), status.success(), self.log())
    }

    /// SIGKILL: no goodbye of any kind; returns its log.
    pub fn kill(mut self) -> String {
        let mut child = self.child.take().unwrap();
        let _ = child.kill();
        let _ = child.wait();
        self.log()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The JSON events of a JSON-lines event log.
pub fn events(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect()
}

/// The number in `log` just before `what` (as the exit summary prints its counters).
pub fn count_before(log: &str, what: &str) -> u64 {
    let at = log
        .rfind(what)
        .unwrap_or_else(|| panic!("no {what:?} in {log}"));
    log[..at]
        .split(|c: char| !c.is_ascii_digit())
        .rfind(|w| !w.is_empty())
        .unwrap()
        .parse()
        .unwrap()
}

/// What a port scan drives: an alert on one names at least one of these (which lead depends
/// on where the wall clock cuts the windows: probes, SYNs sent, ports, resets back, or the
/// SYNs to 22 and 23).
pub const SCAN_FEATURES: &[&str] = &[
    "probes",
    "probes_slow",
    "syn_out",
    "unanswered",
    "remote_ports",
    "remote_ips_syn",
    "rst_in",
    "login_attempts",
    "max_attempts_one_service",
    "small_pkts_out",
];

/// A free TCP port on loopback (for a server a test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `cmd` with `sh -c` in `dir`; fails the test with its stderr when it fails.
pub fn sh_in(dir: &Path, cmd: &str) {
    let out = Command::new("sh")
        .args(["-c", cmd])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
