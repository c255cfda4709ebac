//! End-to-end tests of the worker: one module per connector, each starting what it needs.

mod stock_quotes;
