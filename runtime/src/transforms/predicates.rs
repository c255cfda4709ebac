//! Kafka's predicates (KIP-585): `TopicNameMatches`, `HasHeaderKey`, `RecordIsTombstone`.

use regex::Regex;
use sluice_sdk::{ConfigDef, ConfigKey, ConfigType, Importance, Validator};

use super::basic::whole_match_regex;
use super::{Predicate, TransformPlugin, TransformRecord};

pub(super) fn plugins() -> Vec<TransformPlugin> {
    vec![
        super::kafka_predicate(
            "TopicNameMatches",
            "Matches records whose topic name matches the regular expression.",
            ConfigDef::new().define(
                ConfigKey::new(
                    "pattern",
                    ConfigType::String,
                    Importance::Medium,
                    "A Java regular expression for matching against the name of a record's topic.",
                )
                .validator(Validator::NonEmpty),
            ),
            |c| {
                let pattern =
                    whole_match_regex("pattern", c.get_str("pattern").unwrap_or_default())?;
                Ok(Box::new(TopicNameMatches { pattern }))
            },
        ),
        super::kafka_predicate(
            "HasHeaderKey",
            "Matches records with at least one header with the configured name.",
            ConfigDef::new().define(
                ConfigKey::new(
                    "name",
                    ConfigType::String,
                    Importance::Medium,
                    "The header name.",
                )
                .validator(Validator::NonEmpty),
            ),
            |c| {
                Ok(Box::new(HasHeaderKey {
                    name: c.get_str("name").unwrap_or_default().to_string(),
                }))
            },
        ),
        super::kafka_predicate(
            "RecordIsTombstone",
            "Matches tombstone records, that is records with a null value.",
            ConfigDef::new(),
            |_| Ok(Box::new(RecordIsTombstone)),
        ),
    ]
}

/// Kafka's `TopicNameMatches`: the whole topic name matches `pattern`.
#[derive(Debug)]
struct TopicNameMatches {
    pattern: Regex,
}

impl Predicate for TopicNameMatches {
    fn test(&self, record: &TransformRecord) -> Result<bool, String> {
        Ok(self.pattern.is_match(&record.topic))
    }
}

/// Kafka's `HasHeaderKey`.
#[derive(Debug)]
struct HasHeaderKey {
    name: String,
}

impl Predicate for HasHeaderKey {
    fn test(&self, record: &TransformRecord) -> Result<bool, String> {
        Ok(record.headers.iter().any(|h| h.key == self.name))
    }
}

/// Kafka's `RecordIsTombstone`.
#[derive(Debug)]
struct RecordIsTombstone;

impl Predicate for RecordIsTombstone {
    fn test(&self, record: &TransformRecord) -> Result<bool, String> {
        Ok(record.value.is_null())
    }
}

#[cfg(test)]
mod tests {
    use sluice_sdk::config::props;
    use sluice_sdk::{Header, Value};

    use super::super::build_chain;
    use super::super::tests::{chain, chain_error, record};

    /// A chain that drops what predicate `p` (with `options`) matches.
    fn drop_if(class: &str, options: &[(&str, &str)]) -> super::super::TransformChain {
        let mut pairs = vec![
            ("transforms".to_string(), "f".to_string()),
            ("transforms.f.type".into(), "Filter".into()),
            ("transforms.f.predicate".into(), "p".into()),
            ("predicates".into(), "p".into()),
            ("predicates.p.type".into(), class.into()),
        ];
        pairs.extend(
            options
                .iter()
                .map(|(k, v)| (format!("predicates.p.{k}"), (*v).to_string())),
        );
        build_chain(&pairs.into_iter().collect()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn topic_name_matches_the_whole_name() {
        let c = drop_if(
            "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
            &[("pattern", "my-prefix-.*")],
        );
        let mut r = record(None, Value::from("x"));
        r.topic = "my-prefix-orders".into();
        assert_eq!(c.apply(r.clone()).unwrap(), None);
        r.topic = "other-my-prefix-orders".into();
        assert!(
            c.apply(r).unwrap().is_some(),
            "a match must cover the whole name"
        );
        let err = chain_error(&[
            ("predicates", "p"),
            ("predicates.p.type", "TopicNameMatches"),
        ]);
        assert!(
            err.contains("option 'predicates.p.pattern' is required"),
            "{err}"
        );
    }

    #[test]
    fn has_header_key_looks_at_names() {
        let c = drop_if("HasHeaderKey", &[("name", "trace")]);
        let mut r = record(None, Value::from("x"));
        assert!(c.apply(r.clone()).unwrap().is_some());
        r.headers.push(Header {
            key: "trace".into(),
            value: None,
        });
        assert_eq!(c.apply(r).unwrap(), None);
    }

    #[test]
    fn record_is_tombstone_matches_null_values() {
        let c = drop_if("RecordIsTombstone", &[]);
        assert_eq!(c.apply(record(None, Value::Null)).unwrap(), None);
        assert!(c.apply(record(None, Value::from(""))).unwrap().is_some());
        let err = chain_error(&[
            ("predicates", "p"),
            ("predicates.p.type", "RecordIsTombstone"),
            ("predicates.p.pattern", "x"),
        ]);
        assert!(
            err.contains("option 'predicates.p.pattern' is not an option of RecordIsTombstone"),
            "{err}"
        );
    }

    #[test]
    fn a_predicate_class_is_not_a_transform_and_the_other_way_round() {
        let err = chain_error(&[
            ("transforms", "t"),
            ("transforms.t.type", "RecordIsTombstone"),
        ]);
        assert!(err.contains("option 'transforms.t.type' names a transform sluice does not have ('RecordIsTombstone')"), "{err}");
        let err = chain_error(&[("predicates", "p"), ("predicates.p.type", "Filter")]);
        assert!(err.contains("option 'predicates.p.type' names a predicate sluice does not have ('Filter'); known predicates: HasHeaderKey, RecordIsTombstone, TopicNameMatches"), "{err}");
        // An unused predicate is fine, as in Kafka.
        let c = chain(&[
            ("predicates", "p"),
            ("predicates.p.type", "RecordIsTombstone"),
        ]);
        assert!(c.is_empty());
        let _ = props(&[]);
    }
}
