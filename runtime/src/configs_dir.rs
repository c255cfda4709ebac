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
use tracing::{error, info, warn};

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

/// Reads every connector file now, then keeps watching the folder until `token` is cancelled.
pub async fn run_config_dir(worker: Arc<Herder>, dir: PathBuf, token: CancellationToken) {
    let mut applied = Applied::new();
    if !dir.exists() {
        warn!(dir = %dir.display(), "connector config folder does not exist; create it and add *.json files to define connectors");
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let watch_target = if dir.exists() {
        dir.clone()
    } else {
        PathBuf::from(".")
    };
    let handler = move |res: notify::Result<notify::Event>| {
        if res.is_ok() {
            let _ = tx.send(());
        }
    };
    // Keep the watcher alive for the loop's lifetime; fall back to polling where inotify is
    // not available.
    let _watcher: Option<Box<dyn Watcher + Send>> = match notify::recommended_watcher(
        handler.clone(),
    ) {
        Ok(mut w) => match w.watch(&watch_target, notify::RecursiveMode::NonRecursive) {
            Ok(()) => Some(Box::new(w)),
            Err(e) => {
                warn!(dir = %watch_target.display(), error = %e, "cannot watch the config folder; polling it instead");
                poll_watcher(handler, &watch_target)
            }
        },
        Err(e) => {
            warn!(error = %e, "no file watcher available; polling the config folder instead");
            poll_watcher(handler, &watch_target)
        }
    };
    // Watch first, then read: a file written in between is seen by the next sync.
    sync_dir(&worker, &dir, &mut applied).await;
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            got = rx.recv() => if got.is_none() { return; },
        }
        // Editors write files in several steps; settle before reading.
        tokio::time::sleep(Duration::from_millis(150)).await;
        while rx.try_recv().is_ok() {}
        sync_dir(&worker, &dir, &mut applied).await;
    }
}

fn poll_watcher(handler: impl notify::EventHandler, dir: &Path) -> Option<Box<dyn Watcher + Send>> {
    let config = notify::Config::default().with_poll_interval(Duration::from_secs(1));
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

/// Brings the worker in line with the folder's files.
async fn sync_dir(worker: &Arc<Herder>, dir: &Path, applied: &mut Applied) {
    let mut present: BTreeMap<PathBuf, Option<(String, Props)>> = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json") && p.is_file())
            .collect();
        paths.sort();
        for path in paths {
            let parsed = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot be read: {e}"))
                .and_then(|text| parse_connector_json(&path, &text));
            match parsed {
                Ok(p) => {
                    present.insert(path, Some(p));
                }
                Err(e) => {
                    error!(file = %path.display(), "connector file {} {e}", path.display());
                    present.insert(path, None);
                }
            }
        }
    }
    // Removed files delete their connectors; a file that turned invalid keeps the last good one.
    let removed: Vec<PathBuf> = applied
        .keys()
        .filter(|p| !present.contains_key(*p))
        .cloned()
        .collect();
    for path in removed {
        if let Some((name, _)) = applied.remove(&path) {
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
    for (path, parsed) in present {
        let Some((name, props)) = parsed else {
            continue;
        };
        if applied
            .get(&path)
            .is_some_and(|(n, p)| *n == name && *p == props)
        {
            continue;
        }
        if let Some((old_name, _)) = applied.get(&path).filter(|(n, _)| *n != name) {
            let old_name = old_name.clone();
            let _ = worker
                .delete_connector(&old_name, &Origin::File(path.clone()))
                .await;
            applied.remove(&path);
        }
        if let Some((other, _)) = applied.iter().find(|(p, (n, _))| **p != path && *n == name) {
            error!(file = %path.display(), "connector file {} defines connector '{name}', which {} already defines; rename one of them", path.display(), other.display());
            continue;
        }
        match worker
            .put_connector(&name, props.clone(), Origin::File(path.clone()))
            .await
        {
            Ok(created) => {
                info!(file = %path.display(), connector = %name, created, "connector file applied");
                applied.insert(path, (name, props));
            }
            Err(e) => error!(file = %path.display(), "connector file {}: {e}", path.display()),
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
}
