//! A real PostgreSQL server for tests, started from Debian's `postgresql` package binaries.
//!
//! Std only, so other test binaries can include this file with `#[path = "..."] mod pg_server;`.
//!
//! - [`PgServer::shared`] starts one server per test binary; give each test its own database
//!   with [`PgServer::create_database`].
//! - [`PgServer::start_new`] starts a private server (for tests that stop or reconfigure it).
//!
//! `initdb` refuses to run as root, so as root the server runs as the unprivileged
//! `postgres` user (created by the Debian package) through `setpriv`. Every server process is
//! started with a parent-death signal from one long-lived keeper thread, so servers die with
//! the test process even when it is killed. Data directories of dead test processes are
//! removed the next time a server starts.
#![allow(dead_code, unreachable_pub)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The superuser and its password (host connections use scram-sha-256).
pub const SUPERUSER: &str = "postgres";
/// The superuser's password.
pub const PASSWORD: &str = "postgres";
const INSTALL_HINT: &str = "PostgreSQL server binaries (initdb, postgres) not found under \
    /usr/lib/postgresql/<version>/bin: install the Debian package postgresql \
    (apt-get install postgresql)";
const DIR_PREFIX: &str = "sluice-pg-";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Finds the directory holding `initdb` and `postgres`.
pub fn bindir() -> PathBuf {
    let mut candidates = Vec::new();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        if out.status.success() {
            candidates.push(PathBuf::from(
                String::from_utf8_lossy(&out.stdout).trim().to_string(),
            ));
        }
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<(u32, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                Some((v, e.path().join("bin")))
            })
            .collect();
        versions.sort();
        candidates.extend(versions.into_iter().rev().map(|(_, p)| p));
    }
    candidates
        .into_iter()
        .find(|dir| dir.join("initdb").exists() && dir.join("postgres").exists())
        .unwrap_or_else(|| panic!("{INSTALL_HINT}"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs `program args` as the server's user (postgres when we are root).
fn as_server_user(program: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("setpriv");
    if is_root() {
        cmd.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--reset-env",
        ]);
    }
    cmd.arg("--pdeathsig=KILL")
        .arg("--")
        .arg(program)
        .args(args);
    cmd
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns `cmd` from a thread that lives as long as the process, so the parent-death
/// signal fires only when the test process ends.
fn spawn_from_keeper(cmd: Command) -> std::io::Result<Child> {
    static KEEPER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let sender = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("pg-keeper".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("start keeper thread");
        Mutex::new(tx)
    });
    let (tx, rx) = mpsc::channel();
    sender
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((cmd, tx))
        .expect("keeper thread alive");
    rx.recv().expect("keeper thread answers")
}

fn run(mut cmd: Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix(DIR_PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A running (or stopped) PostgreSQL server.
#[derive(Debug)]
pub struct PgServer {
    bindir: PathBuf,
    dir: PathBuf,
    port: u16,
    extra: Vec<String>,
    child: Mutex<Option<Child>>,
}

impl PgServer {
    /// The server shared by every test of this binary.
    pub fn shared() -> &'static PgServer {
        static SHARED: OnceLock<PgServer> = OnceLock::new();
        SHARED.get_or_init(|| PgServer::start_with(&[]))
    }

    /// A private server.
    pub fn start_new() -> PgServer {
        PgServer::start_with(&[])
    }

    /// A private server with extra `-c name=value` settings.
    pub fn start_with(settings: &[&str]) -> PgServer {
        remove_stale_dirs();
        let bindir = bindir();
        let dir = std::env::temp_dir().join(format!(
            "{DIR_PREFIX}{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sock")).expect("create server dir");
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, format!("{PASSWORD}\n")).expect("write pwfile");
        if is_root() {
            let mut chown = Command::new("chown");
            chown.args(["-R", "postgres:postgres"]).arg(&dir);
            run(chown, "chown server dir to postgres");
        }
        let data = dir.join("data");
        run(
            as_server_user(
                &bindir.join("initdb"),
                &[
                    "-D",
                    data.to_str().expect("utf-8 path"),
                    "-U",
                    SUPERUSER,
                    "--pwfile",
                    pwfile.to_str().expect("utf-8 path"),
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "-N",
                ],
            ),
            "initdb",
        );
        let server = PgServer {
            bindir,
            dir,
            port: free_port(),
            extra: settings.iter().map(|s| (*s).to_string()).collect(),
            child: Mutex::new(None),
        };
        server.start();
        server
    }

    /// The server's data directory's parent (owned by the server's user).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory of the server's unix socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.join("sock")
    }

    /// Starts the server (again) on its port and waits until it accepts connections.
    pub fn start(&self) {
        let mut guard = self.child.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_some() {
            return;
        }
        let data = self.dir.join("data");
        let port = self.port.to_string();
        let sock = self.socket_dir();
        let mut args: Vec<String> = vec![
            "-D".into(),
            data.to_string_lossy().into(),
            "-p".into(),
            port,
            "-k".into(),
            sock.to_string_lossy().into(),
            "-c".into(),
            "listen_addresses=127.0.0.1".into(),
            "-c".into(),
            "fsync=off".into(),
            "-c".into(),
            "synchronous_commit=off".into(),
            "-c".into(),
            "full_page_writes=off".into(),
            "-c".into(),
            "max_connections=300".into(),
        ];
        for s in &self.extra {
            args.push("-c".into());
            args.push(s.clone());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .expect("open server log");
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cmd = as_server_user(&self.bindir.join("postgres"), &arg_refs);
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        let child = spawn_from_keeper(cmd).expect("start postgres");
        *guard = Some(child);
        drop(guard);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && Command::new(self.bindir.join("pg_isready"))
                    .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
            if ready {
                return;
            }
            if let Some(child) = self
                .child
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_mut()
            {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "postgres exited with {status} while starting: {}",
                        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not become ready in 60s: {}",
                std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server with a fast shutdown (clients are disconnected) and waits for it.
    pub fn stop(&self) {
        let mut guard = self.child.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut child) = guard.take() {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    _ if Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }

    /// A `postgres://` URL for `database` as the superuser over TCP.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{PASSWORD}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// A `jdbc:postgresql://` URL for `database` as the superuser.
    pub fn jdbc_url(&self, database: &str) -> String {
        format!(
            "jdbc:postgresql://127.0.0.1:{}/{database}?user={SUPERUSER}&password={PASSWORD}",
            self.port
        )
    }

    /// Creates a fresh database named after `hint` and returns its name.
    pub fn create_database(&self, hint: &str) -> String {
        let clean: String = hint
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let name = format!("{clean}_{}", COUNTER.fetch_add(1, Ordering::SeqCst));
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        name
    }

    /// Runs `sql` with psql on `database` over the unix socket; returns stdout.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let mut cmd = Command::new(self.bindir.join("psql"));
        cmd.args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-A",
            "-t",
            "-h",
            &self.socket_dir().to_string_lossy(),
            "-p",
            &self.port.to_string(),
            "-U",
            SUPERUSER,
            "-d",
            database,
            "-c",
            sql,
        ]);
        String::from_utf8_lossy(&run(cmd, &format!("psql {sql}")).stdout).to_string()
    }

    /// The `psql` binary of this server's version.
    pub fn psql_path(&self) -> PathBuf {
        self.bindir.join("psql")
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
