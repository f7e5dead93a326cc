//! Writing closed windows out: CSV (one row per device-window, the model's training format)
//! or JSON lines. The header comes from the feature table, so it cannot drift from the code.

use std::fmt;
use std::io::{self, Write};

use crate::window::{Features, F, FEATURES};
use crate::wire::Mac;

/// Output formats of `iotad features`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "csv" => Ok(Format::Csv),
            "jsonl" => Ok(Format::Jsonl),
            _ => Err(format!("unknown format {s:?}: use csv or jsonl")),
        }
    }
}

/// A timestamp in nanoseconds since the epoch, shown as RFC 3339 UTC with seconds.
pub struct Rfc3339(pub u64);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0 / 1_000_000_000;
        let (days, rem) = (secs / 86_400, secs % 86_400);
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }
}

/// The date (year, month 1-12, day 1-31) `days` days after 1970-01-01 (H. Hinnant's
/// civil_from_days).
pub fn civil_from_days(days: u64) -> (i64, i64, i64) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// One closed window ready to be written.
pub struct Row<'a> {
    pub capture: &'a str,
    pub mac: Mac,
    pub start_ns: u64,
    pub features: &'a Features,
}

/// Writes rows in one format.
pub struct WindowWriter<W: Write> {
    out: W,
    format: Format,
    rows: u64,
}

impl<W: Write> WindowWriter<W> {
    /// Starts the output (the CSV header).
    pub fn new(mut out: W, format: Format) -> io::Result<WindowWriter<W>> {
        if format == Format::Csv {
            write!(out, "capture,mac,window_start,window_start_epoch")?;
            for f in FEATURES.iter() {
                write!(out, ",{}", f.name)?;
            }
            writeln!(out)?;
        }
        Ok(WindowWriter {
            out,
            format,
            rows: 0,
        })
    }

    pub fn write(&mut self, r: &Row<'_>) -> io::Result<()> {
        self.rows += 1;
        let epoch = r.start_ns / 1_000_000_000;
        match self.format {
            Format::Csv => {
                write!(
                    self.out,
                    "{},{},{},{epoch}",
                    csv_field(r.capture),
                    r.mac,
                    Rfc3339(r.start_ns)
                )?;
                if r.features.is_silent() {
                    return self.out.write_all(SILENT_ROW.as_bytes());
                }
                for &v in r.features.0.iter() {
                    write_value(&mut self.out, v)?;
                }
                writeln!(self.out)
            }
            Format::Jsonl => {
                write!(
                    self.out,
                    "{{\"capture\":{},\"mac\":\"{}\",\"window_start\":\"{}\",\"window_start_epoch\":{epoch}",
                    serde_json::Value::from(r.capture),
                    r.mac,
                    Rfc3339(r.start_ns)
                )?;
                for (spec, v) in FEATURES.iter().zip(r.features.0.iter()) {
                    write!(self.out, ",\"{}\":{v}", spec.name)?;
                }
                writeln!(self.out, "}}")
            }
        }
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// The tail of a CSV row of a window in which the device did nothing.
const SILENT_ROW: &str = {
    const S: [u8; 2 * F + 1] = {
        let mut s = [b'0'; 2 * F + 1];
        let mut i = 0;
        while i < F {
            s[2 * i] = b',';
            i += 1;
        }
        s[2 * F] = b'\n';
        s
    };
    match std::str::from_utf8(&S) {
        Ok(s) => s,
        Err(_) => panic!("ASCII"),
    }
};

/// Writes `,value`: whole numbers (most features are counts) without the float formatter.
#[inline]
fn write_value(out: &mut impl Write, v: f32) -> io::Result<()> {
    if v.fract() == 0.0 && v.abs() < 1e9 {
        write!(out, ",{}", v as i64)
    } else {
        write!(out, ",{v}")
    }
}

/// Quotes a CSV field when it needs it.
fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(Rfc3339(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(
            Rfc3339(1_615_216_935_831_389_000).to_string(),
            "2021-03-08T15:22:15Z"
        );
        assert_eq!(
            Rfc3339(951_782_400_000_000_000).to_string(),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn csv_and_jsonl_rows() {
        let mut f = Features::ZERO;
        f.0[0] = 3.0;
        f.0[4] = 70.5;
        let row = Row {
            capture: "a,b.pcap",
            mac: Mac([2, 0, 0, 0, 0, 1]),
            start_ns: 10_000_000_000,
            features: &f,
        };
        let mut w = WindowWriter::new(Vec::new(), Format::Csv).unwrap();
        w.write(&row).unwrap();
        w.write(&Row {
            features: &Features::ZERO,
            ..row
        })
        .unwrap();
        let text = String::from_utf8(w.finish().unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[2].split(',').count(),
            5 + FEATURES.len(),
            "one comma is inside the quoted capture name"
        );
        assert!(lines[2].ends_with(",0,0"));
        assert!(
            lines[0].starts_with("capture,mac,window_start,window_start_epoch,pkts_out,pkts_in,")
        );
        assert_eq!(lines[0].split(',').count(), 4 + FEATURES.len());
        assert!(lines[1]
            .starts_with("\"a,b.pcap\",02:00:00:00:00:01,1970-01-01T00:00:10Z,10,3,0,0,0,70.5,"));
        let mut j = WindowWriter::new(Vec::new(), Format::Jsonl).unwrap();
        j.write(&row).unwrap();
        let text = String::from_utf8(j.finish().unwrap()).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["mac"], "02:00:00:00:00:01");
        assert_eq!(v["mean_size_out"], 70.5);
        assert_eq!(v["capture"], "a,b.pcap");
    }
}
