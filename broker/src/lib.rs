//! broker placeholder
