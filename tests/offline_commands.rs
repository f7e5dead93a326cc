//! The offline commands lose nothing and speak to people (issue 16), run as a user runs
//! them: outputs that never destroy inputs, write errors and meaningless sizes that fail
//! with a non-zero exit, a closed pipe (a real one) that ends a command quietly, a benchmark
//! that cleans up when interrupted, and `replay`'s timeline of a synthesized scan.

mod common;

use std::io::Read;
use std::process::Stdio;

use common::{iotad, ok, run, s, scratch, synth};

fn err(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Fails with exit status 1 and a message holding `want`.
fn refused(args: &[&str], want: &str) {
    let out = run(args);
    let e = err(&out);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {e}");
    assert!(e.contains(want), "{args:?}: {e}");
    assert!(!e.contains("panicked"), "{args:?}: {e}");
}

#[test]
fn outputs_never_destroy_inputs_and_write_errors_fail() {
    let dir = scratch("offline-outputs");
    let pcap = dir.join("net.pcap");
    synth(&pcap, 3, 120, 3, &[]);
    let before = std::fs::read(&pcap).unwrap();
    // an existing CSV survives a missing capture
    let csv = dir.join("rows.csv");
    ok(&["features", s(&pcap), "-o", s(&csv)]);
    let rows = std::fs::read(&csv).unwrap();
    assert!(rows.iter().filter(|&&b| b == b'\n').count() > 10);
    refused(
        &["features", s(&dir.join("missing.pcap")), "-o", s(&csv)],
        "missing.pcap",
    );
    assert_eq!(std::fs::read(&csv).unwrap(), rows, "the CSV is kept");
    // an output that is an input is refused, and the capture kept
    refused(&["features", s(&pcap), "-o", s(&pcap)], "both an input");
    assert_eq!(std::fs::read(&pcap).unwrap(), before);
    // a full disk: an error and exit 1, not "wrote N packets"
    if std::path::Path::new("/dev/full").exists() {
        refused(
            &["synth", "--out", "/dev/full", "--duration", "600"],
            "No space left on device",
        );
    } else {
        eprintln!("SKIPPED: no /dev/full here: the full-disk case of synth is not run");
    }
    // a synth that fails leaves no half file behind and keeps what was there
    let kept = dir.join("no-such-dir").join("x.pcap");
    refused(
        &["synth", "--out", s(&kept), "--duration", "60"],
        "cannot write",
    );
    // train: sizes and epochs that mean nothing, and an unwritable output, before any work
    let model = dir.join("m.safetensors");
    refused(
        &["train", s(&pcap), "-o", s(&model), "--lstm", "0"],
        "--lstm",
    );
    refused(
        &["train", s(&pcap), "-o", s(&model), "--lstm", "100000"],
        "--lstm must be 1 to 1024",
    );
    refused(
        &["train", s(&pcap), "-o", s(&model), "--epochs", "0"],
        "--epochs",
    );
    refused(
        &[
            "train",
            s(&pcap),
            "-o",
            s(&dir.join("nowhere/m.safetensors")),
        ],
        "cannot write",
    );
    refused(&["train", "--csv", s(&csv), "-o", s(&csv)], "both an input");
    assert_eq!(std::fs::read(&csv).unwrap(), rows);
    // the minimum the message states is the real one
    refused(
        &["train", "--csv", s(&csv), "-o", s(&model)],
        "needs 161 windows of its own",
    );
    // a CSV of 60-s windows does not make a 10-s model
    let csv60 = dir.join("rows60.csv");
    ok(&["features", s(&pcap), "-o", s(&csv60), "--window-secs", "60"]);
    refused(
        &[
            "train",
            "--csv",
            s(&csv60),
            "-o",
            s(&model),
            "--window-secs",
            "10",
        ],
        "holds 60-s windows",
    );
    refused(
        &[
            "train",
            "--csv",
            s(&csv60),
            "--csv",
            s(&csv),
            "-o",
            s(&model),
        ],
        "train on one length",
    );
    // bench: sizes that mean nothing
    refused(&["bench", "--packets", "0"], "--packets must be at least 1");
    refused(&["bench", "--repeat", "0"], "--repeat must be at least 1");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs `iotad args` with its stdout on a real pipe, reads one line and closes the pipe:
/// the command must end quietly (no panic, no "Broken pipe" message).
fn closed_pipe(args: &[&str]) {
    let mut child = iotad()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let e = err(&out);
    assert!(!e.contains("panicked"), "{args:?}: {e}");
    assert!(!e.contains("Broken pipe"), "{args:?}: {e}");
    use std::os::unix::process::ExitStatusExt;
    assert!(
        out.status.success() || out.status.signal() == Some(libc_sigpipe()),
        "{args:?}: {:?} {e}",
        out.status
    );
}

fn libc_sigpipe() -> i32 {
    13
}

#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    let dir = scratch("offline-pipe");
    let pcap = dir.join("big.pcap");
    synth(&pcap, 4, 1800, 6, &[]);
    closed_pipe(&["--help"]);
    closed_pipe(&["features", "--list"]);
    closed_pipe(&["synth", "--list-devices", "--devices", "200"]);
    closed_pipe(&["features", s(&pcap)]);
    closed_pipe(&["replay", s(&pcap), "--no-model"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_interrupted_bench_leaves_no_capture_behind() {
    let mut child = iotad()
        .args(["bench", "--packets", "20000000", "--repeat", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let tmp = std::env::temp_dir();
    let names = [
        tmp.join(format!("iotad-bench-{pid}.pcap")),
        tmp.join(format!(".iotad-bench-{pid}.pcap.tmp{pid}")),
    ];
    // wait until the capture is being written (bytes on disk), at most a minute
    let mut seen = false;
    for _ in 0..600 {
        if names
            .iter()
            .any(|n| std::fs::metadata(n).is_ok_and(|m| m.len() > 1_000_000))
        {
            seen = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
    let status = child.wait().unwrap();
    if !seen {
        eprintln!("SKIPPED: bench wrote no capture within a minute: cleanup not checked");
        return;
    }
    assert!(!status.success(), "{status:?}");
    for n in &names {
        assert!(!n.exists(), "{} left behind", n.display());
    }
}

fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn replay_tells_people_who_scanned_whom() {
    let dir = scratch("offline-replay");
    let pcap = dir.join("scan.pcap");
    // the camera scans the plug 20 minutes in; 15 minutes of learning
    synth(&pcap, 5, 1800, 6, &["portscan@1300:02:10:00:00:00:00"]);
    let learn = ["--learning-windows", "90"];
    let text = ok(&[&["replay", s(&pcap)][..], &learn].concat());
    assert!(!text.contains('{'), "no JSON in the human output: {text}");
    assert!(
        text.contains("learning ended at 2024-01-01T00:15:00Z"),
        "{text}"
    );
    let line = |who: &str, what: &str| {
        text.lines()
            .find(|l| l.contains(who) && l.contains(what))
            .unwrap_or_else(|| panic!("no line with {who} {what}: {text}"))
            .to_string()
    };
    let scanner = line("camera-0", "scanning:");
    assert!(scanner.contains("; target plug-1"), "{scanner}");
    assert!(scanner.contains("2024-01-01T00:21:"), "{scanner}");
    let target = line("plug-1", "receiving connection attempts");
    assert!(target.contains("; from camera-0"), "{target}");
    assert!(target.contains(" low "), "{target}");
    assert!(
        scanner.contains(" high ") || scanner.contains(" medium "),
        "{scanner}"
    );
    // the close repeats what opened it
    line("camera-0", "ended: was scanning: TCP probes");
    // the device table has an alerts column: the camera opened one incident
    assert!(text.contains("alerts  first seen"), "{text}");
    let row = line("02:10:00:00:00:00  192.168.1.12", "camera-0");
    assert_eq!(row.split_whitespace().nth(4), Some("1"), "{row}");

    // JSON: events, devices, then the summary; attacker outranks target; close == open
    let json = json_lines(&ok(&[&["replay", s(&pcap), "--json"][..], &learn].concat()));
    let last = json.last().unwrap();
    assert_eq!(last["kind"], "summary", "{last}");
    assert_eq!(last["learning_covers_capture"], false);
    let open = |mac: &str| {
        json.iter()
            .find(|e| e["phase"] == "open" && e["device"]["mac"] == mac)
            .unwrap_or_else(|| panic!("{mac} alerted"))
            .clone()
    };
    let (cam, plug) = (open("02:10:00:00:00:00"), open("02:10:01:00:00:01"));
    let rank = |e: &serde_json::Value| match e["severity"].as_str().unwrap() {
        "low" => 0,
        "medium" => 1,
        _ => 2,
    };
    assert!(rank(&cam) > rank(&plug), "{cam} {plug}");
    assert_eq!(cam["behaviour"], "scan");
    assert_eq!(plug["behaviour"], "targeted");
    let close = json
        .iter()
        .find(|e| e["phase"] == "close" && e["incident"] == cam["incident"])
        .expect("the scan's incident closes");
    assert_eq!(close["explanation"], cam["explanation"]);
    assert_eq!(close["severity"], cam["severity"]);

    // a capture cut during the scan: its incident is still open at the end
    let cut = dir.join("cut.pcap");
    synth(&cut, 5, 1330, 6, &["portscan@1300:02:10:00:00:00:00"]);
    let text = ok(&[&["replay", s(&cut)][..], &learn].concat());
    let open_line = line_of(&text, "still open at the end");
    assert!(open_line.contains("camera-0 (scanning"), "{open_line}");

    // wholly inside the learning period: said, with what was scored
    let text = ok(&["replay", s(&cut), "--learning-windows", "400"]);
    let l = line_of(&text, "the whole capture lies inside the learning period");
    assert!(
        l.contains("device-windows were scored and nothing could alert"),
        "{l}"
    );
    assert!(text.contains("(4000 s)") || text.contains("min)"), "{text}");

    // --state: a missing file is a fresh start; time running backwards is warned about
    let state = dir.join("state.json");
    let out = run(&[&["replay", s(&pcap), "--state", s(&state)][..], &learn].concat());
    assert!(out.status.success());
    assert!(err(&out).contains("starting fresh"), "{}", err(&out));
    assert!(!err(&out).contains("restored 0"), "{}", err(&out));
    let out = run(&[&["replay", s(&cut), "--state", s(&state)][..], &learn].concat());
    assert!(out.status.success());
    assert!(err(&out).contains("time runs backwards"), "{}", err(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

fn line_of(text: &str, what: &str) -> String {
    text.lines()
        .find(|l| l.contains(what))
        .unwrap_or_else(|| panic!("no line with {what}: {text}"))
        .to_string()
}
