//! broker placeholder
pub mod group;
