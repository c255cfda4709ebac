//! The plugin C ABI: how a connector built as a dynamic library talks to the worker.
//!
//! A plugin author implements the same traits as the built-in connectors
//! ([`SourceConnector`](crate::SourceConnector)/[`SourceTask`](crate::SourceTask) or
//! [`SinkConnector`](crate::SinkConnector)/[`SinkTask`](crate::SinkTask)), transforms and
//! predicates ([`Transform`](crate::Transform), [`Predicate`](crate::Predicate)) and converters
//! ([`Converter`](crate::Converter)), describes them with [`ConnectorPlugin`](crate::ConnectorPlugin)s,
//! [`TransformPlugin`](crate::TransformPlugin)s and [`ConverterPlugin`](crate::ConverterPlugin)s
//! gathered in a [`PluginSet`](crate::PluginSet), and writes one line:
//!
//! ```text
//! sluice_sdk::export_plugin!(my_plugin::plugins); // fn plugins() -> PluginSet
//!                                                 // (or Vec<ConnectorPlugin>)
//! ```
//!
//! in a crate built with `crate-type = ["cdylib"]`. The macro generates the two exported
//! symbols below; everything else lives in [`export`], compiled into the plugin.
//!
//! # Symbols
//! - [`ABI_VERSION_SYMBOL`] (`sluice_plugin_abi_version`): `extern "C" fn() -> u32`, the
//!   [`ABI_VERSION`] the plugin was built for. The worker reads it before anything else and
//!   refuses any other version. Its signature never changes, whatever the version.
//! - [`ENTRY_SYMBOL`] (`sluice_plugin_entry`): `extern "C" fn(*const HostApi) -> *const
//!   PluginApi`. The worker passes its [`HostApi`] (it lives as long as the process) and gets
//!   the plugin's table of functions, or null when the plugin could not initialise.
//!
//! # Calls
//! Every function of [`PluginApi`] that can fail returns a status code ([`STATUS_OK`],
//! [`STATUS_RETRIABLE`], [`STATUS_FATAL`], [`STATUS_CONFIG`], [`STATUS_PANIC`],
//! [`STATUS_CANCELLED`]) and writes its result, or on failure its UTF-8 error message, into
//! an [`OutBuf`] the worker owns, through [`HostApi::out_write`]. Memory never changes owner:
//! an [`OutBuf`] is only ever grown by its owner's write function, each side reads the
//! other's input buffers only during the call, and copies what it keeps. Connectors, tasks,
//! transforms, predicates and converters are opaque handles ([`RawConnector`], [`RawTask`],
//! [`RawTransform`], [`RawPredicate`], [`RawConverter`]) created by the plugin and freed by the
//! worker through the plugin ([`PluginApi::connector_free`], [`PluginApi::task_free`], ...).
//!
//! Every entry point catches panics: a panic becomes [`STATUS_PANIC`] with the panic message,
//! and the worker fails the task (or connector) with it. A plugin must therefore be built with
//! `panic = "unwind"` (the default); the worker refuses libraries built with `panic = "abort"`.
//!
//! The worker makes at most one call at a time on a handle, except [`PluginApi::task_cancel`],
//! which may come from another thread while a `source_poll` or `sink_put` runs and must return
//! at once. Calls block the calling (worker) thread; the worker makes them off its async
//! threads. The plugin runs its futures on its own tokio runtime, created on first use.
//!
//! Transforms, predicates and converters are different: they are synchronous, called once per
//! record in line with the task that uses them (on whatever thread runs it), and concurrently
//! from several tasks on one handle (their traits take `&self` and are `Sync`). They must
//! not block. There is no deadline to enforce on them: they return or panic.
//!
//! # Payloads
//! Records cross in the batch encoding of [`encoding`]. Everything else (descriptions,
//! configurations, contexts, option errors) is JSON, described on each function.
//!
//! # Contexts
//! The worker hands the connector and each task a [`HostContext`] handle (in
//! `connector_start` and `task_start`); the plugin calls back through [`HostApi`]
//! (`request_task_reconfiguration`, `raise_error`, `report_problem`, `report_errant`) and
//! releases the handle with [`HostApi::context_release`] exactly once when it no longer needs
//! it, whatever the start call returned.
//!
//! # The version rule
//! [`ABI_VERSION`] changes whenever anything in this module or in [`encoding`] changes in a
//! way an already built plugin would notice: a field or function added, removed or reordered
//! in [`HostApi`] or [`PluginApi`], a status code, a JSON payload's meaning, or the batch
//! encoding. A plugin must be rebuilt against an SDK with the worker's ABI version; the worker
//! logs the two versions and skips the plugin otherwise.

#![allow(unsafe_code)]

pub mod encoding;
pub mod export;

/// The version of this ABI. See "The version rule" above.
///
/// Version 2 added transforms, predicates and converters (the `transform_*`, `predicate_*`
/// and `converter_*` functions, the description's `transforms`, `predicates` and
/// `converters` lists, and the transform batch and data encodings).
pub const ABI_VERSION: u32 = 2;

/// Name of the exported `extern "C" fn() -> u32` returning the plugin's [`ABI_VERSION`].
pub const ABI_VERSION_SYMBOL: &str = "sluice_plugin_abi_version";

/// Name of the exported `extern "C" fn(*const HostApi) -> *const PluginApi`.
pub const ENTRY_SYMBOL: &str = "sluice_plugin_entry";

/// The call succeeded; the output buffer holds its result (possibly empty).
pub const STATUS_OK: i32 = 0;
/// A transient failure; the worker retries. The output buffer holds the message.
pub const STATUS_RETRIABLE: i32 = 1;
/// A failure retrying will not fix; the task fails. The output buffer holds the message.
pub const STATUS_FATAL: i32 = 2;
/// Bad options; the output buffer holds a JSON array of `{"option": .., "message": ..}`.
pub const STATUS_CONFIG: i32 = 3;
/// The plugin panicked; the output buffer holds the panic message.
pub const STATUS_PANIC: i32 = 4;
/// The call was interrupted by [`PluginApi::task_cancel`]; nothing was done.
pub const STATUS_CANCELLED: i32 = 5;

/// Log levels of [`HostApi::log`] and [`HostApi::max_log_level`].
pub mod log_level {
    /// Logging off (only as `max_log_level`).
    pub const OFF: u32 = 0;
    /// `ERROR`.
    pub const ERROR: u32 = 1;
    /// `WARN`.
    pub const WARN: u32 = 2;
    /// `INFO`.
    pub const INFO: u32 = 3;
    /// `DEBUG`.
    pub const DEBUG: u32 = 4;
    /// `TRACE`.
    pub const TRACE: u32 = 5;
}

/// A borrowed byte slice (UTF-8 text where the function says so), valid during the call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BytesRef {
    /// First byte (may be dangling when `len` is 0).
    pub ptr: *const u8,
    /// Number of bytes.
    pub len: usize,
}

impl BytesRef {
    /// A view of `bytes`, valid while `bytes` lives.
    pub fn new(bytes: &[u8]) -> Self {
        Self {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    /// The bytes.
    ///
    /// # Safety
    /// `ptr` and `len` must describe readable memory that outlives `'a` (or `len` be 0).
    pub unsafe fn as_slice<'a>(self) -> &'a [u8] {
        if self.len == 0 || self.ptr.is_null() {
            &[]
        } else {
            // SAFETY: the caller promises ptr/len describe live, readable memory.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        }
    }
}

/// A worker-owned output buffer; the plugin appends to it with [`HostApi::out_write`].
#[repr(C)]
#[derive(Debug)]
pub struct OutBuf {
    _opaque: [u8; 0],
}

/// A worker-owned context (connector or task); see "Contexts" above.
#[repr(C)]
#[derive(Debug)]
pub struct HostContext {
    _opaque: [u8; 0],
}

/// A plugin-owned connector instance.
#[repr(C)]
#[derive(Debug)]
pub struct RawConnector {
    _opaque: [u8; 0],
}

/// A plugin-owned task instance.
#[repr(C)]
#[derive(Debug)]
pub struct RawTask {
    _opaque: [u8; 0],
}

/// A plugin-owned transform instance.
#[repr(C)]
#[derive(Debug)]
pub struct RawTransform {
    _opaque: [u8; 0],
}

/// A plugin-owned predicate instance.
#[repr(C)]
#[derive(Debug)]
pub struct RawPredicate {
    _opaque: [u8; 0],
}

/// A plugin-owned converter instance.
#[repr(C)]
#[derive(Debug)]
pub struct RawConverter {
    _opaque: [u8; 0],
}

/// What the worker offers a plugin. Lives as long as the process.
#[repr(C)]
#[derive(Debug)]
pub struct HostApi {
    /// The worker's [`ABI_VERSION`].
    pub abi_version: u32,
    /// The most verbose [`log_level`] the worker records; the plugin need not send others.
    pub max_log_level: u32,
    /// Appends `len` bytes at `data` to `out`.
    pub out_write: unsafe extern "C" fn(out: *mut OutBuf, data: *const u8, len: usize),
    /// Logs `message` (UTF-8) at `level` for `target` (UTF-8, the plugin's module path).
    pub log: unsafe extern "C" fn(level: u32, target: BytesRef, message: BytesRef),
    /// Releases a context handed over by `connector_start` or `task_start`.
    pub context_release: unsafe extern "C" fn(ctx: *const HostContext),
    /// A connector context: asks the worker to call `connector_task_configs` again.
    pub request_task_reconfiguration: unsafe extern "C" fn(ctx: *const HostContext),
    /// A connector context: fails the connector with `message` (UTF-8); `status` is
    /// [`STATUS_RETRIABLE`] or [`STATUS_FATAL`].
    pub raise_error: unsafe extern "C" fn(ctx: *const HostContext, status: i32, message: BytesRef),
    /// A task context: reports a problem the task is working around (`present` true, UTF-8
    /// `problem`) or its end (`present` false).
    pub report_problem:
        unsafe extern "C" fn(ctx: *const HostContext, present: bool, problem: BytesRef),
    /// A sink task context: reports `record` (a sink batch of one record, see [`encoding`])
    /// as failed with `status` and `message`. Returns [`STATUS_OK`] when the worker took it
    /// (logged, dead-lettered), else a failure status whose message the worker writes into
    /// the plugin's `out` with the plugin's `out_write`: the error to fail the task with.
    /// Blocks while the worker writes the dead letter.
    pub report_errant: unsafe extern "C" fn(
        ctx: *const HostContext,
        record: BytesRef,
        status: i32,
        message: BytesRef,
        out: *mut OutBuf,
        out_write: unsafe extern "C" fn(out: *mut OutBuf, data: *const u8, len: usize),
    ) -> i32,
}

/// What a plugin offers the worker: its table of functions.
///
/// `class` arguments index the `connectors` array of `describe`'s answer (the `transforms`,
/// `predicates` or `converters` array for the functions of those).
#[repr(C)]
#[derive(Debug)]
pub struct PluginApi {
    /// The plugin's [`ABI_VERSION`] (checked again after the entry call).
    pub abi_version: u32,
    /// Writes the plugin's description as JSON:
    /// `{"sdk_version": "0.1.0", "panic": "unwind", "connectors": [{"class": "generator",
    /// "aliases": [..], "version": "1.0.0", "kind": "source", "options": [{"name": ..,
    /// "type": "INT", "default": "10" | null, "nullable": false, "importance": "HIGH", "doc":
    /// .., "group": .. | null, "display_name": .. | null, "validator": null | {"one_of":
    /// [..]} | {"at_least": n} | {"between": [a, b]} | {"non_empty": true} | {"custom":
    /// true}}]}], "transforms": [..], "predicates": [..], "converters": [..]}`, the last three
    /// with the same `class`, `aliases`, `version` and `options` as a connector (no `kind`) and
    /// a one-line `doc`. Custom validators run inside the plugin, in `connector_validate`, and
    /// for the other kinds when the instance is created.
    pub describe: unsafe extern "C" fn(out: *mut OutBuf) -> i32,
    /// Validates a configuration (JSON object of strings) on a fresh connector of `class`:
    /// the connector's own `validate` plus the options with custom validators. Writes a JSON
    /// array of `{"option": .., "message": ..}` (empty when valid).
    pub connector_validate:
        unsafe extern "C" fn(class: u32, props: BytesRef, out: *mut OutBuf) -> i32,
    /// Creates an unstarted connector of `class` into `*connector`.
    pub connector_new: unsafe extern "C" fn(
        class: u32,
        connector: *mut *mut RawConnector,
        out: *mut OutBuf,
    ) -> i32,
    /// Starts a connector. `input`: `{"name": .., "config": {..}}`; `ctx` is handed over.
    pub connector_start: unsafe extern "C" fn(
        connector: *mut RawConnector,
        ctx: *const HostContext,
        input: BytesRef,
        out: *mut OutBuf,
    ) -> i32,
    /// Writes at most `max_tasks` task configurations as a JSON array of objects of strings.
    pub connector_task_configs:
        unsafe extern "C" fn(connector: *mut RawConnector, max_tasks: u32, out: *mut OutBuf) -> i32,
    /// Stops a connector.
    pub connector_stop: unsafe extern "C" fn(connector: *mut RawConnector, out: *mut OutBuf) -> i32,
    /// Frees a connector; the handle is not used again. Tasks created from it live on.
    pub connector_free: unsafe extern "C" fn(connector: *mut RawConnector),
    /// Creates an unstarted task of a (started) connector into `*task`.
    pub task_new: unsafe extern "C" fn(
        connector: *mut RawConnector,
        task: *mut *mut RawTask,
        out: *mut OutBuf,
    ) -> i32,
    /// Starts a task; `ctx` is handed over. `input`: `{"connector": .., "task_id": 0,
    /// "config": {..}}`, plus for source tasks `"offsets": [[{partition}, {offset}], ..]`,
    /// the connector's committed source offsets.
    pub task_start: unsafe extern "C" fn(
        task: *mut RawTask,
        ctx: *const HostContext,
        input: BytesRef,
        out: *mut OutBuf,
    ) -> i32,
    /// A source task's next records, as a source batch (possibly of none).
    pub source_poll: unsafe extern "C" fn(task: *mut RawTask, out: *mut OutBuf) -> i32,
    /// Tells a source task that offsets were written.
    pub source_commit: unsafe extern "C" fn(task: *mut RawTask, out: *mut OutBuf) -> i32,
    /// Partitions assigned to a sink task: `input` is `[["topic", 0], ..]`.
    pub sink_open:
        unsafe extern "C" fn(task: *mut RawTask, input: BytesRef, out: *mut OutBuf) -> i32,
    /// Gives a sink task a sink batch.
    pub sink_put:
        unsafe extern "C" fn(task: *mut RawTask, batch: BytesRef, out: *mut OutBuf) -> i32,
    /// Asks a sink task to make everything put so far durable.
    pub sink_flush: unsafe extern "C" fn(task: *mut RawTask, out: *mut OutBuf) -> i32,
    /// Partitions taken from a sink task: `input` is `[["topic", 0], ..]`.
    pub sink_close:
        unsafe extern "C" fn(task: *mut RawTask, input: BytesRef, out: *mut OutBuf) -> i32,
    /// Stops a task.
    pub task_stop: unsafe extern "C" fn(task: *mut RawTask, out: *mut OutBuf) -> i32,
    /// Interrupts a running `source_poll` or `sink_put` of `task` (which then returns
    /// [`STATUS_CANCELLED`]); returns at once, and does nothing when no such call runs.
    pub task_cancel: unsafe extern "C" fn(task: *mut RawTask),
    /// Frees a task; the handle is not used again.
    pub task_free: unsafe extern "C" fn(task: *mut RawTask),
    /// Creates a transform of `class` (an index into `transforms`) into `*transform`, from its
    /// options (JSON object of strings, the `transforms.<alias>.` prefix removed, already
    /// checked against the declarations). Bad options: [`STATUS_CONFIG`].
    pub transform_new: unsafe extern "C" fn(
        class: u32,
        props: BytesRef,
        transform: *mut *mut RawTransform,
        out: *mut OutBuf,
    ) -> i32,
    /// Applies a transform to `record` (a transform batch of one record, see [`encoding`]).
    /// Writes a transform batch of the record transformed, or of none when it is dropped;
    /// a record the transform cannot handle is [`STATUS_FATAL`] with the reason.
    pub transform_apply: unsafe extern "C" fn(
        transform: *mut RawTransform,
        record: BytesRef,
        out: *mut OutBuf,
    ) -> i32,
    /// Frees a transform; the handle is not used again.
    pub transform_free: unsafe extern "C" fn(transform: *mut RawTransform),
    /// Creates a predicate of `class` (an index into `predicates`), as `transform_new`.
    pub predicate_new: unsafe extern "C" fn(
        class: u32,
        props: BytesRef,
        predicate: *mut *mut RawPredicate,
        out: *mut OutBuf,
    ) -> i32,
    /// Tests `record` (a transform batch of one record); writes one byte, 1 when it matches,
    /// 0 when not; a record it cannot test is [`STATUS_FATAL`] with the reason.
    pub predicate_test: unsafe extern "C" fn(
        predicate: *mut RawPredicate,
        record: BytesRef,
        out: *mut OutBuf,
    ) -> i32,
    /// Frees a predicate; the handle is not used again.
    pub predicate_free: unsafe extern "C" fn(predicate: *mut RawPredicate),
    /// Creates a converter of `class` (an index into `converters`) for keys (`is_key`) or
    /// values, from its options (JSON object of strings, the `value.converter.` prefix
    /// removed, already checked against the declarations). Bad options: [`STATUS_CONFIG`].
    pub converter_new: unsafe extern "C" fn(
        class: u32,
        is_key: bool,
        props: BytesRef,
        converter: *mut *mut RawConverter,
        out: *mut OutBuf,
    ) -> i32,
    /// Connect data to bytes: `data` is a data buffer (schema and value, see [`encoding`]);
    /// writes a bytes buffer. Data the format cannot hold is [`STATUS_FATAL`] with the reason.
    pub converter_from_connect:
        unsafe extern "C" fn(converter: *mut RawConverter, data: BytesRef, out: *mut OutBuf) -> i32,
    /// Bytes to Connect data: `bytes` is a bytes buffer; writes a data buffer. Bytes the
    /// format cannot read are [`STATUS_FATAL`] with the reason.
    pub converter_to_connect: unsafe extern "C" fn(
        converter: *mut RawConverter,
        bytes: BytesRef,
        out: *mut OutBuf,
    ) -> i32,
    /// Frees a converter; the handle is not used again.
    pub converter_free: unsafe extern "C" fn(converter: *mut RawConverter),
}

/// The type of the [`ABI_VERSION_SYMBOL`] function.
pub type AbiVersionFn = unsafe extern "C" fn() -> u32;

/// The type of the [`ENTRY_SYMBOL`] function.
pub type EntryFn = unsafe extern "C" fn(host: *const HostApi) -> *const PluginApi;

/// Generates a plugin library's exported symbols from a function returning its classes: a
/// [`PluginSet`](crate::PluginSet), or just its [`ConnectorPlugin`](crate::ConnectorPlugin)s,
/// described exactly as the built-ins describe theirs.
///
/// ```no_run
/// pub fn plugins() -> sluice_sdk::PluginSet {
///     sluice_sdk::PluginSet::new() // .connector(..), .transform(..), .converter(..)
/// }
/// sluice_sdk::export_plugin!(plugins);
/// # fn main() {}
/// ```
///
/// Use it once, in a crate built with `crate-type = ["cdylib"]`. The generated
/// `sluice_plugin_abi_version` and `sluice_plugin_entry` functions are the library's only
/// entry points; see the [`abi`](crate::abi) module for what crosses them.
#[macro_export]
macro_rules! export_plugin {
    ($plugins:expr) => {
        /// The plugin ABI version this library was built for (read by the worker first).
        #[allow(unsafe_code)]
        #[no_mangle]
        pub extern "C" fn sluice_plugin_abi_version() -> u32 {
            $crate::abi::ABI_VERSION
        }

        /// The plugin's entry point: registers its connector classes and returns its table of
        /// functions.
        ///
        /// # Safety
        /// `host` must point to a `HostApi` that lives as long as the process.
        #[allow(unsafe_code)]
        #[no_mangle]
        pub unsafe extern "C" fn sluice_plugin_entry(
            host: *const $crate::abi::HostApi,
        ) -> *const $crate::abi::PluginApi {
            // SAFETY: forwarded from the worker, which promises a process-long HostApi.
            unsafe { $crate::abi::export::entry(host, || $crate::PluginSet::from(($plugins)())) }
        }
    };
}
