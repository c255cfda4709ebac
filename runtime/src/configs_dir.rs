//! Connector JSON files in the configs folder: read at start, then watched so an added,
//! edited or removed file creates, reconfigures or deletes its connector without a restart.
//!
//! Both Kafka Connect shapes are accepted: `{"name": "x", "config": {...}}` and a flat map
//! with `name`. Without a name, the file's stem names the connector. Values may be JSON
//! strings, numbers or booleans.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::Watcher;
use serde_json::Value as Json;
use sluice_sdk::Props;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::herder::{Herder, Origin};

/// Parses one connector file into its name and configuration.
///
/// # Errors
/// A message saying what is wrong with the file's JSON or shape.
pub fn parse_connector_json(path: &Path, text: &str) -> Result<(String, Props), String> {
    let json: Json = serde_json::from_str(text).map_err(|e| format!("is not valid JSON: {e}"))?;
    let Json::Object(top) = json else {
        return Err(
            "must hold a JSON object: {\"name\": ..., \"config\": {...}} or a flat map of options"
                .to_string(),
        );
    };
    let (name, config) = match top.get("config") {
        Some(Json::Object(config)) => {
            let name = top.get("name").and_then(Json::as_str).map(str::to_string);
            if let Some(extra) = top.keys().find(|k| *k != "name" && *k != "config") {
                return Err(format!(
                    "has '{extra}' beside \"name\" and \"config\"; put connector options inside \"config\""
                ));
            }
            (name, config.clone())
        }
        Some(_) => return Err("has a \"config\" that is not a JSON object".to_string()),
        None => (
            top.get("name").and_then(Json::as_str).map(str::to_string),
            top,
        ),
    };
    let mut props = Props::new();
    for (k, v) in config {
        let text = match v {
            Json::String(s) => s,
            Json::Number(n) => n.to_string(),
            Json::Bool(b) => b.to_string(),
            Json::Null => continue,
            other => {
                return Err(format!(
                    "option '{k}' must be a string, number or boolean (got {other})"
                ))
            }
        };
        props.insert(k, text);
    }
    let inner = props.get("name").cloned();
    let name = match (name, inner) {
        (Some(a), Some(b)) if a != b => {
            return Err(format!(
                "names the connector '{a}' but its config says name '{b}'; make them equal"
            ))
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .ok_or("has no name")?,
    };
    if name.trim().is_empty() {
        return Err("has an empty connector name".to_string());
    }
    props.insert("name".to_string(), name.clone());
    Ok((name, props))
}

/// Connectors currently defined by files: file -> (name, configuration).
type Applied = BTreeMap<PathBuf, (String, Props)>;

/// Quiet time after the last change before the folder is read: editors and `cp` write a
/// file in several steps.
const SETTLE: Duration = Duration::from_millis(200);
/// Longest a stream of changes can hold back a read.
const SETTLE_MAX: Duration = Duration::from_secs(2);
/// How often the fallback watcher (used where inotify is not available) compares the
/// folder's metadata; it never reads the files themselves.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// What the folder watch remembers between reads of the folder.
#[derive(Debug, Default)]
struct FolderState {
    /// Connectors defined by files.
    applied: Applied,
    /// The last problem logged per file and the content it was about: a problem is logged
    /// once per change of the file, not once per read of the folder.
    reported: BTreeMap<PathBuf, Reported>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Reported {
    /// Hash of the file's bytes; `None` when they could not be read.
    content: Option<u64>,
    problem: String,
}

impl FolderState {
    /// Whether `problem` about `path` (with `content`) is new and must be logged; it is
    /// remembered either way.
    fn first_report(&mut self, path: &Path, content: Option<u64>, problem: &str) -> bool {
        let report = Reported {
            content,
            problem: problem.to_owned(),
        };
        if self.reported.get(path) == Some(&report) {
            return false;
        }
        self.reported.insert(path.to_path_buf(), report);
        true
    }

    /// `path` is fine (or gone): a later problem with it is logged again.
    fn clear_report(&mut self, path: &Path) {
        self.reported.remove(path);
    }
}

/// Whether a watcher event can mean a connector file changed. Reading the folder opens,
/// reads and closes files, and inotify reports that too: reacting to those events made the
/// watch re-read the folder forever.
fn is_change(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    match kind {
        notify::EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        notify::EventKind::Access(_) => false,
        notify::EventKind::Create(_)
        | notify::EventKind::Modify(_)
        | notify::EventKind::Remove(_)
        | notify::EventKind::Any
        | notify::EventKind::Other => true,
    }
}

/// A hash of a file's bytes, to tell whether it changed since its problem was logged.
fn content_hash(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// Reads every connector file now, then keeps watching the folder until `token` is cancelled.
/// The folder is read again only after a change to it (create, write, rename, remove),
/// once a burst of changes has settled.
pub async fn run_config_dir(worker: Arc<Herder>, dir: PathBuf, token: CancellationToken) {
    let mut folder = FolderState::default();
    if !dir.exists() {
        warn!(dir = %dir.display(), "connector config folder does not exist; create it and add *.json files to define connectors");
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    // Watch first, then read: a file written in between is seen by the next read.
    let mut watch = FolderWatch::start(&dir, tx.clone());
    sync_dir(&worker, &dir, &mut folder).await;
    worker.mark_started();
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            got = rx.recv() => if got.is_none() { return; },
        }
        let deadline = tokio::time::Instant::now() + SETTLE_MAX;
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                got = rx.recv() => {
                    if got.is_none() { return; }
                    if tokio::time::Instant::now() >= deadline { break; }
                }
                () = tokio::time::sleep(SETTLE) => break,
            }
        }
        if watch.on_parent && dir.is_dir() {
            // The folder was created: watch it instead of its parent.
            watch = FolderWatch::start(&dir, tx.clone());
        }
        sync_dir(&worker, &dir, &mut folder).await;
    }
}

/// The file watcher, kept alive for as long as the folder is watched.
struct FolderWatch {
    _watcher: Option<Box<dyn Watcher + Send>>,
    /// Watching the current directory because the folder does not exist (yet).
    on_parent: bool,
}

impl FolderWatch {
    /// Watches `dir` (or, while it does not exist, the current directory for its creation),
    /// sending on `tx` for every change. Falls back to polling metadata where inotify is not
    /// available.
    fn start(dir: &Path, tx: mpsc::UnboundedSender<()>) -> Self {
        let on_parent = !dir.is_dir();
        let target = if on_parent {
            PathBuf::from(".")
        } else {
            dir.to_path_buf()
        };
        // On the parent, only events about the folder itself count.
        let name = dir.file_name().map(|n| n.to_os_string());
        let handler = move |res: notify::Result<notify::Event>| {
            let relevant = match &res {
                Ok(event) => {
                    is_change(&event.kind)
                        && (!on_parent
                            || event.paths.is_empty()
                            || event
                                .paths
                                .iter()
                                .any(|p| p.file_name().map(|n| n.to_os_string()) == name))
                }
                // A watcher error (lost events): read the folder to be sure.
                Err(_) => true,
            };
            if relevant {
                let _ = tx.send(());
            }
        };
        let watcher: Option<Box<dyn Watcher + Send>> = match notify::recommended_watcher(
            handler.clone(),
        ) {
            Ok(mut w) => match w.watch(&target, notify::RecursiveMode::NonRecursive) {
                Ok(()) => Some(Box::new(w)),
                Err(e) => {
                    warn!(dir = %target.display(), error = %e, "cannot watch the config folder; polling it instead");
                    poll_watcher(handler, &target)
                }
            },
            Err(e) => {
                warn!(error = %e, "no file watcher available; polling the config folder instead");
                poll_watcher(handler, &target)
            }
        };
        Self {
            _watcher: watcher,
            on_parent,
        }
    }
}

fn poll_watcher(handler: impl notify::EventHandler, dir: &Path) -> Option<Box<dyn Watcher + Send>> {
    // Compares modification times and sizes on each tick, never the files' contents.
    let config = notify::Config::default()
        .with_poll_interval(POLL_INTERVAL)
        .with_compare_contents(false);
    match notify::PollWatcher::new(handler, config) {
        Ok(mut w) => {
            if let Err(e) = w.watch(dir, notify::RecursiveMode::NonRecursive) {
                error!(dir = %dir.display(), error = %e, "cannot poll the config folder; connector files will not be reloaded");
                return None;
            }
            Some(Box::new(w))
        }
        Err(e) => {
            error!(error = %e, "cannot poll the config folder; connector files will not be reloaded");
            None
        }
    }
}

/// A connector file as read: its content hash (when readable) and what it defines.
type ReadFile = (Option<u64>, Result<(String, Props), String>);

/// Brings the worker in line with the folder's files. Problems are logged once per change
/// of the file they are about.
async fn sync_dir(worker: &Arc<Herder>, dir: &Path, folder: &mut FolderState) {
    let mut present: BTreeMap<PathBuf, ReadFile> = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json") && p.is_file())
            .collect();
        paths.sort();
        for path in paths {
            let read = match std::fs::read(&path) {
                Ok(bytes) => (
                    Some(content_hash(&bytes)),
                    String::from_utf8(bytes)
                        .map_err(|_| "is not UTF-8 text".to_string())
                        .and_then(|text| parse_connector_json(&path, &text)),
                ),
                Err(e) => (None, Err(format!("cannot be read: {e}"))),
            };
            present.insert(path, read);
        }
    }
    debug!(dir = %dir.display(), files = present.len(), "config folder scanned");
    // Removed files delete their connectors; a file that turned invalid keeps the last good one.
    folder.reported.retain(|p, _| present.contains_key(p));
    let removed: Vec<PathBuf> = folder
        .applied
        .keys()
        .filter(|p| !present.contains_key(*p))
        .cloned()
        .collect();
    for path in removed {
        if let Some((name, _)) = folder.applied.remove(&path) {
            match worker
                .delete_connector(&name, &Origin::File(path.clone()))
                .await
            {
                Ok(()) => {
                    info!(file = %path.display(), connector = %name, "file removed; connector deleted")
                }
                Err(e) => {
                    error!(file = %path.display(), connector = %name, error = %e, "cannot delete connector")
                }
            }
        }
    }
    // Files to create or reconfigure; applied together below, so that one whose validation
    // waits on an outside system does not hold up the others.
    let mut puts: Vec<(PathBuf, Option<u64>, String, Props)> = Vec::new();
    for (path, (content, parsed)) in present {
        let (name, props) = match parsed {
            Ok(parsed) => parsed,
            Err(e) => {
                if folder.first_report(&path, content, &e) {
                    error!(file = %path.display(), "connector file {} {e}", path.display());
                }
                continue;
            }
        };
        if folder
            .applied
            .get(&path)
            .is_some_and(|(n, p)| *n == name && *p == props)
        {
            folder.clear_report(&path);
            continue;
        }
        if let Some((old_name, _)) = folder.applied.get(&path).filter(|(n, _)| *n != name) {
            let old_name = old_name.clone();
            let _ = worker
                .delete_connector(&old_name, &Origin::File(path.clone()))
                .await;
            folder.applied.remove(&path);
        }
        let defined_elsewhere = folder
            .applied
            .iter()
            .find(|(p, (n, _))| **p != path && *n == name)
            .map(|(p, _)| p)
            .or_else(|| puts.iter().find(|(_, _, n, _)| *n == name).map(|(p, ..)| p));
        if let Some(other) = defined_elsewhere {
            let problem = format!(
                "defines connector '{name}', which {} already defines; rename one of them",
                other.display()
            );
            if folder.first_report(&path, content, &problem) {
                error!(file = %path.display(), "connector file {} {problem}", path.display());
            }
            continue;
        }
        puts.push((path, content, name, props));
    }
    let results = futures::future::join_all(puts.iter().map(|(path, _, name, props)| {
        worker.put_connector(name, props.clone(), Origin::File(path.clone()))
    }))
    .await;
    for ((path, content, name, props), result) in puts.into_iter().zip(results) {
        match result {
            Ok(created) => {
                info!(file = %path.display(), connector = %name, created, "connector file applied");
                folder.clear_report(&path);
                folder.applied.insert(path, (name, props));
            }
            Err(e) => {
                if folder.first_report(&path, content, &e.to_string()) {
                    error!(file = %path.display(), "connector file {}: {e}", path.display());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes_parse() {
        let p = Path::new("configs/a.json");
        let (n, c) = parse_connector_json(
            p,
            r#"{"name":"lines","config":{"connector.class":"file-source","tasks.max":1,"file":"x"}}"#,
        )
        .unwrap();
        assert_eq!(n, "lines");
        assert_eq!(c.get("tasks.max").map(String::as_str), Some("1"));
        assert_eq!(c.get("name").map(String::as_str), Some("lines"));
        let (n, _) = parse_connector_json(p, r#"{"connector.class":"file-source"}"#).unwrap();
        assert_eq!(n, "a");
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let p = Path::new("a.json");
        assert!(parse_connector_json(p, "{nope")
            .unwrap_err()
            .contains("not valid JSON"));
        assert!(parse_connector_json(p, "[1]")
            .unwrap_err()
            .contains("JSON object"));
        assert!(
            parse_connector_json(p, r#"{"name":"a","config":{"x":[1]}}"#)
                .unwrap_err()
                .contains("option 'x' must be a string")
        );
        assert!(
            parse_connector_json(p, r#"{"name":"a","config":{"name":"b"}}"#)
                .unwrap_err()
                .contains("make them equal")
        );
    }

    #[test]
    fn reading_the_folder_is_not_a_change() {
        use notify::event::{
            AccessKind, AccessMode, CreateKind, DataChange, MetadataKind, ModifyKind, RemoveKind,
            RenameMode,
        };
        use notify::EventKind;
        for kind in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Access(AccessKind::Any),
        ] {
            assert!(!is_change(&kind), "{kind:?}");
        }
        for kind in [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Modify(ModifyKind::Name(RenameMode::From)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::WriteTime)),
            EventKind::Remove(RemoveKind::File),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
        ] {
            assert!(is_change(&kind), "{kind:?}");
        }
    }

    #[test]
    fn a_problem_is_reported_once_per_change_of_the_file() {
        let mut folder = FolderState::default();
        let path = Path::new("configs/bad.json");
        let bad = Some(content_hash(b"{nope"));
        assert!(folder.first_report(path, bad, "is not valid JSON"));
        assert!(!folder.first_report(path, bad, "is not valid JSON"));
        // Edited, still bad: reported again, once.
        let worse = Some(content_hash(b"{nope nope"));
        assert!(folder.first_report(path, worse, "is not valid JSON"));
        assert!(!folder.first_report(path, worse, "is not valid JSON"));
        // Same bytes, another problem (a connector it clashes with appeared): reported.
        assert!(folder.first_report(path, worse, "defines connector 'a' twice"));
        // Fixed, then broken the same way again: reported again.
        folder.clear_report(path);
        assert!(folder.first_report(path, worse, "defines connector 'a' twice"));
        // Problems of other files are their own.
        assert!(folder.first_report(Path::new("configs/other.json"), worse, "x"));
    }
}
