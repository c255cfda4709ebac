//! Integration tests of the Elasticsearch sink at the task level, against a real
//! Elasticsearch-API server (osmem-server from PyPI) started by each test.

mod deadlines;
mod errors;
mod load;
mod mapping;
mod outage;
mod security;
mod support;
mod write_method;
