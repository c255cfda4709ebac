//! Helpers: run `sluice broker` as a child process, run the CLI tools and kcat.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const TIMEOUT: Duration = Duration::from_secs(30);

pub fn sluice() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
}

/// `sluice broker` running as a child process.
pub struct BrokerProcess {
    pub child: Child,
    pub addr: String,
    pub data_dir: PathBuf,
}

impl BrokerProcess {
    /// Starts the broker on `listen` and waits for its "listening on" line.
    pub fn start(data_dir: &Path, listen: &str) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.with_extension("log"))
            .unwrap();
        let mut child = sluice()
            .args([
                "broker",
                "--schema-registry-listen=",
                "--listen",
                listen,
                "--data-dir",
            ])
            .arg(data_dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("cannot run the sluice binary");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so the broker never blocks on a full pipe.
            for _ in lines {}
        });
        let line = rx.recv_timeout(TIMEOUT).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!(
                "sluice broker did not report its address; log: {}",
                std::fs::read_to_string(data_dir.with_extension("log")).unwrap_or_default()
            )
        });
        let addr = line
            .strip_prefix("sluice broker listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_owned();
        Self {
            child,
            addr,
            data_dir: data_dir.to_owned(),
        }
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn port(&self) -> u16 {
        self.addr.rsplit_once(':').unwrap().1.parse().unwrap()
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command with `input` on stdin; returns its output, failing on a non-zero exit.
pub fn run(mut command: Command, input: &str) -> String {
    let output = run_raw(&mut command, input);
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

pub fn run_raw(command: &mut Command, input: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// kcat, or a failure that names the package to install.
pub fn kcat() -> Command {
    let found = Command::new("kcat")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "kcat is not installed: install the Debian package 'kcat' (apt-get install kcat); \
         ./scripts/test does this"
    );
    Command::new("kcat")
}
