//! The JSON-lines sink: one line per event, flushed per event, to a file (appended) or to
//! standard output.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use super::Sink;
use crate::detect::Event;

/// Writes each event as one line of JSON.
pub struct JsonLines {
    out: Box<dyn Write + Send>,
}

impl JsonLines {
    /// Appends to `path`, or writes to standard output when it is `-`.
    pub fn open(path: &Path) -> Result<JsonLines, String> {
        let out: Box<dyn Write + Send> = if path == Path::new("-") {
            Box::new(std::io::stdout())
        } else {
            Box::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("cannot open event log {}: {e}", path.display()))?,
            )
        };
        Ok(JsonLines { out })
    }
}

impl Sink for JsonLines {
    fn deliver(&mut self, e: &Event) -> Result<(), String> {
        let mut line = serde_json::to_vec(e).map_err(|e| e.to_string())?;
        line.push(b'\n');
        self.out
            .write_all(&line)
            .and_then(|()| self.out.flush())
            .map_err(|e| format!("cannot write the event log: {e}"))
    }
}
