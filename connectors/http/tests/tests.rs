//! Integration tests of the HTTP sources, at the task level, against a local HTTP server
//! started by the tests (Alpha Vantage's formats for the stock source).

mod http_source;
mod stock_quote;
mod support;
