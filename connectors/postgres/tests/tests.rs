//! Integration tests of the PostgreSQL source against a real PostgreSQL server started by
//! the tests (Debian's `postgresql` package). One server per test run; one database per test.

mod support;

mod bad_input;
mod cdc;
mod cdc_tls;
mod deadlines;
mod modes;
mod offsets;
mod outage;
mod soft_delete;
mod tables;
mod tls;
mod types;
