//! Plugins from dynamic libraries (connectors, transforms, predicates, converters): the
//! worker side of the plugin ABI ([`sluice_sdk::abi`]).
//!
//! At start the worker scans `plugin.path`: each entry is a library file, or a folder whose
//! libraries (files ending in the platform's suffix, `.so` on Linux) are loaded, and so are
//! those of its subfolders, one level down (a folder per plugin, as Kafka Connect lays them
//! out). Each library is checked before anything of it runs beyond its loader: its
//! `sluice_plugin_abi_version` symbol must answer this worker's [`ABI_VERSION`]; then its
//! entry is called and its classes registered, option declarations included, beside the
//! built-ins: connector classes in the worker's list, transforms and predicates in
//! [`crate::transforms::registry`], converters with [`crate::converter::register_converter`].
//! A file that is not a library, a library without the symbols, one built for another ABI
//! version or with `panic = "abort"`, and one claiming a class name (or alias) that a
//! built-in or an earlier plugin has (among classes of the same sort), each get one warning
//! naming the file and the reason, and are skipped whole; the worker starts without them.
//!
//! Loaded classes implement the SDK traits by calling into the library: every call runs on
//! tokio's blocking pool, never on the async threads, and a panic or error inside the plugin
//! comes back as an SDK [`Error`] (a panic is fatal), so it fails only its task or connector.
//! A `poll` or `put` the worker abandons (when the task stops) is cancelled in the plugin.
//! Transforms, predicates and converters are synchronous and called in line, as the built-ins
//! are (the ABI asks them not to block); their panics and errors become the record's error,
//! which `errors.tolerance` handles. Libraries are never unloaded: replacing one takes a
//! worker restart.

#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use serde_json::{json, Value as Json};
use sluice_sdk::abi::encoding::{
    config_def_from_json, config_errors_from_json, decode_bytes, decode_data, decode_sink_batch,
    decode_source_batch, decode_transform_batch, encode_bytes, encode_data, encode_sink_batch,
    encode_transform_batch, partitions_to_json, props_from_json, props_to_json,
};
use sluice_sdk::abi::export::{error_to_status, status_to_error};
use sluice_sdk::abi::{
    log_level, AbiVersionFn, BytesRef, EntryFn, HostApi, HostContext, OutBuf, PluginApi,
    RawConnector, RawConverter, RawPredicate, RawTask, RawTransform, ABI_VERSION,
    ABI_VERSION_SYMBOL, ENTRY_SYMBOL, STATUS_FATAL, STATUS_OK,
};
use sluice_sdk::{
    async_trait, Config, ConfigDef, ConfigErrors, ConnectorContext, ConnectorKind, ConnectorPlugin,
    Converter, ConverterPlugin, Error, Predicate, Props, Result, Schema, SchemaRef, SinkConnector,
    SinkRecord, SinkTask, SinkTaskContext, SourceConnector, SourceRecord, SourceTask,
    SourceTaskContext, TopicPartition, Transform, TransformPlugin, TransformRecord, Value,
};
use tracing::{debug, info, warn};

/// Everything one library exports, described.
#[derive(Debug, Default)]
struct LibraryClasses {
    connectors: Vec<ConnectorPlugin>,
    /// Transforms and predicates.
    transforms: Vec<TransformPlugin>,
    converters: Vec<ConverterPlugin>,
}

impl LibraryClasses {
    fn is_empty(&self) -> bool {
        self.connectors.is_empty() && self.transforms.is_empty() && self.converters.is_empty()
    }

    fn class_names(&self) -> Vec<&str> {
        self.connectors
            .iter()
            .map(|c| c.class.as_str())
            .chain(self.transforms.iter().map(|t| t.class.as_str()))
            .chain(self.converters.iter().map(|c| c.class.as_str()))
            .collect()
    }
}

/// The first transform, predicate or converter name of `classes` that is taken: by a
/// built-in, an earlier plugin, or another class of the same library. Returns the name and
/// what already has it.
fn other_conflict(classes: &LibraryClasses) -> Option<(String, String)> {
    let registry = crate::transforms::registry()
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut seen: Vec<&str> = Vec::new();
    for t in &classes.transforms {
        for name in std::iter::once(&t.class).chain(&t.aliases) {
            if let Some(owner) = registry.find(name) {
                return Some((
                    name.clone(),
                    format!("the {} {}", owner.kind_name(), owner.class),
                ));
            }
            if seen.contains(&name.as_str()) {
                return Some((
                    name.clone(),
                    "another class of the same library".to_string(),
                ));
            }
            seen.push(name);
        }
    }
    let mut seen: Vec<&str> = Vec::new();
    for c in &classes.converters {
        for name in std::iter::once(&c.class).chain(&c.aliases) {
            if crate::converter::taken_converter_name([name.as_str()]).is_some() {
                return Some((name.clone(), "a converter already registered".to_string()));
            }
            if seen.contains(&name.as_str()) {
                return Some((
                    name.clone(),
                    "another class of the same library".to_string(),
                ));
            }
            seen.push(name);
        }
    }
    None
}

/// Loads every plugin library found in `plugin_path` and returns their connector classes.
/// `known` are the classes already registered (the built-ins); a library claiming one of
/// their names is skipped. Blocking: call it off the async threads.
pub fn load_plugins(plugin_path: &[PathBuf], known: &[ConnectorPlugin]) -> Vec<ConnectorPlugin> {
    let mut taken: BTreeMap<String, String> = BTreeMap::new();
    for plugin in known {
        for name in std::iter::once(&plugin.class).chain(&plugin.aliases) {
            taken.insert(name.clone(), format!("the built-in {}", plugin.class));
        }
    }
    let mut loaded = Vec::new();
    for file in candidate_files(plugin_path) {
        match load_library(&file) {
            Ok(classes) => {
                if let Some((name, owner)) = name_conflict(&classes.connectors, &taken) {
                    warn!(
                        file = %file.display(),
                        reason = %format!("it declares the connector class '{name}', which {owner} already provides; remove one of them from plugin.path"),
                        "skipping plugin library"
                    );
                    continue;
                }
                if let Some((name, owner)) = other_conflict(&classes) {
                    warn!(
                        file = %file.display(),
                        reason = %format!("it declares the class '{name}', which {owner} already has; remove one of them from plugin.path"),
                        "skipping plugin library"
                    );
                    continue;
                }
                for class in &classes.connectors {
                    for name in std::iter::once(&class.class).chain(&class.aliases) {
                        taken.insert(name.clone(), file.display().to_string());
                    }
                }
                let names = classes.class_names().join(", ");
                for t in classes.transforms {
                    // Checked just above; nothing else registers while the worker starts.
                    if let Err(e) = crate::transforms::register_transform(t) {
                        warn!(file = %file.display(), error = %e, "plugin class not registered");
                    }
                }
                for c in classes.converters {
                    if let Err(e) = crate::converter::register_converter(c) {
                        warn!(file = %file.display(), error = %e, "plugin class not registered");
                    }
                }
                info!(file = %file.display(), classes = %names, "loaded connector plugin");
                loaded.extend(classes.connectors);
            }
            Err(reason) => {
                warn!(file = %file.display(), reason = %reason, "skipping plugin library")
            }
        }
    }
    loaded
}

/// The first class name or alias of `classes` that `taken` (name -> owner) already has.
fn name_conflict(
    classes: &[ConnectorPlugin],
    taken: &BTreeMap<String, String>,
) -> Option<(String, String)> {
    classes.iter().find_map(|c| {
        std::iter::once(&c.class)
            .chain(&c.aliases)
            .find_map(|n| taken.get(n).map(|owner| (n.clone(), owner.clone())))
    })
}

/// The files to try, in a stable order: each file entry, and the libraries in each folder
/// entry and its immediate subfolders.
fn candidate_files(plugin_path: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in plugin_path {
        if entry.is_file() {
            files.push(entry.clone());
        } else if entry.is_dir() {
            for child in sorted_children(entry) {
                if child.is_dir() {
                    files.extend(
                        sorted_children(&child)
                            .into_iter()
                            .filter(|f| is_library_name(f)),
                    );
                } else if is_library_name(&child) {
                    files.push(child);
                }
            }
        } else {
            warn!(entry = %entry.display(), "plugin.path entry does not exist; fix or remove it");
        }
    }
    files
}

fn sorted_children(dir: &Path) -> Vec<PathBuf> {
    let mut children: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            warn!(folder = %dir.display(), error = %e, "cannot read a plugin.path folder");
            return Vec::new();
        }
    };
    children.sort();
    children
}

fn is_library_name(path: &Path) -> bool {
    let library = path.is_file()
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(std::env::consts::DLL_SUFFIX));
    if !library && path.is_file() {
        debug!(file = %path.display(), "not a plugin library name; ignored");
    }
    library
}

/// Loads one library and describes its classes; `Err` is the reason to skip it.
fn load_library(path: &Path) -> std::result::Result<LibraryClasses, String> {
    // SAFETY: loading runs the library's initialisers; that is the contract of plugin.path
    // (only trusted libraries belong there). The library is never unloaded, so every symbol
    // taken from it below lives as long as the process.
    let library = unsafe { libloading::Library::new(path) }
        .map_err(|e| format!("not a loadable shared library: {e}"))?;
    let library: &'static libloading::Library = Box::leak(Box::new(library));
    // SAFETY: the symbol's type is fixed for every ABI version.
    let version_fn = unsafe { library.get::<AbiVersionFn>(ABI_VERSION_SYMBOL.as_bytes()) }
        .map_err(|_| {
            format!(
                "no {ABI_VERSION_SYMBOL} symbol, so not a sluice plugin (a plugin crate is built as a cdylib and calls sluice_sdk::export_plugin!)"
            )
        })?;
    // SAFETY: a no-argument function returning u32, per the ABI.
    let version = unsafe { version_fn() };
    if version != ABI_VERSION {
        return Err(format!(
            "built for plugin ABI version {version}, but this worker speaks version {ABI_VERSION}; rebuild the plugin against sluice-sdk {} (ABI version {ABI_VERSION})",
            env!("CARGO_PKG_VERSION")
        ));
    }
    // SAFETY: the entry's type is fixed for this ABI version, checked just above.
    let entry = unsafe { library.get::<EntryFn>(ENTRY_SYMBOL.as_bytes()) }.map_err(|_| {
        format!("no {ENTRY_SYMBOL} symbol; rebuild the plugin with sluice_sdk::export_plugin!")
    })?;
    // SAFETY: host_api() lives as long as the process.
    let api = unsafe { entry(host_api()) };
    if api.is_null() {
        return Err(
            "its entry point refused to start (see the plugin's log line above)".to_string(),
        );
    }
    // SAFETY: a non-null table from the plugin, alive as long as the never-unloaded library.
    let api: &'static PluginApi = unsafe { &*api };
    if api.abi_version != ABI_VERSION {
        return Err(format!(
            "its function table is for ABI version {}, not {ABI_VERSION}",
            api.abi_version
        ));
    }
    let library = Arc::new(PluginLibrary {
        path: path.to_path_buf(),
        api,
    });
    // SAFETY: `out` is a live Vec for the call.
    let description = call(|out| unsafe { (api.describe)(out) })
        .map_err(|e| format!("cannot describe its connectors: {e}"))?;
    describe_classes(&library, &description)
}

fn describe_classes(
    library: &Arc<PluginLibrary>,
    description: &[u8],
) -> std::result::Result<LibraryClasses, String> {
    let description: Json = serde_json::from_slice(description)
        .map_err(|e| format!("its description is not JSON: {e}"))?;
    if description["panic"] != "unwind" {
        return Err(
            "it was built with panic = \"abort\", so a panic in it would stop the whole worker; build it with panic = \"unwind\" (the default)".to_string(),
        );
    }
    let list = |name: &str| -> &[Json] {
        description[name]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
    };
    let mut classes = LibraryClasses::default();
    for (id, c) in list("connectors").iter().enumerate() {
        let header = ClassHeader::read(c, "connector")?;
        let class = Arc::new(PluginClass {
            library: library.clone(),
            id: id as u32,
            name: header.class.clone(),
        });
        let kind = match c["kind"].as_str() {
            Some("source") => ConnectorKind::Source(Arc::new(move || {
                Box::new(PluginConnector::new(class.clone())) as Box<dyn SourceConnector>
            })),
            Some("sink") => ConnectorKind::Sink(Arc::new(move || {
                Box::new(PluginConnector::new(class.clone())) as Box<dyn SinkConnector>
            })),
            other => {
                return Err(format!(
                    "connector class '{}' has kind {other:?}, not \"source\" or \"sink\"",
                    header.class
                ))
            }
        };
        classes.connectors.push(ConnectorPlugin {
            class: header.class,
            aliases: header.aliases,
            version: header.version,
            config_def: header.config_def,
            kind,
        });
    }
    for (id, c) in list("transforms").iter().enumerate() {
        let header = ClassHeader::read(c, "transform")?;
        let class = plugin_class(library, id, &header);
        classes.transforms.push(
            TransformPlugin::transform(
                header.class,
                header.doc,
                header.config_def,
                move |config| new_transform(&class, config),
            )
            .aliases(header.aliases)
            .version(header.version),
        );
    }
    for (id, c) in list("predicates").iter().enumerate() {
        let header = ClassHeader::read(c, "predicate")?;
        let class = plugin_class(library, id, &header);
        classes.transforms.push(
            TransformPlugin::predicate(
                header.class,
                header.doc,
                header.config_def,
                move |config| new_predicate(&class, config),
            )
            .aliases(header.aliases)
            .version(header.version),
        );
    }
    for (id, c) in list("converters").iter().enumerate() {
        let header = ClassHeader::read(c, "converter")?;
        let class = plugin_class(library, id, &header);
        classes.converters.push(
            ConverterPlugin::new(
                header.class,
                header.doc,
                header.config_def,
                move |config, is_key| new_converter(&class, config, is_key),
            )
            .aliases(header.aliases)
            .version(header.version),
        );
    }
    if classes.is_empty() {
        return Err(
            "it declares no connector, transform, predicate or converter classes".to_string(),
        );
    }
    Ok(classes)
}

/// What every class of a description has.
struct ClassHeader {
    class: String,
    aliases: Vec<String>,
    version: String,
    doc: String,
    config_def: ConfigDef,
}

impl ClassHeader {
    fn read(c: &Json, sort: &str) -> std::result::Result<Self, String> {
        let class = c["class"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| format!("a {sort} in its description has no \"class\""))?
            .to_string();
        let config_def = config_def_from_json(&c["options"])
            .map_err(|e| format!("{sort} class '{class}': {e}"))?;
        let aliases = c["aliases"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            class,
            aliases,
            version: c["version"].as_str().unwrap_or("unknown").to_string(),
            doc: c["doc"].as_str().unwrap_or_default().to_string(),
            config_def,
        })
    }
}

fn plugin_class(library: &Arc<PluginLibrary>, id: usize, header: &ClassHeader) -> Arc<PluginClass> {
    Arc::new(PluginClass {
        library: library.clone(),
        id: id as u32,
        name: header.class.clone(),
    })
}

/// A failure creating a transform, predicate or converter, as option errors: the plugin's own
/// per-option errors, or the failure itself on `type`.
fn creation_errors(class: &PluginClass, error: Error) -> ConfigErrors {
    match error {
        Error::Config(errors) => errors,
        other => {
            let mut errors = ConfigErrors::default();
            errors.push(
                "type",
                format!(
                    "the plugin {} could not create {}: {other}",
                    class.library.path.display(),
                    class.name
                ),
            );
            errors
        }
    }
}

fn new_transform(
    class: &Arc<PluginClass>,
    config: &Config,
) -> std::result::Result<Box<dyn Transform>, ConfigErrors> {
    let props = props_to_json(config.originals()).to_string();
    let mut raw: *mut RawTransform = std::ptr::null_mut();
    // SAFETY: `props` and `out` are valid for the call; `raw` is a writable slot.
    call(|out| unsafe {
        (class.api().transform_new)(class.id, BytesRef::new(props.as_bytes()), &mut raw, out)
    })
    .map_err(|e| creation_errors(class, e))?;
    Ok(Box::new(PluginTransform {
        class: class.clone(),
        raw,
    }))
}

fn new_predicate(
    class: &Arc<PluginClass>,
    config: &Config,
) -> std::result::Result<Box<dyn Predicate>, ConfigErrors> {
    let props = props_to_json(config.originals()).to_string();
    let mut raw: *mut RawPredicate = std::ptr::null_mut();
    // SAFETY: `props` and `out` are valid for the call; `raw` is a writable slot.
    call(|out| unsafe {
        (class.api().predicate_new)(class.id, BytesRef::new(props.as_bytes()), &mut raw, out)
    })
    .map_err(|e| creation_errors(class, e))?;
    Ok(Box::new(PluginPredicate {
        class: class.clone(),
        raw,
    }))
}

fn new_converter(
    class: &Arc<PluginClass>,
    config: &Config,
    is_key: bool,
) -> std::result::Result<Box<dyn Converter>, ConfigErrors> {
    let props = props_to_json(config.originals()).to_string();
    let mut raw: *mut RawConverter = std::ptr::null_mut();
    // SAFETY: `props` and `out` are valid for the call; `raw` is a writable slot.
    call(|out| unsafe {
        (class.api().converter_new)(
            class.id,
            is_key,
            BytesRef::new(props.as_bytes()),
            &mut raw,
            out,
        )
    })
    .map_err(|e| creation_errors(class, e))?;
    Ok(Box::new(PluginConverter {
        class: class.clone(),
        raw,
    }))
}

/// A plugin's transform instance; freed in the plugin when dropped.
#[derive(Debug)]
struct PluginTransform {
    class: Arc<PluginClass>,
    raw: *mut RawTransform,
}

// SAFETY: the SDK's `Transform` is `Send + Sync`, so the plugin's instance may be called from
// any thread, concurrently.
unsafe impl Send for PluginTransform {}
// SAFETY: as above.
unsafe impl Sync for PluginTransform {}

impl Transform for PluginTransform {
    fn apply(
        &self,
        record: TransformRecord,
    ) -> std::result::Result<Option<TransformRecord>, String> {
        let batch = encode_transform_batch(std::slice::from_ref(&record));
        // SAFETY: a live transform; the batch and `out` are valid for the call.
        let out = call(|out| unsafe {
            (self.class.api().transform_apply)(self.raw, BytesRef::new(&batch), out)
        })
        .map_err(|e| e.to_string())?;
        let mut records = decode_transform_batch(&out).map_err(|e| e.to_string())?;
        match records.len() {
            0 => Ok(None),
            1 => Ok(records.pop()),
            n => Err(format!("the plugin answered {n} records for one")),
        }
    }
}

impl Drop for PluginTransform {
    fn drop(&mut self) {
        let free = self.class.api().transform_free;
        let raw = SendPtr(self.raw.cast());
        off_async_threads(move || {
            let raw = raw;
            // SAFETY: the handle is freed once, here, and never used again.
            unsafe { free(raw.0.cast()) }
        });
    }
}

/// A plugin's predicate instance; freed in the plugin when dropped.
#[derive(Debug)]
struct PluginPredicate {
    class: Arc<PluginClass>,
    raw: *mut RawPredicate,
}

// SAFETY: the SDK's `Predicate` is `Send + Sync`.
unsafe impl Send for PluginPredicate {}
// SAFETY: as above.
unsafe impl Sync for PluginPredicate {}

impl Predicate for PluginPredicate {
    fn test(&self, record: &TransformRecord) -> std::result::Result<bool, String> {
        let batch = encode_transform_batch(std::slice::from_ref(record));
        // SAFETY: a live predicate; the batch and `out` are valid for the call.
        let out = call(|out| unsafe {
            (self.class.api().predicate_test)(self.raw, BytesRef::new(&batch), out)
        })
        .map_err(|e| e.to_string())?;
        match out.as_slice() {
            [0] => Ok(false),
            [1] => Ok(true),
            other => Err(format!(
                "the plugin answered {other:?}, not one byte 0 or 1"
            )),
        }
    }
}

impl Drop for PluginPredicate {
    fn drop(&mut self) {
        let free = self.class.api().predicate_free;
        let raw = SendPtr(self.raw.cast());
        off_async_threads(move || {
            let raw = raw;
            // SAFETY: the handle is freed once, here, and never used again.
            unsafe { free(raw.0.cast()) }
        });
    }
}

/// A plugin's converter instance; freed in the plugin when dropped.
#[derive(Debug)]
struct PluginConverter {
    class: Arc<PluginClass>,
    raw: *mut RawConverter,
}

// SAFETY: the SDK's `Converter` is `Send + Sync`.
unsafe impl Send for PluginConverter {}
// SAFETY: as above.
unsafe impl Sync for PluginConverter {}

impl Converter for PluginConverter {
    fn encode(
        &self,
        schema: Option<&Schema>,
        value: &Value,
    ) -> std::result::Result<Option<Vec<u8>>, String> {
        let data = encode_data(schema, value);
        // SAFETY: a live converter; the data and `out` are valid for the call.
        let out = call(|out| unsafe {
            (self.class.api().converter_from_connect)(self.raw, BytesRef::new(&data), out)
        })
        .map_err(|e| e.to_string())?;
        decode_bytes(&out).map_err(|e| e.to_string())
    }

    fn decode(
        &self,
        bytes: Option<&[u8]>,
    ) -> std::result::Result<(Option<SchemaRef>, Value), String> {
        let input = encode_bytes(bytes);
        // SAFETY: a live converter; the input and `out` are valid for the call.
        let out = call(|out| unsafe {
            (self.class.api().converter_to_connect)(self.raw, BytesRef::new(&input), out)
        })
        .map_err(|e| e.to_string())?;
        decode_data(&out).map_err(|e| e.to_string())
    }
}

impl Drop for PluginConverter {
    fn drop(&mut self) {
        let free = self.class.api().converter_free;
        let raw = SendPtr(self.raw.cast());
        off_async_threads(move || {
            let raw = raw;
            // SAFETY: the handle is freed once, here, and never used again.
            unsafe { free(raw.0.cast()) }
        });
    }
}

/// The worker's side of the ABI, handed to every plugin.
fn host_api() -> &'static HostApi {
    static API: OnceLock<HostApi> = OnceLock::new();
    API.get_or_init(|| HostApi {
        abi_version: ABI_VERSION,
        max_log_level: match tracing::level_filters::LevelFilter::current() {
            f if f == tracing::level_filters::LevelFilter::OFF => log_level::OFF,
            f if f == tracing::level_filters::LevelFilter::ERROR => log_level::ERROR,
            f if f == tracing::level_filters::LevelFilter::WARN => log_level::WARN,
            f if f == tracing::level_filters::LevelFilter::INFO => log_level::INFO,
            f if f == tracing::level_filters::LevelFilter::DEBUG => log_level::DEBUG,
            _ => log_level::TRACE,
        },
        out_write: host_out_write,
        log: host_log,
        context_release: host_context_release,
        request_task_reconfiguration: host_request_task_reconfiguration,
        raise_error: host_raise_error,
        report_problem: host_report_problem,
        report_errant: host_report_errant,
    })
}

/// What a [`HostContext`] handle given to a plugin points to.
enum HostContextBox {
    Connector(ConnectorContext),
    Source(SourceTaskContext),
    Sink {
        ctx: SinkTaskContext,
        runtime: tokio::runtime::Handle,
    },
}

impl HostContextBox {
    fn into_raw(self) -> *const HostContext {
        Box::into_raw(Box::new(self))
            .cast::<HostContext>()
            .cast_const()
    }
}

/// # Safety
/// `ctx` must be a live handle from [`HostContextBox::into_raw`].
unsafe fn context<'a>(ctx: *const HostContext) -> Option<&'a HostContextBox> {
    // SAFETY: the plugin passes back a handle we made and has not released yet.
    unsafe { ctx.cast::<HostContextBox>().as_ref() }
}

/// Runs a host callback body, never letting a panic unwind into the plugin.
fn callback<T>(what: &str, fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        warn!(callback = what, "a worker callback from a plugin panicked");
        fallback
    })
}

unsafe extern "C" fn host_out_write(out: *mut OutBuf, data: *const u8, len: usize) {
    if out.is_null() {
        return;
    }
    // SAFETY: `out` is the Vec<u8> of the current call (see `call`); `data` is readable for
    // `len` bytes during this call.
    unsafe { (*out.cast::<Vec<u8>>()).extend_from_slice(BytesRef { ptr: data, len }.as_slice()) }
}

unsafe extern "C" fn host_log(level: u32, target: BytesRef, message: BytesRef) {
    // SAFETY: both slices are valid during the call.
    let (target, message) = unsafe { (target.as_slice(), message.as_slice()) };
    let target = String::from_utf8_lossy(target);
    let message = String::from_utf8_lossy(message);
    callback("log", (), || match level {
        log_level::ERROR => tracing::error!(plugin = %target, "{message}"),
        log_level::WARN => tracing::warn!(plugin = %target, "{message}"),
        log_level::INFO => tracing::info!(plugin = %target, "{message}"),
        log_level::DEBUG => tracing::debug!(plugin = %target, "{message}"),
        _ => tracing::trace!(plugin = %target, "{message}"),
    });
}

unsafe extern "C" fn host_context_release(ctx: *const HostContext) {
    if ctx.is_null() {
        return;
    }
    // SAFETY: made by into_raw, released exactly once by the plugin.
    let boxed = unsafe { Box::from_raw(ctx.cast::<HostContextBox>().cast_mut()) };
    callback("context_release", (), move || drop(boxed));
}

unsafe extern "C" fn host_request_task_reconfiguration(ctx: *const HostContext) {
    // SAFETY: a live context.
    if let Some(HostContextBox::Connector(c)) = unsafe { context(ctx) } {
        callback("request_task_reconfiguration", (), || {
            c.request_task_reconfiguration();
        });
    }
}

unsafe extern "C" fn host_raise_error(ctx: *const HostContext, status: i32, message: BytesRef) {
    // SAFETY: a live context; the message is valid during the call.
    let (ctx, message) = unsafe { (context(ctx), message.as_slice()) };
    if let Some(HostContextBox::Connector(c)) = ctx {
        callback("raise_error", (), || {
            c.raise_error(status_to_error(status, message))
        });
    }
}

unsafe extern "C" fn host_report_problem(
    ctx: *const HostContext,
    present: bool,
    problem: BytesRef,
) {
    // SAFETY: a live context; the text is valid during the call.
    let (ctx, problem) = unsafe { (context(ctx), problem.as_slice()) };
    let problem = present.then(|| String::from_utf8_lossy(problem).into_owned());
    callback("report_problem", (), || match ctx {
        Some(HostContextBox::Source(c)) => c.report_problem(problem),
        Some(HostContextBox::Sink { ctx, .. }) => ctx.report_problem(problem),
        _ => {}
    });
}

unsafe extern "C" fn host_report_errant(
    ctx: *const HostContext,
    record: BytesRef,
    status: i32,
    message: BytesRef,
    out: *mut OutBuf,
    out_write: unsafe extern "C" fn(out: *mut OutBuf, data: *const u8, len: usize),
) -> i32 {
    // SAFETY: a live context; both slices are valid during the call.
    let (ctx, record, message) = unsafe { (context(ctx), record.as_slice(), message.as_slice()) };
    let answer = callback(
        "report_errant",
        Err(Error::fatal(
            "the worker failed while taking an errant record",
        )),
        || {
            let Some(HostContextBox::Sink { ctx, runtime }) = ctx else {
                return Err(Error::fatal("report_errant needs a sink task context"));
            };
            let record = decode_sink_batch(record)?
                .into_iter()
                .next()
                .ok_or_else(|| Error::fatal("report_errant was given no record"))?;
            let error = status_to_error(status, message);
            runtime.block_on(ctx.report_errant(&record, &error))
        },
    );
    match answer {
        Ok(()) => STATUS_OK,
        Err(e) => {
            let (status, text) = error_to_status(&e);
            // SAFETY: the plugin's own buffer and writer, valid during this call.
            unsafe { out_write(out, text.as_ptr(), text.len()) };
            if status == STATUS_OK {
                STATUS_FATAL
            } else {
                status
            }
        }
    }
}

/// Calls into a plugin with a fresh output buffer; a failure status becomes an SDK error.
fn call(f: impl FnOnce(*mut OutBuf) -> i32) -> Result<Vec<u8>> {
    let mut out = Vec::<u8>::new();
    let status = f((&mut out as *mut Vec<u8>).cast::<OutBuf>());
    if status == STATUS_OK {
        Ok(out)
    } else {
        Err(status_to_error(status, &out))
    }
}

/// Runs a plugin call on tokio's blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(Error::fatal(format!("a plugin call did not complete: {e}"))))
}

/// A loaded library.
#[derive(Debug)]
struct PluginLibrary {
    path: PathBuf,
    api: &'static PluginApi,
}

/// One connector class of a library.
#[derive(Debug)]
struct PluginClass {
    library: Arc<PluginLibrary>,
    id: u32,
    name: String,
}

impl PluginClass {
    fn api(&self) -> &'static PluginApi {
        self.library.api
    }
}

/// A plugin connector instance; freed in the plugin when the last user drops it.
#[derive(Debug)]
struct ConnectorHandle {
    class: Arc<PluginClass>,
    raw: *mut RawConnector,
}

// SAFETY: the plugin guards each connector with a lock, so it may be called from any thread.
unsafe impl Send for ConnectorHandle {}
// SAFETY: as above.
unsafe impl Sync for ConnectorHandle {}

impl Drop for ConnectorHandle {
    fn drop(&mut self) {
        let free = self.class.api().connector_free;
        let raw = SendPtr(self.raw.cast());
        off_async_threads(move || {
            let raw = raw;
            // SAFETY: the handle is freed once, here, and never used again.
            unsafe { free(raw.0.cast()) }
        });
    }
}

/// A plugin task instance; freed in the plugin when the last user drops it.
#[derive(Debug)]
struct TaskHandle {
    class: Arc<PluginClass>,
    raw: *mut RawTask,
}

// SAFETY: the plugin guards each task with a lock, so it may be called from any thread.
unsafe impl Send for TaskHandle {}
// SAFETY: as above.
unsafe impl Sync for TaskHandle {}

impl Drop for TaskHandle {
    fn drop(&mut self) {
        let free = self.class.api().task_free;
        let raw = SendPtr(self.raw.cast());
        off_async_threads(move || {
            let raw = raw;
            // SAFETY: the handle is freed once, here, and never used again.
            unsafe { free(raw.0.cast()) }
        });
    }
}

struct SendPtr(*mut u8);
// SAFETY: only moved to the thread that frees it.
unsafe impl Send for SendPtr {}

/// Runs `f` on the blocking pool when inside tokio (a plugin's destructor may block), else
/// here.
fn off_async_threads(f: impl FnOnce() + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => drop(handle.spawn_blocking(f)),
        Err(_) => f(),
    }
}

const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;
const ABANDONED: u8 = 3;

/// Cancels a running `poll`/`put` in the plugin when the worker drops the call's future.
struct CancelOnDrop {
    state: Arc<AtomicU8>,
    task: Arc<TaskHandle>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.state.swap(ABANDONED, Ordering::AcqRel) == RUNNING {
            // SAFETY: a live task; task_cancel only signals and returns at once.
            unsafe { (self.task.class.api().task_cancel)(self.task.raw) }
        }
    }
}

/// Runs `f` on the blocking pool; dropping the returned future cancels it in the plugin.
async fn cancellable<T: Send + 'static>(
    task: Arc<TaskHandle>,
    f: impl FnOnce(&TaskHandle) -> Result<T> + Send + 'static,
) -> Result<T> {
    let state = Arc::new(AtomicU8::new(QUEUED));
    let _guard = CancelOnDrop {
        state: state.clone(),
        task: task.clone(),
    };
    blocking(move || {
        if state
            .compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(Error::retriable("the call was abandoned before it started"));
        }
        let result = f(&task);
        state.store(DONE, Ordering::Release);
        result
    })
    .await
}

/// A plugin's source or sink connector, as the worker sees it.
struct PluginConnector {
    class: Arc<PluginClass>,
    handle: Option<Arc<ConnectorHandle>>,
}

impl PluginConnector {
    fn new(class: Arc<PluginClass>) -> Self {
        Self {
            class,
            handle: None,
        }
    }

    async fn validate(&self, config: &Props) -> ConfigErrors {
        let class = self.class.clone();
        let input = props_to_json(config).to_string();
        let result = blocking(move || {
            let api = class.api();
            // SAFETY: the input and `out` are valid for the call.
            let out = call(|out| unsafe {
                (api.connector_validate)(class.id, BytesRef::new(input.as_bytes()), out)
            })?;
            let json: Json = serde_json::from_slice(&out)
                .map_err(|e| Error::fatal(format!("malformed validation answer: {e}")))?;
            config_errors_from_json(&json)
        })
        .await;
        result.unwrap_or_else(|e| {
            let mut errors = ConfigErrors::default();
            errors.push(
                "connector.class",
                format!(
                    "the plugin {} failed to validate: {e}",
                    self.class.library.path.display()
                ),
            );
            errors
        })
    }

    async fn start(&mut self, ctx: ConnectorContext, config: Props) -> Result<()> {
        let handle = match &self.handle {
            Some(h) => h.clone(),
            None => {
                let class = self.class.clone();
                let h = blocking(move || {
                    let mut raw: *mut RawConnector = std::ptr::null_mut();
                    // SAFETY: `raw` is a writable slot; `out` is valid for the call.
                    call(|out| unsafe { (class.api().connector_new)(class.id, &mut raw, out) })?;
                    Ok(Arc::new(ConnectorHandle { class, raw }))
                })
                .await?;
                self.handle = Some(h.clone());
                h
            }
        };
        let input = json!({"name": ctx.name, "config": props_to_json(&config)}).to_string();
        let ctx = SendConst(HostContextBox::Connector(ctx).into_raw());
        blocking(move || {
            let ctx = ctx;
            // SAFETY: a live handle; the context is handed over; inputs valid for the call.
            call(|out| unsafe {
                (handle.class.api().connector_start)(
                    handle.raw,
                    ctx.0,
                    BytesRef::new(input.as_bytes()),
                    out,
                )
            })
            .map(drop)
        })
        .await
    }

    fn handle(&self) -> Result<Arc<ConnectorHandle>> {
        self.handle
            .clone()
            .ok_or_else(|| Error::fatal(format!("connector {} was not started", self.class.name)))
    }

    async fn task_configs(&mut self, max_tasks: usize) -> Result<Vec<Props>> {
        let handle = self.handle()?;
        blocking(move || {
            // SAFETY: a live handle; `out` valid for the call.
            let out = call(|out| unsafe {
                (handle.class.api().connector_task_configs)(handle.raw, max_tasks as u32, out)
            })?;
            let json: Json = serde_json::from_slice(&out)
                .map_err(|e| Error::fatal(format!("malformed task configurations: {e}")))?;
            json.as_array()
                .ok_or_else(|| Error::fatal("task configurations must be a JSON array"))?
                .iter()
                .map(props_from_json)
                .collect()
        })
        .await
    }

    async fn stop(&mut self) -> Result<()> {
        let Some(handle) = self.handle.clone() else {
            return Ok(());
        };
        blocking(move || {
            // SAFETY: a live handle; `out` valid for the call.
            call(|out| unsafe { (handle.class.api().connector_stop)(handle.raw, out) }).map(drop)
        })
        .await
    }

    fn new_task(&self) -> PluginTask {
        PluginTask {
            class: self.class.clone(),
            connector: self.handle.clone(),
            task: None,
        }
    }
}

struct SendConst(*const HostContext);
// SAFETY: a boxed HostContextBox, whose contents are Send + Sync.
unsafe impl Send for SendConst {}

#[async_trait]
impl SourceConnector for PluginConnector {
    async fn validate(&self, config: &Props) -> ConfigErrors {
        PluginConnector::validate(self, config).await
    }

    async fn start(&mut self, ctx: ConnectorContext, config: Props) -> Result<()> {
        PluginConnector::start(self, ctx, config).await
    }

    async fn task_configs(&mut self, max_tasks: usize) -> Result<Vec<Props>> {
        PluginConnector::task_configs(self, max_tasks).await
    }

    async fn stop(&mut self) -> Result<()> {
        PluginConnector::stop(self).await
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(self.new_task())
    }
}

#[async_trait]
impl SinkConnector for PluginConnector {
    async fn validate(&self, config: &Props) -> ConfigErrors {
        PluginConnector::validate(self, config).await
    }

    async fn start(&mut self, ctx: ConnectorContext, config: Props) -> Result<()> {
        PluginConnector::start(self, ctx, config).await
    }

    async fn task_configs(&mut self, max_tasks: usize) -> Result<Vec<Props>> {
        PluginConnector::task_configs(self, max_tasks).await
    }

    async fn stop(&mut self) -> Result<()> {
        PluginConnector::stop(self).await
    }

    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(self.new_task())
    }
}

/// A plugin's source or sink task, as the worker sees it. The plugin's task is created at the
/// first `start`, on the blocking pool.
struct PluginTask {
    class: Arc<PluginClass>,
    connector: Option<Arc<ConnectorHandle>>,
    task: Option<Arc<TaskHandle>>,
}

impl PluginTask {
    async fn start(&mut self, ctx: HostContextBox, input: String) -> Result<()> {
        let task = match &self.task {
            Some(t) => t.clone(),
            None => {
                let connector = self.connector.clone().ok_or_else(|| {
                    Error::fatal(format!("connector {} was not started", self.class.name))
                })?;
                let t = blocking(move || {
                    let mut raw: *mut RawTask = std::ptr::null_mut();
                    // SAFETY: a live connector; `raw` is a writable slot; `out` is valid.
                    call(|out| unsafe {
                        (connector.class.api().task_new)(connector.raw, &mut raw, out)
                    })?;
                    Ok(Arc::new(TaskHandle {
                        class: connector.class.clone(),
                        raw,
                    }))
                })
                .await?;
                self.task = Some(t.clone());
                t
            }
        };
        let ctx = SendConst(ctx.into_raw());
        blocking(move || {
            let ctx = ctx;
            // SAFETY: a live task; the context is handed over; inputs valid for the call.
            call(|out| unsafe {
                (task.class.api().task_start)(task.raw, ctx.0, BytesRef::new(input.as_bytes()), out)
            })
            .map(drop)
        })
        .await
    }

    fn task(&self) -> Result<Arc<TaskHandle>> {
        self.task
            .clone()
            .ok_or_else(|| Error::fatal(format!("a task of {} was not started", self.class.name)))
    }

    /// A simple call on the task: `f` gets the API, the raw task and the output buffer.
    async fn simple(
        &self,
        f: impl FnOnce(&'static PluginApi, *mut RawTask, *mut OutBuf) -> i32 + Send + 'static,
    ) -> Result<()> {
        let task = self.task()?;
        blocking(move || call(|out| f(task.class.api(), task.raw, out)).map(drop)).await
    }

    async fn stop(&mut self) -> Result<()> {
        if self.task.is_none() {
            return Ok(());
        }
        // SAFETY: a live task; `out` valid for the call.
        self.simple(|api, raw, out| unsafe { (api.task_stop)(raw, out) })
            .await
    }

    async fn partitions_call(
        &self,
        partitions: &[TopicPartition],
        f: unsafe extern "C" fn(*mut RawTask, BytesRef, *mut OutBuf) -> i32,
    ) -> Result<()> {
        let input = partitions_to_json(partitions).to_string();
        // SAFETY: a live task; input and `out` valid for the call.
        self.simple(move |_, raw, out| unsafe { f(raw, BytesRef::new(input.as_bytes()), out) })
            .await
    }
}

#[async_trait]
impl SourceTask for PluginTask {
    async fn start(&mut self, ctx: SourceTaskContext) -> Result<()> {
        let offsets: Vec<Json> = ctx.offsets().iter().map(|(p, o)| json!([p, o])).collect();
        let input = json!({
            "connector": ctx.connector,
            "task_id": ctx.task_id,
            "config": props_to_json(&ctx.config),
            "offsets": offsets,
        })
        .to_string();
        PluginTask::start(self, HostContextBox::Source(ctx), input).await
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>> {
        let task = self.task()?;
        cancellable(task, |task| {
            // SAFETY: a live task; `out` valid for the call.
            let out = call(|out| unsafe { (task.class.api().source_poll)(task.raw, out) })?;
            decode_source_batch(&out)
        })
        .await
    }

    async fn commit(&mut self) -> Result<()> {
        // SAFETY: a live task; `out` valid for the call.
        self.simple(|api, raw, out| unsafe { (api.source_commit)(raw, out) })
            .await
    }

    async fn stop(&mut self) -> Result<()> {
        PluginTask::stop(self).await
    }
}

#[async_trait]
impl SinkTask for PluginTask {
    async fn start(&mut self, ctx: SinkTaskContext) -> Result<()> {
        let input = json!({
            "connector": ctx.connector,
            "task_id": ctx.task_id,
            "config": props_to_json(&ctx.config),
        })
        .to_string();
        let runtime = tokio::runtime::Handle::current();
        PluginTask::start(self, HostContextBox::Sink { ctx, runtime }, input).await
    }

    async fn open(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        let f = self.class.api().sink_open;
        self.partitions_call(partitions, f).await
    }

    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<()> {
        let task = self.task()?;
        cancellable(task, move |task| {
            let batch = encode_sink_batch(&records);
            // SAFETY: a live task; the batch and `out` are valid for the call.
            call(|out| unsafe { (task.class.api().sink_put)(task.raw, BytesRef::new(&batch), out) })
                .map(drop)
        })
        .await
    }

    async fn flush(&mut self) -> Result<()> {
        // SAFETY: a live task; `out` valid for the call.
        self.simple(|api, raw, out| unsafe { (api.sink_flush)(raw, out) })
            .await
    }

    async fn close(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        let f = self.class.api().sink_close;
        self.partitions_call(partitions, f).await
    }

    async fn stop(&mut self) -> Result<()> {
        PluginTask::stop(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::{ConfigDef, ConfigKey, ConfigType, Importance};
    use std::io::Write;

    fn builtin(class: &str, aliases: &[&str]) -> ConnectorPlugin {
        ConnectorPlugin {
            class: class.to_string(),
            aliases: aliases.iter().map(|a| (*a).to_string()).collect(),
            version: "1".to_string(),
            config_def: ConfigDef::new().define(ConfigKey::new(
                "file",
                ConfigType::String,
                Importance::High,
                "File.",
            )),
            kind: ConnectorKind::Source(Arc::new(|| unreachable!("not instantiated in tests"))),
        }
    }

    #[test]
    fn a_class_name_or_alias_already_taken_is_a_conflict() {
        let taken = BTreeMap::from([
            (
                "file-source".to_string(),
                "the built-in file-source".to_string(),
            ),
            (
                "FileStreamSource".to_string(),
                "the built-in file-source".to_string(),
            ),
        ]);
        let claims_builtin = [builtin("file-source", &[])];
        assert_eq!(
            name_conflict(&claims_builtin, &taken),
            Some((
                "file-source".to_string(),
                "the built-in file-source".to_string()
            ))
        );
        let claims_alias = [builtin("my-source", &["FileStreamSource"])];
        assert_eq!(
            name_conflict(&claims_alias, &taken)
                .map(|(n, _)| n)
                .as_deref(),
            Some("FileStreamSource")
        );
        assert_eq!(
            name_conflict(&[builtin("my-source", &["x.MySource"])], &taken),
            None
        );
    }

    #[test]
    fn folders_are_scanned_one_level_deep_for_libraries_only() {
        let dir = tempfile::tempdir().unwrap();
        let suffix = std::env::consts::DLL_SUFFIX;
        let touch = |p: &Path| {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::File::create(p).unwrap().write_all(b"x").unwrap();
        };
        touch(&dir.path().join(format!("b{suffix}")));
        touch(&dir.path().join(format!("a{suffix}")));
        touch(&dir.path().join("README.md"));
        touch(&dir.path().join("one").join(format!("c{suffix}")));
        touch(
            &dir.path()
                .join("one")
                .join("two")
                .join(format!("deep{suffix}")),
        );
        let explicit = dir.path().join("notes.txt");
        touch(&explicit);
        let files = candidate_files(&[
            dir.path().to_path_buf(),
            explicit.clone(),
            dir.path().join("missing"),
        ]);
        let names: Vec<String> = files
            .iter()
            .map(|f| f.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                format!("a{suffix}"),
                format!("b{suffix}"),
                format!("one/c{suffix}"),
                "notes.txt".to_string()
            ]
        );
    }

    #[test]
    fn bad_files_are_reasons_not_crashes() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir
            .path()
            .join(format!("garbage{}", std::env::consts::DLL_SUFFIX));
        std::fs::write(&garbage, b"this is not an ELF file").unwrap();
        let reason = load_library(&garbage).unwrap_err();
        assert!(
            reason.starts_with("not a loadable shared library"),
            "{reason}"
        );
        // Nothing loads, and the built-ins stay.
        let known = [builtin("file-source", &["FileStreamSource"])];
        assert!(load_plugins(&[dir.path().to_path_buf()], &known).is_empty());
    }

    #[test]
    fn descriptions_become_connector_plugins_and_bad_ones_are_refused() {
        let library = Arc::new(PluginLibrary {
            path: PathBuf::from("libx.so"),
            api: leaked_api(),
        });
        let description = json!({
            "sdk_version": "0.1.0",
            "panic": "unwind",
            "connectors": [{
                "class": "generator", "aliases": ["com.example.Generator"], "version": "2.0.0",
                "kind": "source",
                "options": [{"name": "rate", "type": "DOUBLE", "default": "10", "nullable": false,
                    "importance": "HIGH", "doc": "Records per second.", "group": null,
                    "display_name": null, "validator": {"at_least": 0.0}}]
            }]
        });
        let classes = describe_classes(&library, description.to_string().as_bytes())
            .unwrap()
            .connectors;
        assert_eq!(classes.len(), 1);
        assert_eq!(classes[0].class, "generator");
        assert!(classes[0].answers_to("com.example.Generator"));
        assert_eq!(classes[0].version, "2.0.0");
        assert_eq!(classes[0].kind.name(), "source");
        let rate = classes[0].config_def.key("rate").unwrap();
        assert_eq!(
            rate.parse_value("-1").unwrap_err(),
            "must be at least 0 (got -1)"
        );

        let mut abort = description.clone();
        abort["panic"] = json!("abort");
        let reason = describe_classes(&library, abort.to_string().as_bytes()).unwrap_err();
        assert!(reason.contains("panic = \"abort\""), "{reason}");
        let mut odd = description.clone();
        odd["connectors"][0]["kind"] = json!("transform");
        let reason = describe_classes(&library, odd.to_string().as_bytes()).unwrap_err();
        assert!(reason.contains("not \"source\" or \"sink\""), "{reason}");

        // Transforms, predicates and converters, with or without connectors.
        let others = json!({
            "sdk_version": "0.1.0",
            "panic": "unwind",
            "connectors": [],
            "transforms": [{"class": "com.example.Mask", "aliases": ["Mask"], "version": "1",
                "doc": "Masks.", "options": []}],
            "predicates": [{"class": "com.example.IsBig", "aliases": [], "version": "1",
                "doc": "Big ones.", "options": []}],
            "converters": [{"class": "com.example.Hex", "aliases": ["hex"], "version": "1",
                "doc": "Hex text.", "options": []}],
        });
        let classes = describe_classes(&library, others.to_string().as_bytes()).unwrap();
        assert!(classes.connectors.is_empty());
        let kinds: Vec<(&str, &str)> = classes
            .transforms
            .iter()
            .map(|t| (t.class.as_str(), t.kind_name()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("com.example.Mask", "transformation"),
                ("com.example.IsBig", "predicate")
            ]
        );
        assert_eq!(classes.transforms[0].doc, "Masks.");
        assert!(classes.converters[0].answers_to("hex"));
        assert_eq!(classes.class_names().len(), 3);

        let mut empty = others;
        for list in ["transforms", "predicates", "converters"] {
            empty[list] = json!([]);
        }
        let reason = describe_classes(&library, empty.to_string().as_bytes()).unwrap_err();
        assert!(
            reason.contains("declares no connector, transform"),
            "{reason}"
        );
    }

    #[test]
    fn a_library_may_not_take_a_built_in_transform_or_converter_name() {
        let library = Arc::new(PluginLibrary {
            path: PathBuf::from("libx.so"),
            api: leaked_api(),
        });
        let describe = |transform: &str, converter: &str| {
            let d = json!({
                "panic": "unwind",
                "transforms": [{"class": transform, "aliases": [], "options": []}],
                "converters": [{"class": converter, "aliases": [], "options": []}],
            });
            describe_classes(&library, d.to_string().as_bytes()).unwrap()
        };
        let (name, owner) = other_conflict(&describe("Cast$Value", "com.example.Hex")).unwrap();
        assert_eq!(name, "Cast$Value");
        assert!(
            owner.contains("transformation org.apache.kafka.connect.transforms.Cast$Value"),
            "{owner}"
        );
        let (name, _) = other_conflict(&describe("com.example.Mask", "json")).unwrap();
        assert_eq!(name, "json");
        assert!(other_conflict(&describe("com.example.Mask", "com.example.Hex")).is_none());
    }

    /// A table whose functions are never called in these tests.
    fn leaked_api() -> &'static PluginApi {
        unsafe extern "C" fn status(_: *mut OutBuf) -> i32 {
            STATUS_FATAL
        }
        unsafe extern "C" fn validate(_: u32, _: BytesRef, _: *mut OutBuf) -> i32 {
            STATUS_FATAL
        }
        unsafe extern "C" fn new_connector(
            _: u32,
            _: *mut *mut RawConnector,
            _: *mut OutBuf,
        ) -> i32 {
            STATUS_FATAL
        }
        unsafe extern "C" fn connector_ctx(
            _: *mut RawConnector,
            _: *const HostContext,
            _: BytesRef,
            _: *mut OutBuf,
        ) -> i32 {
            STATUS_FATAL
        }
        unsafe extern "C" fn configs(_: *mut RawConnector, _: u32, _: *mut OutBuf) -> i32 {
            STATUS_FATAL
        }
        unsafe extern "C" fn connector_out(_: *mut RawConnector, _: *mut OutBuf) -> i32 {
            STATUS_FATAL
        }
        unsafe extern "C" fn connector_free(_: *mut RawConnector) {}
        unsafe extern "C" fn new_task(
            _: *mut RawConnector,
            _: *mut *mut RawTask,
            _: *mut OutBuf,
        ) -> i32 {
            STATUS_FATAL
        }
        unsafe extern "C" fn task_ctx(
            _: *mut RawTask,
            _: *const HostContext,
            _: BytesRef,
            _: *mut OutBuf,
        ) -> i32 {
            STATUS_FATAL
        }
        unsafe extern "C" fn task_out(_: *mut RawTask, _: *mut OutBuf) -> i32 {
            STATUS_FATAL
        }
        unsafe extern "C" fn task_input(_: *mut RawTask, _: BytesRef, _: *mut OutBuf) -> i32 {
            STATUS_FATAL
        }
        unsafe extern "C" fn task_void(_: *mut RawTask) {}
        unsafe extern "C" fn transform_new(
            _: u32,
            _: BytesRef,
            _: *mut *mut RawTransform,
            _: *mut OutBuf,
        ) -> i32 {
            STATUS_FATAL
        }
        unsafe extern "C" fn transform_apply(
            _: *mut RawTransform,
            _: BytesRef,
            _: *mut OutBuf,
        ) -> i32 {
            STATUS_FATAL
        }
        unsafe extern "C" fn transform_free(_: *mut RawTransform) {}
        unsafe extern "C" fn predicate_new(
            _: u32,
            _: BytesRef,
            _: *mut *mut RawPredicate,
            _: *mut OutBuf,
        ) -> i32 {
            STATUS_FATAL
        }
        unsafe extern "C" fn predicate_test(
            _: *mut RawPredicate,
            _: BytesRef,
            _: *mut OutBuf,
        ) -> i32 {
            STATUS_FATAL
        }
        unsafe extern "C" fn predicate_free(_: *mut RawPredicate) {}
        unsafe extern "C" fn converter_new(
            _: u32,
            _: bool,
            _: BytesRef,
            _: *mut *mut RawConverter,
            _: *mut OutBuf,
        ) -> i32 {
            STATUS_FATAL
        }
        unsafe extern "C" fn converter_call(
            _: *mut RawConverter,
            _: BytesRef,
            _: *mut OutBuf,
        ) -> i32 {
            STATUS_FATAL
        }
        unsafe extern "C" fn converter_free(_: *mut RawConverter) {}
        Box::leak(Box::new(PluginApi {
            abi_version: ABI_VERSION,
            describe: status,
            connector_validate: validate,
            connector_new: new_connector,
            connector_start: connector_ctx,
            connector_task_configs: configs,
            connector_stop: connector_out,
            connector_free,
            task_new: new_task,
            task_start: task_ctx,
            source_poll: task_out,
            source_commit: task_out,
            sink_open: task_input,
            sink_put: task_input,
            sink_flush: task_out,
            sink_close: task_input,
            task_stop: task_out,
            task_cancel: task_void,
            task_free: task_void,
            transform_new,
            transform_apply,
            transform_free,
            predicate_new,
            predicate_test,
            predicate_free,
            converter_new,
            converter_from_connect: converter_call,
            converter_to_connect: converter_call,
            converter_free,
        }))
    }
}
