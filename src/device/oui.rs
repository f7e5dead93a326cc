//! Vendor names from the MAC's OUI, read from Debian's IEEE registry copy
//! (`/usr/share/ieee-data/oui.csv`, package `ieee-data`) when it is present. Never downloaded.
//!
//! Lookups happen off the hot path (a new device, a summary): one pass over the file resolves
//! any number of OUIs, and nothing of the file stays in memory.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

/// Where Debian's `ieee-data` package puts the registry.
pub const DEFAULT_PATH: &str = "/usr/share/ieee-data/oui.csv";

/// Resolves the vendor of each OUI in `ouis` with one pass over `path`. OUIs the file does
/// not list, and every OUI when the file is missing, are absent from the result.
pub fn lookup(path: &Path, ouis: &[u32]) -> HashMap<u32, String> {
    let mut out = HashMap::new();
    let Ok(file) = std::fs::File::open(path) else {
        log::debug!(
            "no OUI registry at {}: vendors stay unknown",
            path.display()
        );
        return out;
    };
    for line in BufReader::new(file).lines().map_while(Result::ok) {
        // Registry,Assignment,Organization Name,Organization Address
        let mut fields = line.splitn(3, ',');
        let (Some(_), Some(hex), Some(rest)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        let Ok(oui) = u32::from_str_radix(hex, 16) else {
            continue;
        };
        if hex.len() != 6 || !ouis.contains(&oui) {
            continue;
        }
        out.insert(oui, first_csv_field(rest));
        if out.len() == ouis.len() {
            break;
        }
    }
    out
}

/// The first field of a CSV fragment, unquoted.
fn first_csv_field(s: &str) -> String {
    if let Some(q) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = q.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    out.push('"');
                    chars.next();
                }
                '"' => break,
                c => out.push(c),
            }
        }
        out
    } else {
        s.split(',').next().unwrap_or("").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_registry_format() {
        let dir = std::env::temp_dir().join(format!("iotad-oui-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("oui.csv");
        std::fs::write(
            &p,
            "Registry,Assignment,Organization Name,Organization Address\n\
             MA-L,F4B85E,\"Texas Instruments, Inc\",12500 TI Blvd Dallas TX US 75243\n\
             MA-L,001C7F,Check Point Software Technologies,5 Ha'solelim St. Tel Aviv IL 67897\n",
        )
        .unwrap();
        let v = lookup(&p, &[0xf4b85e, 0x001c7f, 0x123456]);
        assert_eq!(
            v.get(&0xf4b85e).map(String::as_str),
            Some("Texas Instruments, Inc")
        );
        assert_eq!(
            v.get(&0x001c7f).map(String::as_str),
            Some("Check Point Software Technologies")
        );
        assert_eq!(v.len(), 2);
        assert!(lookup(&dir.join("missing.csv"), &[1]).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
