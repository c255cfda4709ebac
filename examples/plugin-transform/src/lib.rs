//! An example sluice plugin without connectors: a transform, a predicate and a converter.
//!
//! - `com.example.sluice.MaskDigits$Value` / `$Key`: masks the digits of string fields (card
//!   numbers, phone numbers), keeping the last few.
//! - `com.example.sluice.ValueContains`: a predicate matching records whose value contains a
//!   text.
//! - `com.example.sluice.HexConverter`: writes strings and bytes as hexadecimal text.
//!
//! They are written exactly like sluice's built-in transforms, predicates and converters,
//! against the `sluice_sdk` traits; [`sluice_sdk::export_plugin!`] turns the crate into a
//! plugin library the worker loads from `plugin.path`. See README.md.
//!
//! # Layout
//! - [`mask`]: the transform.
//! - [`contains`]: the predicate.
//! - [`hex`]: the converter.

pub mod contains;
pub mod hex;
pub mod mask;

use sluice_sdk::PluginSet;

/// Everything this library exports.
pub fn plugins() -> PluginSet {
    PluginSet::new()
        .transform(mask::plugin(mask::Side::Value))
        .transform(mask::plugin(mask::Side::Key))
        .transform(contains::plugin())
        .converter(hex::plugin())
}

sluice_sdk::export_plugin!(plugins);
