//! The durable store of SCRAM credentials: `__security/scram-credentials.json` in the data dir,
//! rewritten whole (temporary file, fsync, rename) on every change. It holds salts, iteration
//! counts and the derived keys, never a password.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::scram::{ScramCredential, ScramMechanism};
use crate::error::IoContext;
use crate::{Error, Result};

/// Directory of the data dir holding the security metadata (credentials and ACLs).
pub const SECURITY_DIR: &str = "__security";
const CREDENTIALS_FILE: &str = "scram-credentials.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredCredential {
    salt: String,
    stored_key: String,
    server_key: String,
    iterations: u32,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CredentialsFile {
    /// user -> mechanism name -> credential.
    users: BTreeMap<String, BTreeMap<String, StoredCredential>>,
}

/// SCRAM credentials by user and mechanism.
#[derive(Debug)]
pub struct CredentialStore {
    path: PathBuf,
    users: RwLock<BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>>,
}

/// Writes `bytes` to `path` so that a crash leaves the old or the new file, never a mix.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut file = fs::File::create(&tmp).at(&tmp)?;
    file.write_all(bytes).at(&tmp)?;
    file.sync_all().at(&tmp)?;
    drop(file);
    fs::rename(&tmp, path).at(path)?;
    if let Some(dir) = path.parent() {
        if let Ok(dir) = fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

impl CredentialStore {
    /// Opens (or starts) the store in `data_dir`.
    ///
    /// # Errors
    /// An unreadable or corrupt file.
    pub fn open(data_dir: &Path) -> Result<Self> {
        let dir = data_dir.join(SECURITY_DIR);
        fs::create_dir_all(&dir).at(&dir)?;
        let path = dir.join(CREDENTIALS_FILE);
        let mut users = BTreeMap::new();
        if path.exists() {
            let bytes = fs::read(&path).at(&path)?;
            let file: CredentialsFile =
                serde_json::from_slice(&bytes).map_err(|e| Error::CorruptMetadata {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            let corrupt = |reason: String| Error::CorruptMetadata {
                path: path.clone(),
                reason,
            };
            for (user, mechanisms) in file.users {
                let mut entry = BTreeMap::new();
                for (name, stored) in mechanisms {
                    let mechanism = ScramMechanism::from_name(&name)
                        .ok_or_else(|| corrupt(format!("unknown mechanism '{name}'")))?;
                    let decode = |text: &str| {
                        BASE64
                            .decode(text)
                            .map_err(|e| corrupt(format!("user '{user}': {e}")))
                    };
                    entry.insert(
                        mechanism,
                        ScramCredential {
                            salt: decode(&stored.salt)?,
                            stored_key: decode(&stored.stored_key)?,
                            server_key: decode(&stored.server_key)?,
                            iterations: stored.iterations,
                        },
                    );
                }
                users.insert(user, entry);
            }
        }
        Ok(Self {
            path,
            users: RwLock::new(users),
        })
    }

    /// The credential of `user` for `mechanism`.
    pub fn get(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        self.users.read().get(user)?.get(&mechanism).cloned()
    }

    /// Whether `user` has any credential.
    pub fn has_user(&self, user: &str) -> bool {
        self.users.read().contains_key(user)
    }

    /// Users and the mechanisms (with iterations) they have credentials for; all users when
    /// `users` is `None`.
    pub fn describe(&self, users: Option<&[String]>) -> Vec<(String, Vec<(ScramMechanism, u32)>)> {
        let all = self.users.read();
        let describe = |name: &String, m: &BTreeMap<ScramMechanism, ScramCredential>| {
            (
                name.clone(),
                m.iter().map(|(k, c)| (*k, c.iterations)).collect(),
            )
        };
        match users {
            None => all.iter().map(|(n, m)| describe(n, m)).collect(),
            Some(users) => users
                .iter()
                .map(|u| match all.get(u) {
                    Some(m) => describe(u, m),
                    None => (u.clone(), Vec::new()),
                })
                .collect(),
        }
    }

    /// Applies deletions and upserts together and persists the result. Blocking (fsync).
    ///
    /// # Errors
    /// The file cannot be written; nothing is changed then.
    pub fn apply(
        &self,
        deletions: &[(String, ScramMechanism)],
        upserts: Vec<(String, ScramMechanism, ScramCredential)>,
    ) -> Result<()> {
        let mut users = self.users.write();
        let mut next = users.clone();
        for (user, mechanism) in deletions {
            if let Some(m) = next.get_mut(user) {
                m.remove(mechanism);
                if m.is_empty() {
                    next.remove(user);
                }
            }
        }
        for (user, mechanism, credential) in upserts {
            next.entry(user).or_default().insert(mechanism, credential);
        }
        self.persist(&next)?;
        *users = next;
        Ok(())
    }

    fn persist(
        &self,
        users: &BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
    ) -> Result<()> {
        let file = CredentialsFile {
            users: users
                .iter()
                .map(|(user, m)| {
                    (
                        user.clone(),
                        m.iter()
                            .map(|(k, c)| {
                                (
                                    k.name().to_owned(),
                                    StoredCredential {
                                        salt: BASE64.encode(&c.salt),
                                        stored_key: BASE64.encode(&c.stored_key),
                                        server_key: BASE64.encode(&c.server_key),
                                        iterations: c.iterations,
                                    },
                                )
                            })
                            .collect(),
                    )
                })
                .collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("credentials serialise");
        write_atomically(&self.path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_survive_reopening_and_hold_no_password() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::open(dir.path()).unwrap();
        let credential = ScramCredential::from_password(ScramMechanism::Sha512, "hunter2", 4096);
        store
            .apply(
                &[],
                vec![("alice".into(), ScramMechanism::Sha512, credential.clone())],
            )
            .unwrap();
        let reopened = CredentialStore::open(dir.path()).unwrap();
        assert_eq!(
            reopened.get("alice", ScramMechanism::Sha512),
            Some(credential)
        );
        assert_eq!(reopened.get("alice", ScramMechanism::Sha256), None);
        let text =
            fs::read_to_string(dir.path().join(SECURITY_DIR).join(CREDENTIALS_FILE)).unwrap();
        assert!(!text.contains("hunter2"));
        reopened
            .apply(&[("alice".into(), ScramMechanism::Sha512)], vec![])
            .unwrap();
        assert!(!CredentialStore::open(dir.path()).unwrap().has_user("alice"));
    }
}
