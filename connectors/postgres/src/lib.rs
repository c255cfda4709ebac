//! PostgreSQL table source connector (JDBC-style polling) for sluice.
