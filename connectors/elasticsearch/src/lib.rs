//! Elasticsearch / OpenSearch sink connector for sluice.
