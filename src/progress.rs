//! Progress lines on stderr for long runs, only when stderr is a terminal.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Reports packets processed, at most twice a second.
pub struct Progress {
    enabled: bool,
    label: String,
    started: Instant,
    last: Instant,
    total_bytes: Option<u64>,
}

impl Progress {
    /// `total_bytes`: the file's size, when known, for a percentage.
    pub fn new(label: &str, total_bytes: Option<u64>) -> Progress {
        let now = Instant::now();
        Progress {
            enabled: std::io::stderr().is_terminal(),
            label: label.to_string(),
            started: now,
            last: now,
            total_bytes,
        }
    }

    /// Called often; prints only every half second. `bytes` is how far into the file we are.
    #[inline]
    pub fn tick(&mut self, packets: u64, bytes: u64) {
        if !self.enabled || packets % 4096 != 0 {
            return;
        }
        let now = Instant::now();
        if now.duration_since(self.last) < Duration::from_millis(500) {
            return;
        }
        self.last = now;
        let secs = now.duration_since(self.started).as_secs_f64().max(1e-9);
        let pct = match self.total_bytes {
            Some(t) if t > 0 => format!(" {:5.1}%", (bytes as f64 / t as f64 * 100.0).min(100.0)),
            _ => String::new(),
        };
        eprint!(
            "\r{}:{pct} {packets} packets, {:.0} packets/s   ",
            self.label,
            packets as f64 / secs
        );
        let _ = std::io::stderr().flush();
    }

    /// Clears the progress line.
    pub fn done(&self) {
        if self.enabled {
            eprint!("\r\x1b[2K");
        }
    }
}
