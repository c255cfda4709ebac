//! What kind of cluster answers: Elasticsearch 7, 8 or 9, or OpenSearch, read from the root
//! endpoint (`GET /`).
//!
//! The connector speaks the part of the REST API these share (`_bulk` without mapping types,
//! index creation, `_mapping`), so the flavour is used to refuse clusters that are too old and
//! to say in logs and status what the task is talking to. Nothing here depends on the
//! `X-Elastic-Product` header that official Elasticsearch clients insist on (the "product
//! check"), so OpenSearch and proxies that drop the header work.

use std::fmt;

use serde_json::Value as Json;

/// The software behind the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flavour {
    /// Elasticsearch, with its major version.
    Elasticsearch {
        /// Major version (7, 8, 9, ...).
        major: u32,
        /// Whether it is Elastic Cloud serverless (`build_flavor: serverless`).
        serverless: bool,
    },
    /// OpenSearch (any version; every OpenSearch release speaks the Elasticsearch 7 API).
    OpenSearch {
        /// Major version.
        major: u32,
    },
}

/// The cluster's identity from its root endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    /// Elasticsearch or OpenSearch.
    pub flavour: Flavour,
    /// The full version text (`8.15.0`).
    pub version: String,
    /// The cluster's name.
    pub cluster_name: String,
}

impl fmt::Display for ClusterInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.flavour {
            Flavour::Elasticsearch {
                serverless: true, ..
            } => write!(f, "Elasticsearch serverless"),
            Flavour::Elasticsearch { .. } => write!(f, "Elasticsearch {}", self.version),
            Flavour::OpenSearch { .. } => write!(f, "OpenSearch {}", self.version),
        }?;
        if !self.cluster_name.is_empty() {
            write!(f, " (cluster '{}')", self.cluster_name)?;
        }
        Ok(())
    }
}

/// The oldest Elasticsearch major version the connector writes to.
pub const MIN_ELASTICSEARCH_MAJOR: u32 = 7;

/// Reads the root endpoint's answer.
///
/// # Errors
/// A description when the answer is not Elasticsearch's or OpenSearch's, or the version is
/// older than Elasticsearch 7.
pub fn detect(root: &Json) -> Result<ClusterInfo, String> {
    let version = root
        .get("version")
        .ok_or("the answer has no \"version\" object")?;
    let number = version
        .get("number")
        .and_then(Json::as_str)
        .ok_or("the answer has no \"version.number\"")?;
    let major: u32 = number
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| format!("cannot read the version number '{number}'"))?;
    let cluster_name = root
        .get("cluster_name")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string();
    let distribution = version.get("distribution").and_then(Json::as_str);
    let flavour = if distribution == Some("opensearch") {
        Flavour::OpenSearch { major }
    } else {
        if major < MIN_ELASTICSEARCH_MAJOR {
            return Err(format!(
                "Elasticsearch {number} is not supported: the connector needs Elasticsearch \
                 7, 8 or 9, or OpenSearch"
            ));
        }
        Flavour::Elasticsearch {
            major,
            serverless: version.get("build_flavor").and_then(Json::as_str) == Some("serverless"),
        }
    };
    Ok(ClusterInfo {
        flavour,
        version: number.to_string(),
        cluster_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn es(number: &str, flavor: &str) -> Json {
        json!({
            "name": "node-1", "cluster_name": "prod", "cluster_uuid": "x",
            "version": {"number": number, "build_flavor": flavor, "build_type": "docker",
                        "lucene_version": "9.7.0", "minimum_wire_compatibility_version": "7.17.0"},
            "tagline": "You Know, for Search"
        })
    }

    #[test]
    fn elasticsearch_majors_are_recognised() {
        for (number, major) in [("7.17.9", 7), ("8.15.0", 8), ("9.0.1", 9)] {
            let info = detect(&es(number, "default")).unwrap();
            assert_eq!(
                info.flavour,
                Flavour::Elasticsearch {
                    major,
                    serverless: false
                }
            );
            assert_eq!(
                info.to_string(),
                format!("Elasticsearch {number} (cluster 'prod')")
            );
        }
        let serverless = detect(&es("8.11.0", "serverless")).unwrap();
        assert_eq!(
            serverless.flavour,
            Flavour::Elasticsearch {
                major: 8,
                serverless: true
            }
        );
    }

    #[test]
    fn opensearch_is_recognised_even_in_compatibility_mode() {
        let root = json!({
            "cluster_name": "osmem", "name": "osmem-node",
            "version": {"distribution": "opensearch", "number": "3.8.0", "build_type": "tar"},
            "tagline": "The OpenSearch Project: https://opensearch.org/"
        });
        let info = detect(&root).unwrap();
        assert_eq!(info.flavour, Flavour::OpenSearch { major: 3 });
        assert_eq!(info.to_string(), "OpenSearch 3.8.0 (cluster 'osmem')");
        let compat = json!({"version": {"distribution": "opensearch", "number": "7.10.2"}});
        assert_eq!(
            detect(&compat).unwrap().flavour,
            Flavour::OpenSearch { major: 7 }
        );
    }

    #[test]
    fn old_or_foreign_answers_are_refused() {
        let err = detect(&es("6.8.23", "default")).unwrap_err();
        assert!(
            err.contains("Elasticsearch 6.8.23 is not supported"),
            "{err}"
        );
        let err = detect(&json!({"status": "green"})).unwrap_err();
        assert!(err.contains("no \"version\""), "{err}");
        let err = detect(&json!({"version": {"number": "x.y"}})).unwrap_err();
        assert!(
            err.contains("cannot read the version number 'x.y'"),
            "{err}"
        );
    }
}
