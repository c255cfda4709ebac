//! File source and sink connectors for sluice.
