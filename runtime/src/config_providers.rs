//! Config providers, as Kafka Connect's (KIP-297): a connector option may hold a reference
//! `${provider:[path:]key}` that is resolved when the connector or a task starts, so a secret
//! lives in a file or the environment and never in the stored configuration.
//!
//! - `${env:NAME}` (and sluice's `${env:NAME:-fallback}`): an environment variable; always on.
//! - `${file:/path/creds.properties:db.password}`: a key of a Java properties file
//!   (Kafka's `FileConfigProvider`); on when `config.providers` lists `file`.
//! - `${directory:/run/secrets:db_password}`: the content of a file in a folder (Kafka's
//!   `DirectoryConfigProvider`, as Docker and Kubernetes mount secrets); on when
//!   `config.providers` lists `directory`.
//!
//! `config.providers.<name>.param.allowed.paths` limits a file or directory provider to some
//! folders, as in Kafka. The stored configuration, the REST answers, the task configurations
//! in the config topic and the logs keep the reference; only the running connector and its
//! tasks see the value ([`ConfigProviders::restore_references`] puts the references back into
//! task configurations a connector derived from resolved values).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sluice_sdk::Props;

/// The providers every worker has.
const BUILT_IN: &[(&str, &str)] = &[
    (
        "env",
        "org.apache.kafka.common.config.provider.EnvVarConfigProvider",
    ),
    (
        "file",
        "org.apache.kafka.common.config.provider.FileConfigProvider",
    ),
    (
        "directory",
        "org.apache.kafka.common.config.provider.DirectoryConfigProvider",
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Env,
    File,
    Directory,
}

#[derive(Debug, Clone)]
struct Provider {
    kind: Kind,
    /// `allowed.paths`: empty means anywhere.
    allowed: Vec<PathBuf>,
}

/// The worker's config providers (`config.providers`).
#[derive(Debug, Clone)]
pub struct ConfigProviders {
    providers: BTreeMap<String, Provider>,
}

impl Default for ConfigProviders {
    /// `env` only.
    fn default() -> Self {
        let mut providers = BTreeMap::new();
        providers.insert(
            "env".to_string(),
            Provider {
                kind: Kind::Env,
                allowed: Vec::new(),
            },
        );
        Self { providers }
    }
}

impl ConfigProviders {
    /// From the worker settings `config.providers` (a comma-separated list of names) and the
    /// `config.providers.*` sub-settings (prefix removed: `file.class`,
    /// `file.param.allowed.paths`).
    ///
    /// # Errors
    /// An unknown provider or class, naming the setting and what is known.
    pub fn from_settings(
        list: &str,
        sub: &BTreeMap<String, String>,
    ) -> std::result::Result<Self, String> {
        let mut out = Self::default();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let class = sub.get(&format!("{name}.class")).map(|c| c.trim());
            let kind = match (name, class) {
                (_, Some(c)) => match BUILT_IN.iter().find(|(_, class)| *class == c) {
                    Some(("env", _)) => Kind::Env,
                    Some(("file", _)) => Kind::File,
                    Some(("directory", _)) => Kind::Directory,
                    _ => {
                        return Err(format!(
                            "worker setting 'config.providers.{name}.class' names '{c}', which sluice does not have; known classes: {}",
                            BUILT_IN.iter().map(|(_, c)| *c).collect::<Vec<_>>().join(", ")
                        ))
                    }
                },
                ("env", None) => Kind::Env,
                ("file", None) => Kind::File,
                ("directory", None) => Kind::Directory,
                (other, None) => {
                    return Err(format!(
                        "worker setting 'config.providers' lists '{other}', which has no class; set config.providers.{other}.class to one of: {}",
                        BUILT_IN.iter().map(|(_, c)| *c).collect::<Vec<_>>().join(", ")
                    ))
                }
            };
            let allowed = sub
                .get(&format!("{name}.param.allowed.paths"))
                .map(|paths| {
                    paths
                        .split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(PathBuf::from)
                        .collect()
                })
                .unwrap_or_default();
            out.providers
                .insert(name.to_string(), Provider { kind, allowed });
        }
        for key in sub.keys() {
            let name = key.split('.').next().unwrap_or_default();
            if !out.providers.contains_key(name) {
                return Err(format!(
                    "worker setting 'config.providers.{key}' configures provider '{name}', which config.providers does not list; add it there"
                ));
            }
        }
        Ok(out)
    }

    /// Names of the providers that are on.
    pub fn names(&self) -> Vec<&str> {
        self.providers.keys().map(String::as_str).collect()
    }

    /// Whether `text` holds a reference to any provider.
    pub fn has_reference(text: &str) -> bool {
        next_reference(text).is_some()
    }

    /// `text` with every reference replaced by its value; `option` names the option in errors.
    ///
    /// # Errors
    /// A provider that is off or unknown, a missing file or key, a path outside
    /// `allowed.paths`: each naming the option and what to do.
    pub fn resolve(&self, option: &str, text: &str) -> std::result::Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some((start, end, provider, body)) = next_reference(rest) {
            out.push_str(&rest[..start]);
            out.push_str(&self.value(option, provider, body)?);
            rest = &rest[end..];
        }
        if let Some(at) = rest.find("${") {
            let tail = &rest[at..];
            if !tail.contains('}') && tail[2..].contains(':') {
                return Err(format!(
                    "option '{option}' has an unclosed '${{' reference in '{text}'"
                ));
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Task configurations with the references of `raw` (the connector's stored configuration)
    /// put back: an option whose stored value holds a reference and whose task value equals
    /// the resolved value gets the reference again (Kafka Connect's `reverseTransform`), so
    /// task configurations can be stored and shown without the secrets.
    pub fn restore_references(raw: &Props, resolved: &Props, tasks: Vec<Props>) -> Vec<Props> {
        let references: Vec<(&String, &String)> =
            raw.iter().filter(|(_, v)| Self::has_reference(v)).collect();
        if references.is_empty() {
            return tasks;
        }
        tasks
            .into_iter()
            .map(|mut task| {
                for (option, reference) in &references {
                    if let (Some(value), Some(resolved)) =
                        (task.get_mut(*option), resolved.get(*option))
                    {
                        if value == resolved {
                            value.clone_from(reference);
                        }
                    }
                }
                task
            })
            .collect()
    }

    /// Every value of `props` resolved.
    ///
    /// # Errors
    /// As [`ConfigProviders::resolve`], for the first option that fails.
    pub fn resolve_all(&self, props: &Props) -> std::result::Result<Props, String> {
        props
            .iter()
            .map(|(k, v)| {
                if Self::has_reference(v) {
                    self.resolve(k, v).map(|v| (k.clone(), v))
                } else {
                    Ok((k.clone(), v.clone()))
                }
            })
            .collect()
    }

    fn value(&self, option: &str, name: &str, body: &str) -> std::result::Result<String, String> {
        let Some(provider) = self.providers.get(name) else {
            let hint = if BUILT_IN.iter().any(|(n, _)| *n == name) {
                format!("add '{name}' to the worker setting config.providers")
            } else {
                format!(
                    "known providers: {}",
                    BUILT_IN
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            return Err(format!(
                "option '{option}' refers to config provider '{name}', which this worker does not have on (config.providers = {}); {hint}",
                self.names().join(",")
            ));
        };
        match provider.kind {
            Kind::Env => {
                let (var, fallback) = match body.split_once(":-") {
                    Some((v, f)) => (v, Some(f)),
                    None => (body, None),
                };
                match (std::env::var(var), fallback) {
                    (Ok(v), _) => Ok(v),
                    (Err(_), Some(f)) => Ok(f.to_string()),
                    (Err(_), None) => Err(format!(
                        "option '{option}' refers to environment variable {var}, which is not set; export it before starting the worker"
                    )),
                }
            }
            Kind::File | Kind::Directory => {
                let Some((path, key)) = body.rsplit_once(':') else {
                    return Err(format!(
                        "option '{option}': a {name} reference is '${{{name}:<path>:<key>}}' (got '${{{name}:{body}}}')"
                    ));
                };
                let path = Path::new(path);
                provider.check_allowed(option, name, path)?;
                if provider.kind == Kind::File {
                    let text = std::fs::read_to_string(path).map_err(|e| {
                        format!(
                            "option '{option}' refers to properties file {} ({name} provider), which cannot be read: {e}",
                            path.display()
                        )
                    })?;
                    parse_properties(&text).remove(key).ok_or_else(|| {
                        format!(
                            "option '{option}' refers to key '{key}' of properties file {}, which has no such key",
                            path.display()
                        )
                    })
                } else {
                    if key.contains('/') || key == ".." {
                        return Err(format!(
                            "option '{option}': a directory reference names a file directly in the folder (got '{key}')"
                        ));
                    }
                    let file = path.join(key);
                    std::fs::read_to_string(&file).map_err(|e| {
                        format!(
                            "option '{option}' refers to file {} ({name} provider), which cannot be read: {e}",
                            file.display()
                        )
                    })
                }
            }
        }
    }
}

impl Provider {
    fn check_allowed(
        &self,
        option: &str,
        name: &str,
        path: &Path,
    ) -> std::result::Result<(), String> {
        if self.allowed.is_empty() {
            return Ok(());
        }
        let normal = normalise(path);
        if self
            .allowed
            .iter()
            .any(|a| normal.starts_with(normalise(a)))
        {
            return Ok(());
        }
        Err(format!(
            "option '{option}' refers to {} through the {name} provider, outside config.providers.{name}.param.allowed.paths ({})",
            path.display(),
            self.allowed
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

/// `path` made absolute and with `.` and `..` taken out, without touching the file system.
pub fn normalise(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut out = PathBuf::new();
    for part in absolute.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The next `${provider:body}` in `text`: (start, end after `}`, provider, body).
fn next_reference(text: &str) -> Option<(usize, usize, &str, &str)> {
    let mut from = 0;
    while let Some(at) = text[from..].find("${") {
        let start = from + at;
        let inner = &text[start + 2..];
        let close = inner.find('}')?;
        let reference = &inner[..close];
        if let Some((provider, body)) = reference.split_once(':') {
            if !provider.is_empty()
                && provider
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
            {
                return Some((start, start + 2 + close + 1, provider, body));
            }
        }
        from = start + 2;
    }
    None
}

/// The keys and values of a Java properties file: `key=value`, `key: value` or `key value`,
/// `#` and `!` comments, backslash escapes and line continuations.
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut logical = String::new();
    for line in text.lines() {
        let line = line.trim_start();
        if logical.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        let trailing = line.len() - line.trim_end_matches('\\').len();
        if trailing % 2 == 1 {
            logical.push_str(&line[..line.len() - 1]);
            continue;
        }
        logical.push_str(line);
        let entry = std::mem::take(&mut logical);
        let (key, value) = split_entry(&entry);
        out.insert(unescape(key), unescape(value));
    }
    if !logical.is_empty() {
        let (key, value) = split_entry(&logical);
        out.insert(unescape(key), unescape(value));
    }
    out
}

fn split_entry(entry: &str) -> (&str, &str) {
    let bytes = entry.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'=' | b':' => {
                return (entry[..i].trim_end(), entry[i + 1..].trim_start());
            }
            b' ' | b'\t' => {
                let key = &entry[..i];
                let rest = entry[i..].trim_start();
                let rest = rest
                    .strip_prefix('=')
                    .or_else(|| rest.strip_prefix(':'))
                    .map_or(rest, str::trim_start);
                return (key, rest);
            }
            _ => i += 1,
        }
    }
    (entry, "")
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn providers(list: &str, sub: &[(&str, &str)]) -> ConfigProviders {
        let sub = sub
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        ConfigProviders::from_settings(list, &sub).unwrap()
    }

    #[test]
    fn file_directory_and_env_references_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("creds.properties");
        std::fs::write(
            &creds,
            "# database\ndb.user = app\ndb.password=s3cr\\\n  et\nother: x\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("api_key"), "k-123").unwrap();
        std::env::set_var("PROVIDER_TEST_HOST_5F1E", "db.local");
        let p = providers("file,directory", &[]);
        let text = format!(
            "postgres://${{file:{0}:db.user}}:${{file:{0}:db.password}}@${{env:PROVIDER_TEST_HOST_5F1E}}/x?key=${{directory:{1}:api_key}}",
            creds.display(),
            dir.path().display()
        );
        assert_eq!(
            p.resolve("connection.url", &text).unwrap(),
            "postgres://app:s3cret@db.local/x?key=k-123"
        );
        assert_eq!(
            p.resolve("x", "${env:PROVIDER_UNSET_5F1E:-fallback}")
                .unwrap(),
            "fallback"
        );
        // Text that only looks a little like a reference stays as it is.
        assert_eq!(
            p.resolve("x", "a ${b} $c {d:e}").unwrap(),
            "a ${b} $c {d:e}"
        );
    }

    #[test]
    fn errors_name_the_option_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("creds.properties");
        std::fs::write(&creds, "a=1\n").unwrap();
        let env_only = ConfigProviders::default();
        let err = env_only
            .resolve("db.password", &format!("${{file:{}:a}}", creds.display()))
            .unwrap_err();
        assert!(
            err.contains("'db.password'") && err.contains("config.providers"),
            "{err}"
        );
        let p = providers("file", &[]);
        let err = p
            .resolve("db.password", &format!("${{file:{}:b}}", creds.display()))
            .unwrap_err();
        assert!(err.contains("no such key") && err.contains("'b'"), "{err}");
        let err = p
            .resolve("db.password", "${file:/no/such/file:b}")
            .unwrap_err();
        assert!(err.contains("cannot be read"), "{err}");
        let err = p.resolve("k", "${vault:secret/x:y}").unwrap_err();
        assert!(
            err.contains("'vault'") && err.contains("known providers"),
            "{err}"
        );
        let err = ConfigProviders::from_settings("vault", &BTreeMap::new()).unwrap_err();
        assert!(err.contains("config.providers.vault.class"), "{err}");
    }

    #[test]
    fn allowed_paths_limit_the_file_provider() {
        let allowed = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        std::fs::write(allowed.path().join("c.properties"), "k=v\n").unwrap();
        std::fs::write(other.path().join("c.properties"), "k=v\n").unwrap();
        let p = providers(
            "file",
            &[("file.param.allowed.paths", allowed.path().to_str().unwrap())],
        );
        let inside = format!("${{file:{}/c.properties:k}}", allowed.path().display());
        assert_eq!(p.resolve("x", &inside).unwrap(), "v");
        let outside = format!("${{file:{}/c.properties:k}}", other.path().display());
        let err = p.resolve("x", &outside).unwrap_err();
        assert!(err.contains("allowed.paths"), "{err}");
        // `..` does not climb out.
        let climb = format!(
            "${{file:{}/../{}/c.properties:k}}",
            allowed.path().display(),
            other.path().file_name().unwrap().to_str().unwrap()
        );
        assert!(p.resolve("x", &climb).is_err());
    }

    #[test]
    fn task_configs_get_their_references_back() {
        let raw: Props = [
            ("db.password", "${file:/run/creds.properties:pw}"),
            ("table", "t"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
        let resolved: Props = [("db.password", "s3cret"), ("table", "t")]
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        let mut task = resolved.clone();
        task.insert("task.part".into(), "0".into());
        let restored = ConfigProviders::restore_references(&raw, &resolved, vec![task]);
        assert_eq!(
            restored[0]["db.password"],
            "${file:/run/creds.properties:pw}"
        );
        assert_eq!(restored[0]["task.part"], "0");
        assert!(!format!("{restored:?}").contains("s3cret"));
    }
}
