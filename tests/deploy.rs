//! `make deploy` / `make uninstall` (deploy/pi.sh) against a real sshd the test starts on a
//! loopback port, with a throwaway host key, user key and configuration, deploying into a
//! root prefix: files land with the right modes, a second run changes nothing, an existing
//! configuration is kept, uninstall removes everything it added. Needs root (sshd logs in as
//! root), Debian's openssh-server and openssh-client, and make; skipped loudly without them.
//! systemctl is never run with a prefix: the test says so.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{s, scratch};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

struct Sshd(Child);

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Starts sshd on a free loopback port; returns it and an ssh_config file for it.
fn sshd(dir: &Path) -> (Sshd, PathBuf) {
    for key in ["host", "user"] {
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(dir.join(key))
            .status()
            .unwrap();
        assert!(st.success(), "ssh-keygen");
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sftp = [
        "/usr/lib/openssh/sftp-server",
        "/usr/libexec/openssh/sftp-server",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .unwrap_or("internal-sftp");
    let cfg = dir.join("sshd_config");
    std::fs::write(
        &cfg,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host\n\
             AuthorizedKeysFile {d}/user.pub\nPermitRootLogin yes\nUsePAM no\nStrictModes no\n\
             PasswordAuthentication no\nPidFile {d}/sshd.pid\nSubsystem sftp {sftp}\n",
            d = dir.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-f", s(&cfg), "-E"])
        .arg(dir.join("sshd.log"))
        .spawn()
        .expect("sshd starts");
    let sshd = Sshd(child);
    let client = dir.join("ssh_config");
    std::fs::write(
        &client,
        format!(
            "Host *\n  Port {port}\n  IdentityFile {}/user\n  StrictHostKeyChecking no\n  \
             UserKnownHostsFile /dev/null\n  LogLevel ERROR\n",
            dir.display()
        ),
    )
    .unwrap();
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "sshd did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (sshd, client)
}

fn make(target: &str, client: &Path, root: &Path, bin: Option<&Path>) -> String {
    let mut cmd = Command::new("make");
    cmd.current_dir(REPO).args([
        "-s",
        "--no-print-directory",
        target,
        "PI=root@127.0.0.1",
        &format!("ROOT={}", root.display()),
        &format!("SSH_OPTS=-F {}", client.display()),
    ]);
    if let Some(b) = bin {
        cmd.arg(format!("BIN={}", b.display()));
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "make {target}: {text}");
    text
}

/// Every path under `root` with its mode, modification time and contents.
fn tree(root: &Path) -> BTreeMap<PathBuf, (u32, i64, i64, Vec<u8>)> {
    let mut all = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let body = if m.is_dir() {
                todo.push(p.clone());
                Vec::new()
            } else {
                std::fs::read(&p).unwrap()
            };
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            all.insert(rel, (m.mode() & 0o7777, m.mtime(), m.mtime_nsec(), body));
        }
    }
    all
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn deploy_twice_then_uninstall_over_ssh() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("*** SKIPPED: not root: sshd cannot log in as root here; deploy not tested ***");
        return;
    }
    let missing: Vec<&str> = ["/usr/sbin/sshd", "ssh", "scp", "ssh-keygen", "make"]
        .into_iter()
        .filter(|c| !(Path::new(c).exists() || have(c)))
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "*** SKIPPED: {} missing (apt-get install openssh-server openssh-client make): \
             deploy not tested ***",
            missing.join(", ")
        );
        return;
    }
    let dir = scratch("deploy");
    let (_sshd, client) = sshd(&dir);
    let root = dir.join("pi");
    std::fs::create_dir_all(&root).unwrap();
    // the binary cargo built stands in for the aarch64 one: deploy copies, never runs it
    let bin = Path::new(env!("CARGO_BIN_EXE_iotad"));

    let out = make("deploy", &client, &root, Some(bin));
    println!("{out}");
    let installed = root.join("usr/local/bin/iotad");
    let unit = root.join("etc/systemd/system/iotad.service");
    let config = root.join("etc/iotad/config.json");
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(bin).unwrap()
    );
    assert_eq!(mode(&installed), 0o755);
    assert_eq!(
        std::fs::read(&unit).unwrap(),
        std::fs::read(format!("{REPO}/systemd/iotad.service")).unwrap()
    );
    assert_eq!(mode(&unit), 0o644);
    assert_eq!(
        std::fs::read(&config).unwrap(),
        std::fs::read(format!("{REPO}/deploy/config.json")).unwrap()
    );
    assert_eq!(mode(&config), 0o644);
    // the default configuration is a valid one
    iotad::config::Config::load(Some(&config)).expect("deploy/config.json is valid");
    assert!(out.contains("not run (systemd is not PID 1"), "{out}");
    // it ends with where the status page is (the default binds loopback: a tunnel)
    assert!(
        out.contains("status page: http://127.0.0.1:8080/ on the Pi (loopback only); from here: ssh -L 8080:127.0.0.1:8080 "),
        "{out}"
    );

    let before = tree(&root);
    let again = make("deploy", &client, &root, Some(bin));
    assert!(again.contains("nothing changed"), "{again}");
    assert_eq!(tree(&root), before, "a second deploy changes nothing");

    let out = make("uninstall", &client, &root, None);
    println!("{out}");
    assert_eq!(
        tree(&root),
        BTreeMap::new(),
        "uninstall removes everything deploy added"
    );
    let again = make("uninstall", &client, &root, None);
    assert!(again.contains("nothing to remove"), "{again}");

    // a configuration already there is kept by deploy and by uninstall
    std::fs::create_dir_all(root.join("etc/iotad")).unwrap();
    std::fs::write(&config, "{\"capture\": {\"interface\": \"eth1\"}}\n").unwrap();
    let out = make("deploy", &client, &root, Some(bin));
    assert!(out.contains("kept"), "{out}");
    make("uninstall", &client, &root, None);
    let left: Vec<PathBuf> = tree(&root).into_keys().collect();
    assert_eq!(
        left,
        [
            PathBuf::from("etc"),
            "etc/iotad".into(),
            "etc/iotad/config.json".into()
        ]
    );
    eprintln!(
        "note: with a ROOT prefix (and systemd not PID 1 here: {}), systemctl daemon-reload, \
         enable --now, restart and disable --now were not exercised",
        std::fs::read_to_string("/proc/1/comm")
            .unwrap_or_default()
            .trim()
    );
}
