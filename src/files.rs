//! Writing files so that a crash or a full disk never leaves half of one: the bytes go to a
//! temporary file beside the target, are flushed to disk, and the temporary file is renamed
//! over the target (atomic on POSIX file systems), then the directory is synced.

use std::io::Write;
use std::path::Path;

/// Whether `path` exists and is something other than a regular file (a device such as
/// /dev/null, a FIFO, a terminal): such a target is written in place, since renaming a file
/// over it would replace the device itself.
pub fn is_special(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.file_type().is_file())
}

/// Writes `bytes` to `path` atomically (in place when `path` is not a regular file).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if is_special(path) {
        return std::fs::write(path, bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()));
    }
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|_| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("cannot write {}: {e}", path.display()));
    }
    // the rename itself reaches the disk with the directory (best effort: not every file
    // system lets a directory be synced)
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The name a file is written under before it replaces `path`: beside it (so the rename
/// stays on one file system), hidden, with this process's id. None when `path` is not a
/// regular file ([`is_special`]): that is written directly.
pub fn temporary_beside(path: &Path) -> Option<std::path::PathBuf> {
    if is_special(path) {
        return None;
    }
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".tmp{}", std::process::id()));
    Some(path.with_file_name(name))
}

/// Refuses an output that is one of the inputs (writing it would destroy what is read).
pub fn refuse_overwriting_inputs(out: &Path, inputs: &[std::path::PathBuf]) -> Result<(), String> {
    let Ok(out_real) = std::fs::canonicalize(out) else {
        return Ok(()); // it does not exist yet
    };
    for input in inputs {
        if std::fs::canonicalize(input).is_ok_and(|i| i == out_real) {
            return Err(format!(
                "{} is both an input and the output: name another output file",
                out.display()
            ));
        }
    }
    Ok(())
}

/// Fails, with the reason, when a file cannot be written at `path` (its directory is missing
/// or read-only): checked before long work, by creating and removing the temporary file it
/// would be written through.
pub fn check_writable(path: &Path) -> Result<(), String> {
    let probe = temporary_beside(path);
    let target = probe.as_deref().unwrap_or(path);
    let opened = if probe.is_some() {
        std::fs::File::create(target)
    } else {
        std::fs::OpenOptions::new().append(true).open(target)
    };
    match opened {
        Ok(_) => {
            if let Some(p) = probe {
                let _ = std::fs::remove_file(p);
            }
            Ok(())
        }
        Err(e) => Err(format!("cannot write {}: {e}", path.display())),
    }
}

/// The files [`remove_on_signal`] deletes when SIGINT or SIGTERM arrives.
static DOOMED: std::sync::atomic::AtomicPtr<Vec<std::ffi::CString>> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

extern "C" fn remove_and_die(sig: libc::c_int) {
    let list = DOOMED.load(std::sync::atomic::Ordering::Acquire);
    // SAFETY: the list is leaked and never freed; unlink, signal and raise are
    // async-signal-safe.
    unsafe {
        if let Some(list) = list.as_ref() {
            for c in list {
                libc::unlink(c.as_ptr());
            }
        }
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// Until the process ends, SIGINT or SIGTERM deletes `paths` (temporary files an offline
/// command would otherwise leave behind: a benchmark's 1.8 GB capture) and then ends the
/// process as the signal would have. A later call replaces the list.
pub fn remove_on_signal(paths: &[&Path]) {
    use std::os::unix::ffi::OsStrExt;
    let list: Vec<std::ffi::CString> = paths
        .iter()
        .filter_map(|p| std::ffi::CString::new(p.as_os_str().as_bytes()).ok())
        .collect();
    // leaked on purpose: a handler may read it at any time
    let ptr = Box::into_raw(Box::new(list));
    DOOMED.store(ptr, std::sync::atomic::Ordering::Release);
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is valid; the handler is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = remove_and_die as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_and_reports_failures() {
        let dir = std::env::temp_dir().join(format!("iotad-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f.json");
        write_atomically(&p, b"first, longer").unwrap();
        write_atomically(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary left"
        );
        let err = write_atomically(&dir.join("missing/f.json"), b"x").unwrap_err();
        assert!(err.contains("missing/f.json"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_device_is_written_in_place_never_replaced() {
        let null = Path::new("/dev/null");
        if !is_special(null) {
            eprintln!("SKIPPED: /dev/null is not a device on this machine");
            return;
        }
        assert_eq!(temporary_beside(null), None);
        write_atomically(null, b"gone").unwrap();
        assert!(is_special(null), "/dev/null is still a device");
        assert!(!is_special(Path::new("/nonexistent/x")));
    }
}
