//! The plugin side of the ABI: the functions of [`PluginApi`], compiled into each plugin
//! library, that drive the plugin's connectors and tasks through the SDK traits.
//!
//! [`export_plugin!`](crate::export_plugin) calls [`entry`]; plugin authors do not use this
//! module directly. Each entry point catches panics, runs the trait's future to completion on
//! the plugin's own tokio runtime (a multi-threaded one, created on first use), and writes the
//! result in the forms [`encoding`](super::encoding) describes. Transforms, predicates and
//! converters are synchronous: their entry points call the trait directly, without the
//! runtime. The plugin's `tracing` events go to the worker's log.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use serde_json::{json, Value as Json};
use tokio::sync::Notify;

use super::encoding::{
    config_def_to_json, config_errors_from_json, config_errors_to_json, decode_bytes, decode_data,
    decode_sink_batch, decode_transform_batch, encode_bytes, encode_data, encode_sink_batch,
    encode_source_batch, encode_transform_batch, partitions_from_json, props_from_json,
    props_to_json,
};
use super::{
    log_level, BytesRef, HostApi, HostContext, OutBuf, PluginApi, RawConnector, RawConverter,
    RawPredicate, RawTask, RawTransform, ABI_VERSION, STATUS_CANCELLED, STATUS_CONFIG,
    STATUS_FATAL, STATUS_OK, STATUS_PANIC, STATUS_RETRIABLE,
};
use crate::config::Props;
use crate::connector::{
    ConnectorContext, ConnectorHost, ConnectorKind, ConnectorPlugin, ErrantRecordReporter,
    OffsetSnapshot, SinkConnector, SinkTask, SinkTaskContext, SourceConnector, SourceTask,
    SourceTaskContext, TaskStatusReporter,
};
use crate::convert::{Converter, ConverterPlugin};
use crate::error::{ConfigErrors, Error, Result};
use crate::plugin::PluginSet;
use crate::record::SinkRecord;
use crate::transform::{Predicate, Transform, TransformKind, TransformPlugin, TransformRecord};

static HOST: OnceLock<&'static HostApi> = OnceLock::new();
static PLUGINS: OnceLock<PluginSet> = OnceLock::new();
static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

/// The table [`entry`] returns.
static PLUGIN_API: PluginApi = PluginApi {
    abi_version: ABI_VERSION,
    describe,
    connector_validate,
    connector_new,
    connector_start,
    connector_task_configs,
    connector_stop,
    connector_free,
    task_new,
    task_start,
    source_poll,
    source_commit,
    sink_open,
    sink_put,
    sink_flush,
    sink_close,
    task_stop,
    task_cancel,
    task_free,
    transform_new,
    transform_apply,
    transform_free,
    predicate_new,
    predicate_test,
    predicate_free,
    converter_new,
    converter_from_connect,
    converter_to_connect,
    converter_free,
};

/// Registers the plugin's classes and returns its function table (the body of the
/// `sluice_plugin_entry` symbol [`export_plugin!`](crate::export_plugin) generates).
/// Returns null when `host` is null, speaks another ABI version, or `plugins` panics.
///
/// # Safety
/// `host` must be null or point to a [`HostApi`] that lives as long as the process.
pub unsafe fn entry(host: *const HostApi, plugins: impl FnOnce() -> PluginSet) -> *const PluginApi {
    if host.is_null() {
        return std::ptr::null();
    }
    // SAFETY: the caller promises a process-long HostApi.
    let host: &'static HostApi = unsafe { &*host };
    if host.abi_version != ABI_VERSION {
        return std::ptr::null();
    }
    let _ = HOST.set(host);
    let _ = tracing::subscriber::set_global_default(HostLogSubscriber {
        max_level: host.max_log_level,
    });
    match catch_unwind(AssertUnwindSafe(plugins)) {
        Ok(list) => {
            let _ = PLUGINS.set(list);
            &PLUGIN_API
        }
        Err(panic) => {
            host_log(
                log_level::ERROR,
                module_path!(),
                &format!(
                    "the plugin's list of connectors panicked: {}",
                    panic_message(&*panic)
                ),
            );
            std::ptr::null()
        }
    }
}

fn host() -> &'static HostApi {
    HOST.get()
        .copied()
        .expect("the worker calls sluice_plugin_entry before anything else")
}

fn plugins() -> &'static [ConnectorPlugin] {
    PLUGINS.get().map_or(&[], |set| set.connectors.as_slice())
}

/// The plugin's transforms (`predicates` false) or predicates, in the order `describe` lists
/// them (class numbers index this list).
fn transforms_of(predicates: bool) -> impl Iterator<Item = &'static TransformPlugin> {
    PLUGINS
        .get()
        .map_or(&[][..], |set| set.transforms.as_slice())
        .iter()
        .filter(move |t| matches!(t.factory, TransformKind::Predicate(_)) == predicates)
}

fn converters() -> &'static [ConverterPlugin] {
    PLUGINS.get().map_or(&[], |set| set.converters.as_slice())
}

fn runtime() -> &'static tokio::runtime::Runtime {
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sluice-plugin")
            .enable_all()
            .build()
            .expect("a plugin's tokio runtime starts")
    })
}

fn block_on<F: Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

fn host_log(level: u32, target: &str, message: &str) {
    if let Some(host) = HOST.get() {
        // SAFETY: the host function only reads the two slices during the call.
        unsafe {
            (host.log)(
                level,
                BytesRef::new(target.as_bytes()),
                BytesRef::new(message.as_bytes()),
            );
        }
    }
}

fn write_out(out: *mut OutBuf, bytes: &[u8]) {
    if out.is_null() || bytes.is_empty() {
        return;
    }
    // SAFETY: `out` comes from the worker for this call; the function copies the bytes.
    unsafe { (host().out_write)(out, bytes.as_ptr(), bytes.len()) }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// What a call produced, before it is written out.
enum Outcome {
    Done(Vec<u8>),
    Cancelled,
}

/// Runs `call`, catching panics, and writes its result or error to `out`.
fn guarded(what: &str, out: *mut OutBuf, call: impl FnOnce() -> Result<Outcome>) -> i32 {
    match catch_unwind(AssertUnwindSafe(call)) {
        Ok(Ok(Outcome::Done(bytes))) => {
            write_out(out, &bytes);
            STATUS_OK
        }
        Ok(Ok(Outcome::Cancelled)) => STATUS_CANCELLED,
        Ok(Err(error)) => {
            let (status, message) = error_to_status(&error);
            write_out(out, message.as_bytes());
            status
        }
        Err(panic) => {
            let message = format!("panicked in {what}: {}", panic_message(&*panic));
            write_out(out, message.as_bytes());
            STATUS_PANIC
        }
    }
}

/// The status and message an SDK error crosses as.
pub fn error_to_status(error: &Error) -> (i32, String) {
    match error {
        Error::Retriable(m) => (STATUS_RETRIABLE, m.clone()),
        Error::Fatal(m) => (STATUS_FATAL, m.clone()),
        Error::Config(errors) => (STATUS_CONFIG, config_errors_to_json(errors).to_string()),
    }
}

/// The SDK error a failure status and its message stand for.
pub fn status_to_error(status: i32, message: &[u8]) -> Error {
    let text = String::from_utf8_lossy(message).into_owned();
    match status {
        STATUS_RETRIABLE => Error::Retriable(text),
        STATUS_CONFIG => serde_json::from_str(&text)
            .ok()
            .and_then(|j| config_errors_from_json(&j).ok())
            .map_or(Error::Fatal(text), Error::Config),
        STATUS_PANIC => Error::Fatal(format!("the plugin {text}")),
        STATUS_CANCELLED => Error::Retriable("the call was cancelled".to_string()),
        _ => Error::Fatal(text),
    }
}

fn json_input(input: BytesRef) -> Result<Json> {
    // SAFETY: the worker's input buffer is valid for the call.
    let bytes = unsafe { input.as_slice() };
    serde_json::from_slice(bytes).map_err(|e| Error::fatal(format!("malformed call input: {e}")))
}

fn json_out(json: &Json) -> Result<Outcome> {
    Ok(Outcome::Done(json.to_string().into_bytes()))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in an earlier call poisons the lock; the worker fails the task with it, and the
    // later stop and free calls still need the task.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn class(class: u32) -> Result<&'static ConnectorPlugin> {
    plugins()
        .get(class as usize)
        .ok_or_else(|| Error::fatal(format!("no connector class number {class} in this plugin")))
}

enum ConnectorInstance {
    Source(Box<dyn SourceConnector>),
    Sink(Box<dyn SinkConnector>),
}

/// What a [`RawConnector`] handle points to.
struct ConnectorBox {
    instance: Mutex<ConnectorInstance>,
}

enum TaskInstance {
    Source(Box<dyn SourceTask>),
    Sink(Box<dyn SinkTask>),
}

/// What a [`RawTask`] handle points to.
struct TaskBox {
    instance: Mutex<TaskInstance>,
    cancel: Notify,
}

/// # Safety
/// `connector` must be a live handle from [`connector_new`].
unsafe fn connector_ref<'a>(connector: *mut RawConnector) -> Result<&'a ConnectorBox> {
    if connector.is_null() {
        return Err(Error::fatal("null connector handle"));
    }
    // SAFETY: the caller promises a live handle from connector_new.
    Ok(unsafe { &*(connector as *const ConnectorBox) })
}

/// # Safety
/// `task` must be a live handle from [`task_new`].
unsafe fn task_ref<'a>(task: *mut RawTask) -> Result<&'a TaskBox> {
    if task.is_null() {
        return Err(Error::fatal("null task handle"));
    }
    // SAFETY: the caller promises a live handle from task_new.
    Ok(unsafe { &*(task as *const TaskBox) })
}

/// A worker context handed over to the plugin; released when the last user drops it.
struct HostContextRef(*const HostContext);

// SAFETY: the worker's contexts may be used from any thread (HostApi's contract).
unsafe impl Send for HostContextRef {}
// SAFETY: as above; the host functions taking a context are thread-safe.
unsafe impl Sync for HostContextRef {}

impl Drop for HostContextRef {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: released once, here, as the ABI requires.
            unsafe { (host().context_release)(self.0) }
        }
    }
}

impl fmt::Debug for HostContextRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HostContext")
    }
}

#[derive(Debug)]
struct HostConnectorProxy(HostContextRef);

impl ConnectorHost for HostConnectorProxy {
    fn request_task_reconfiguration(&self) {
        // SAFETY: a live connector context.
        unsafe { (host().request_task_reconfiguration)(self.0 .0) }
    }

    fn raise_error(&self, error: Error) {
        let (status, message) = error_to_status(&error);
        // SAFETY: a live connector context; the message is read during the call.
        unsafe { (host().raise_error)(self.0 .0, status, BytesRef::new(message.as_bytes())) }
    }
}

#[derive(Debug)]
struct HostTaskProxy(Arc<HostContextRef>);

impl TaskStatusReporter for HostTaskProxy {
    fn report_problem(&self, problem: Option<String>) {
        let text = problem.as_deref().unwrap_or_default();
        // SAFETY: a live task context; the text is read during the call.
        unsafe {
            (host().report_problem)(self.0 .0, problem.is_some(), BytesRef::new(text.as_bytes()))
        }
    }
}

#[async_trait::async_trait]
impl ErrantRecordReporter for HostTaskProxy {
    async fn report(&self, record: &SinkRecord, error: &Error) -> Result<()> {
        let batch = encode_sink_batch(std::slice::from_ref(record));
        let (status, message) = error_to_status(error);
        let ctx = self.0.clone();
        // The worker blocks while it writes the dead letter; keep that off the runtime's
        // worker threads.
        let answer = tokio::task::spawn_blocking(move || {
            let mut out = Vec::<u8>::new();
            // SAFETY: a live sink task context; inputs are read during the call, and the
            // worker writes its answer into `out` with our own `plugin_out_write`.
            let code = unsafe {
                (host().report_errant)(
                    ctx.0,
                    BytesRef::new(&batch),
                    status,
                    BytesRef::new(message.as_bytes()),
                    (&mut out as *mut Vec<u8>).cast::<OutBuf>(),
                    plugin_out_write,
                )
            };
            (code, out)
        })
        .await
        .map_err(|e| Error::fatal(format!("reporting an errant record failed: {e}")))?;
        match answer {
            (STATUS_OK, _) => Ok(()),
            (code, message) => Err(status_to_error(code, &message)),
        }
    }
}

/// Appends to a plugin-owned `Vec<u8>` passed as an [`OutBuf`].
unsafe extern "C" fn plugin_out_write(out: *mut OutBuf, data: *const u8, len: usize) {
    if out.is_null() {
        return;
    }
    // SAFETY: `out` is the Vec<u8> passed to report_errant, alive for that call; `data` is
    // readable for `len` bytes during this call.
    unsafe {
        (*out.cast::<Vec<u8>>()).extend_from_slice(BytesRef { ptr: data, len }.as_slice());
    }
}

unsafe extern "C" fn describe(out: *mut OutBuf) -> i32 {
    guarded("describe", out, || {
        let connectors: Vec<Json> = plugins()
            .iter()
            .map(|p| {
                json!({
                    "class": p.class,
                    "aliases": p.aliases,
                    "version": p.version,
                    "kind": p.kind.name(),
                    "options": config_def_to_json(&p.config_def),
                })
            })
            .collect();
        let describe_other = |class: &str, aliases: &[String], version: &str, doc: &str, def| {
            json!({
                "class": class,
                "aliases": aliases,
                "version": version,
                "doc": doc,
                "options": config_def_to_json(def),
            })
        };
        let transforms = |predicates: bool| -> Vec<Json> {
            transforms_of(predicates)
                .map(|t| describe_other(&t.class, &t.aliases, &t.version, &t.doc, &t.config_def))
                .collect()
        };
        let converters: Vec<Json> = converters()
            .iter()
            .map(|c| describe_other(&c.class, &c.aliases, &c.version, &c.doc, &c.config_def))
            .collect();
        json_out(&json!({
            "sdk_version": env!("CARGO_PKG_VERSION"),
            "panic": if cfg!(panic = "unwind") { "unwind" } else { "abort" },
            "connectors": connectors,
            "transforms": transforms(false),
            "predicates": transforms(true),
            "converters": converters,
        }))
    })
}

unsafe extern "C" fn connector_validate(class_id: u32, props: BytesRef, out: *mut OutBuf) -> i32 {
    guarded("validate", out, || {
        let plugin = class(class_id)?;
        let props = props_from_json(&json_input(props)?)?;
        // Custom validators cannot cross the ABI; run them here.
        let mut errors = ConfigErrors::default();
        for key in plugin.config_def.keys() {
            if !matches!(key.validator, Some(crate::config::Validator::Custom(_))) {
                continue;
            }
            if let Some(text) = props.get(&key.name).or(key.default.as_ref()) {
                if let Err(message) = key.parse_value(text) {
                    errors.push(&key.name, message);
                }
            }
        }
        let more = block_on(async {
            match &plugin.kind {
                ConnectorKind::Source(factory) => factory().validate(&props).await,
                ConnectorKind::Sink(factory) => factory().validate(&props).await,
            }
        });
        errors.0.extend(more.0);
        json_out(&config_errors_to_json(&errors))
    })
}

unsafe extern "C" fn connector_new(
    class_id: u32,
    connector: *mut *mut RawConnector,
    out: *mut OutBuf,
) -> i32 {
    guarded("connector creation", out, || {
        if connector.is_null() {
            return Err(Error::fatal("null connector slot"));
        }
        let instance = match &class(class_id)?.kind {
            ConnectorKind::Source(factory) => ConnectorInstance::Source(factory()),
            ConnectorKind::Sink(factory) => ConnectorInstance::Sink(factory()),
        };
        let boxed = Box::new(ConnectorBox {
            instance: Mutex::new(instance),
        });
        // SAFETY: the worker passes a writable slot for the handle.
        unsafe { *connector = Box::into_raw(boxed).cast::<RawConnector>() };
        Ok(Outcome::Done(Vec::new()))
    })
}

unsafe extern "C" fn connector_start(
    connector: *mut RawConnector,
    ctx: *const HostContext,
    input: BytesRef,
    out: *mut OutBuf,
) -> i32 {
    // Owned from here on, whatever happens below.
    let ctx = HostContextRef(ctx);
    guarded("connector start", out, || {
        // SAFETY: a live handle from connector_new.
        let connector = unsafe { connector_ref(connector)? };
        let input = json_input(input)?;
        let name = input["name"].as_str().unwrap_or_default().to_string();
        let config = props_from_json(&input["config"])?;
        let context = ConnectorContext::new(name, Arc::new(HostConnectorProxy(ctx)));
        let mut instance = lock(&connector.instance);
        block_on(async {
            match &mut *instance {
                ConnectorInstance::Source(c) => c.start(context, config).await,
                ConnectorInstance::Sink(c) => c.start(context, config).await,
            }
        })?;
        Ok(Outcome::Done(Vec::new()))
    })
}

unsafe extern "C" fn connector_task_configs(
    connector: *mut RawConnector,
    max_tasks: u32,
    out: *mut OutBuf,
) -> i32 {
    guarded("task_configs", out, || {
        // SAFETY: a live handle from connector_new.
        let connector = unsafe { connector_ref(connector)? };
        let mut instance = lock(&connector.instance);
        let configs: Vec<Props> = block_on(async {
            match &mut *instance {
                ConnectorInstance::Source(c) => c.task_configs(max_tasks as usize).await,
                ConnectorInstance::Sink(c) => c.task_configs(max_tasks as usize).await,
            }
        })?;
        json_out(&Json::Array(configs.iter().map(props_to_json).collect()))
    })
}

unsafe extern "C" fn connector_stop(connector: *mut RawConnector, out: *mut OutBuf) -> i32 {
    guarded("connector stop", out, || {
        // SAFETY: a live handle from connector_new.
        let connector = unsafe { connector_ref(connector)? };
        let mut instance = lock(&connector.instance);
        block_on(async {
            match &mut *instance {
                ConnectorInstance::Source(c) => c.stop().await,
                ConnectorInstance::Sink(c) => c.stop().await,
            }
        })?;
        Ok(Outcome::Done(Vec::new()))
    })
}

unsafe extern "C" fn connector_free(connector: *mut RawConnector) {
    if connector.is_null() {
        return;
    }
    // SAFETY: the handle came from Box::into_raw in connector_new and is freed once.
    let boxed = unsafe { Box::from_raw(connector.cast::<ConnectorBox>()) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(boxed)));
}

unsafe extern "C" fn task_new(
    connector: *mut RawConnector,
    task: *mut *mut RawTask,
    out: *mut OutBuf,
) -> i32 {
    guarded("task creation", out, || {
        // SAFETY: a live handle from connector_new.
        let connector = unsafe { connector_ref(connector)? };
        if task.is_null() {
            return Err(Error::fatal("null task slot"));
        }
        let instance = match &*lock(&connector.instance) {
            ConnectorInstance::Source(c) => TaskInstance::Source(c.create_task()),
            ConnectorInstance::Sink(c) => TaskInstance::Sink(c.create_task()),
        };
        let boxed = Box::new(TaskBox {
            instance: Mutex::new(instance),
            cancel: Notify::new(),
        });
        // SAFETY: the worker passes a writable slot for the handle.
        unsafe { *task = Box::into_raw(boxed).cast::<RawTask>() };
        Ok(Outcome::Done(Vec::new()))
    })
}

unsafe extern "C" fn task_start(
    task: *mut RawTask,
    ctx: *const HostContext,
    input: BytesRef,
    out: *mut OutBuf,
) -> i32 {
    let ctx = Arc::new(HostContextRef(ctx));
    guarded("task start", out, || {
        // SAFETY: a live handle from task_new.
        let task = unsafe { task_ref(task)? };
        let input = json_input(input)?;
        let connector = input["connector"].as_str().unwrap_or_default().to_string();
        let task_id = input["task_id"].as_u64().unwrap_or_default() as u32;
        let config = props_from_json(&input["config"])?;
        let proxy = Arc::new(HostTaskProxy(ctx));
        let mut instance = lock(&task.instance);
        block_on(async {
            match &mut *instance {
                TaskInstance::Source(t) => {
                    let pairs = input["offsets"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|pair| match pair.as_array().map(Vec::as_slice) {
                            Some([Json::Object(p), Json::Object(o)]) => {
                                Some((p.clone(), o.clone()))
                            }
                            _ => None,
                        });
                    let offsets = Arc::new(OffsetSnapshot::new(pairs));
                    t.start(SourceTaskContext::new(
                        connector, task_id, config, offsets, proxy,
                    ))
                    .await
                }
                TaskInstance::Sink(t) => {
                    t.start(SinkTaskContext::new(
                        connector,
                        task_id,
                        config,
                        proxy.clone(),
                        proxy,
                    ))
                    .await
                }
            }
        })?;
        Ok(Outcome::Done(Vec::new()))
    })
}

/// Runs `future` unless the worker cancels the call first.
fn cancellable<F: Future>(task: &TaskBox, future: F) -> Option<F::Output> {
    let cancelled = task.cancel.notified();
    tokio::pin!(cancelled);
    cancelled.as_mut().enable();
    block_on(async {
        tokio::select! {
            biased;
            () = &mut cancelled => None,
            output = future => Some(output),
        }
    })
}

fn not_a(kind: &str) -> Error {
    Error::fatal(format!("this call needs a {kind} task"))
}

unsafe extern "C" fn source_poll(task: *mut RawTask, out: *mut OutBuf) -> i32 {
    guarded("poll", out, || {
        // SAFETY: a live handle from task_new.
        let task = unsafe { task_ref(task)? };
        let mut instance = lock(&task.instance);
        let TaskInstance::Source(t) = &mut *instance else {
            return Err(not_a("source"));
        };
        match cancellable(task, t.poll()) {
            None => Ok(Outcome::Cancelled),
            Some(records) => Ok(Outcome::Done(encode_source_batch(&records?))),
        }
    })
}

unsafe extern "C" fn source_commit(task: *mut RawTask, out: *mut OutBuf) -> i32 {
    guarded("commit", out, || {
        // SAFETY: a live handle from task_new.
        let task = unsafe { task_ref(task)? };
        let mut instance = lock(&task.instance);
        let TaskInstance::Source(t) = &mut *instance else {
            return Err(not_a("source"));
        };
        block_on(t.commit())?;
        Ok(Outcome::Done(Vec::new()))
    })
}

unsafe extern "C" fn sink_open(task: *mut RawTask, input: BytesRef, out: *mut OutBuf) -> i32 {
    guarded("open", out, || {
        // SAFETY: a live handle from task_new.
        let task = unsafe { task_ref(task)? };
        let partitions = partitions_from_json(&json_input(input)?)?;
        let mut instance = lock(&task.instance);
        let TaskInstance::Sink(t) = &mut *instance else {
            return Err(not_a("sink"));
        };
        block_on(t.open(&partitions))?;
        Ok(Outcome::Done(Vec::new()))
    })
}

unsafe extern "C" fn sink_put(task: *mut RawTask, batch: BytesRef, out: *mut OutBuf) -> i32 {
    guarded("put", out, || {
        // SAFETY: a live handle from task_new.
        let task = unsafe { task_ref(task)? };
        // SAFETY: the worker's batch is valid for the call.
        let records = decode_sink_batch(unsafe { batch.as_slice() })?;
        let mut instance = lock(&task.instance);
        let TaskInstance::Sink(t) = &mut *instance else {
            return Err(not_a("sink"));
        };
        match cancellable(task, t.put(records)) {
            None => Ok(Outcome::Cancelled),
            Some(result) => result.map(|()| Outcome::Done(Vec::new())),
        }
    })
}

unsafe extern "C" fn sink_flush(task: *mut RawTask, out: *mut OutBuf) -> i32 {
    guarded("flush", out, || {
        // SAFETY: a live handle from task_new.
        let task = unsafe { task_ref(task)? };
        let mut instance = lock(&task.instance);
        let TaskInstance::Sink(t) = &mut *instance else {
            return Err(not_a("sink"));
        };
        block_on(t.flush())?;
        Ok(Outcome::Done(Vec::new()))
    })
}

unsafe extern "C" fn sink_close(task: *mut RawTask, input: BytesRef, out: *mut OutBuf) -> i32 {
    guarded("close", out, || {
        // SAFETY: a live handle from task_new.
        let task = unsafe { task_ref(task)? };
        let partitions = partitions_from_json(&json_input(input)?)?;
        let mut instance = lock(&task.instance);
        let TaskInstance::Sink(t) = &mut *instance else {
            return Err(not_a("sink"));
        };
        block_on(t.close(&partitions))?;
        Ok(Outcome::Done(Vec::new()))
    })
}

unsafe extern "C" fn task_stop(task: *mut RawTask, out: *mut OutBuf) -> i32 {
    guarded("task stop", out, || {
        // SAFETY: a live handle from task_new.
        let task = unsafe { task_ref(task)? };
        let mut instance = lock(&task.instance);
        block_on(async {
            match &mut *instance {
                TaskInstance::Source(t) => t.stop().await,
                TaskInstance::Sink(t) => t.stop().await,
            }
        })?;
        Ok(Outcome::Done(Vec::new()))
    })
}

unsafe extern "C" fn task_cancel(task: *mut RawTask) {
    // SAFETY: a live handle from task_new; only the Notify is touched, never the task.
    if let Ok(task) = unsafe { task_ref(task) } {
        task.cancel.notify_waiters();
    }
}

unsafe extern "C" fn task_free(task: *mut RawTask) {
    if task.is_null() {
        return;
    }
    // SAFETY: the handle came from Box::into_raw in task_new and is freed once.
    let boxed = unsafe { Box::from_raw(task.cast::<TaskBox>()) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(boxed)));
}

/// What a [`RawTransform`] handle points to.
struct TransformBox(Box<dyn Transform>);

/// What a [`RawPredicate`] handle points to.
struct PredicateBox(Box<dyn Predicate>);

/// What a [`RawConverter`] handle points to.
struct ConverterBox(Box<dyn Converter>);

/// The options of an instance, parsed by its declarations (custom validators included).
fn parsed_options(def: &crate::config::ConfigDef, props: BytesRef) -> Result<crate::Config> {
    def.parse(&props_from_json(&json_input(props)?)?)
}

/// The one record of a transform batch.
fn one_record(record: BytesRef) -> Result<TransformRecord> {
    // SAFETY: the worker's input buffer is valid for the call.
    let mut records = decode_transform_batch(unsafe { record.as_slice() })?;
    if records.len() != 1 {
        return Err(Error::fatal(format!(
            "expected a batch of one record, got {}",
            records.len()
        )));
    }
    Ok(records.remove(0))
}

/// Stores a new instance in the worker's handle slot.
fn hand_over<T, R>(slot: *mut *mut R, instance: T) -> Result<Outcome> {
    if slot.is_null() {
        return Err(Error::fatal("null handle slot"));
    }
    // SAFETY: the worker passes a writable slot for the handle.
    unsafe { *slot = Box::into_raw(Box::new(instance)).cast::<R>() };
    Ok(Outcome::Done(Vec::new()))
}

/// # Safety
/// `handle` must be null or a live handle made by [`hand_over`] with a `T`.
unsafe fn instance_ref<'a, T, R>(handle: *mut R, what: &str) -> Result<&'a T> {
    if handle.is_null() {
        return Err(Error::fatal(format!("null {what} handle")));
    }
    // SAFETY: the caller promises a live handle holding a T.
    Ok(unsafe { &*(handle as *const T) })
}

/// # Safety
/// `handle` must be null or a live handle made by [`hand_over`] with a `T`, freed once.
unsafe fn free_instance<T, R>(handle: *mut R) {
    if handle.is_null() {
        return;
    }
    // SAFETY: the handle came from Box::into_raw in hand_over and is freed once.
    let boxed = unsafe { Box::from_raw(handle.cast::<T>()) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(boxed)));
}

unsafe extern "C" fn transform_new(
    class: u32,
    props: BytesRef,
    transform: *mut *mut RawTransform,
    out: *mut OutBuf,
) -> i32 {
    guarded("transform creation", out, || {
        let plugin = transforms_of(false).nth(class as usize).ok_or_else(|| {
            Error::fatal(format!("no transform class number {class} in this plugin"))
        })?;
        let config = parsed_options(&plugin.config_def, props)?;
        let TransformKind::Transform(factory) = &plugin.factory else {
            return Err(Error::fatal("not a transform class"));
        };
        hand_over(transform, TransformBox(factory(&config)?))
    })
}

unsafe extern "C" fn transform_apply(
    transform: *mut RawTransform,
    record: BytesRef,
    out: *mut OutBuf,
) -> i32 {
    guarded("transform", out, || {
        // SAFETY: a live handle from transform_new.
        let transform = unsafe { instance_ref::<TransformBox, _>(transform, "transform")? };
        let record = one_record(record)?;
        let result = transform.0.apply(record).map_err(Error::Fatal)?;
        Ok(Outcome::Done(encode_transform_batch(result.as_slice())))
    })
}

unsafe extern "C" fn transform_free(transform: *mut RawTransform) {
    // SAFETY: a handle from transform_new, freed once.
    unsafe { free_instance::<TransformBox, _>(transform) }
}

unsafe extern "C" fn predicate_new(
    class: u32,
    props: BytesRef,
    predicate: *mut *mut RawPredicate,
    out: *mut OutBuf,
) -> i32 {
    guarded("predicate creation", out, || {
        let plugin = transforms_of(true).nth(class as usize).ok_or_else(|| {
            Error::fatal(format!("no predicate class number {class} in this plugin"))
        })?;
        let config = parsed_options(&plugin.config_def, props)?;
        let TransformKind::Predicate(factory) = &plugin.factory else {
            return Err(Error::fatal("not a predicate class"));
        };
        hand_over(predicate, PredicateBox(factory(&config)?))
    })
}

unsafe extern "C" fn predicate_test(
    predicate: *mut RawPredicate,
    record: BytesRef,
    out: *mut OutBuf,
) -> i32 {
    guarded("predicate", out, || {
        // SAFETY: a live handle from predicate_new.
        let predicate = unsafe { instance_ref::<PredicateBox, _>(predicate, "predicate")? };
        let record = one_record(record)?;
        let matched = predicate.0.test(&record).map_err(Error::Fatal)?;
        Ok(Outcome::Done(vec![u8::from(matched)]))
    })
}

unsafe extern "C" fn predicate_free(predicate: *mut RawPredicate) {
    // SAFETY: a handle from predicate_new, freed once.
    unsafe { free_instance::<PredicateBox, _>(predicate) }
}

unsafe extern "C" fn converter_new(
    class: u32,
    is_key: bool,
    props: BytesRef,
    converter: *mut *mut RawConverter,
    out: *mut OutBuf,
) -> i32 {
    guarded("converter creation", out, || {
        let plugin = converters().get(class as usize).ok_or_else(|| {
            Error::fatal(format!("no converter class number {class} in this plugin"))
        })?;
        let config = parsed_options(&plugin.config_def, props)?;
        hand_over(converter, ConverterBox((plugin.factory)(&config, is_key)?))
    })
}

unsafe extern "C" fn converter_from_connect(
    converter: *mut RawConverter,
    data: BytesRef,
    out: *mut OutBuf,
) -> i32 {
    guarded("converter", out, || {
        // SAFETY: a live handle from converter_new.
        let converter = unsafe { instance_ref::<ConverterBox, _>(converter, "converter")? };
        // SAFETY: the worker's input buffer is valid for the call.
        let (schema, value) = decode_data(unsafe { data.as_slice() })?;
        let bytes = converter
            .0
            .encode(schema.as_deref(), &value)
            .map_err(Error::Fatal)?;
        Ok(Outcome::Done(encode_bytes(bytes.as_deref())))
    })
}

unsafe extern "C" fn converter_to_connect(
    converter: *mut RawConverter,
    bytes: BytesRef,
    out: *mut OutBuf,
) -> i32 {
    guarded("converter", out, || {
        // SAFETY: a live handle from converter_new.
        let converter = unsafe { instance_ref::<ConverterBox, _>(converter, "converter")? };
        // SAFETY: the worker's input buffer is valid for the call.
        let bytes = decode_bytes(unsafe { bytes.as_slice() })?;
        let (schema, value) = converter.0.decode(bytes.as_deref()).map_err(Error::Fatal)?;
        Ok(Outcome::Done(encode_data(schema.as_deref(), &value)))
    })
}

unsafe extern "C" fn converter_free(converter: *mut RawConverter) {
    // SAFETY: a handle from converter_new, freed once.
    unsafe { free_instance::<ConverterBox, _>(converter) }
}

/// Forwards the plugin's `tracing` events to the worker's log (spans are not forwarded).
struct HostLogSubscriber {
    max_level: u32,
}

fn level_number(level: &tracing::Level) -> u32 {
    match *level {
        tracing::Level::ERROR => log_level::ERROR,
        tracing::Level::WARN => log_level::WARN,
        tracing::Level::INFO => log_level::INFO,
        tracing::Level::DEBUG => log_level::DEBUG,
        tracing::Level::TRACE => log_level::TRACE,
    }
}

impl tracing::Subscriber for HostLogSubscriber {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        level_number(metadata.level()) <= self.max_level
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(match self.max_level {
            log_level::OFF => tracing::level_filters::LevelFilter::OFF,
            log_level::ERROR => tracing::level_filters::LevelFilter::ERROR,
            log_level::WARN => tracing::level_filters::LevelFilter::WARN,
            log_level::INFO => tracing::level_filters::LevelFilter::INFO,
            log_level::DEBUG => tracing::level_filters::LevelFilter::DEBUG,
            _ => tracing::level_filters::LevelFilter::TRACE,
        })
    }

    fn new_span(&self, _span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _span: &tracing::span::Id, _values: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _span: &tracing::span::Id, _follows: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = EventText::default();
        event.record(&mut text);
        let metadata = event.metadata();
        host_log(
            level_number(metadata.level()),
            metadata.target(),
            &text.finish(),
        );
    }

    fn enter(&self, _span: &tracing::span::Id) {}

    fn exit(&self, _span: &tracing::span::Id) {}
}

/// An event as one line: the message, then `field=value` pairs.
#[derive(Default)]
struct EventText {
    message: String,
    fields: String,
}

impl EventText {
    fn finish(self) -> String {
        if self.fields.is_empty() {
            self.message
        } else if self.message.is_empty() {
            self.fields
        } else {
            format!("{} {}", self.message, self.fields)
        }
    }
}

impl tracing::field::Visit for EventText {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        use std::fmt::Write;
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            if !self.fields.is_empty() {
                self.fields.push(' ');
            }
            let _ = write!(self.fields, "{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        use std::fmt::Write;
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            if !self.fields.is_empty() {
                self.fields.push(' ');
            }
            let _ = write!(self.fields, "{}={value}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    //! The glue driven in-process through its function table, with a test host, as the
    //! worker drives it through a loaded library.

    use super::*;
    use crate::abi::encoding::decode_source_batch;
    use crate::config::{ConfigDef, ConfigKey, ConfigType, Importance, Validator};
    use crate::record::SourceRecord;
    use crate::value::Value;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    static RELEASED: AtomicUsize = AtomicUsize::new(0);
    static PROBLEMS: Mutex<Vec<String>> = Mutex::new(Vec::new());

    unsafe extern "C" fn out_write(out: *mut OutBuf, data: *const u8, len: usize) {
        unsafe {
            (*out.cast::<Vec<u8>>()).extend_from_slice(BytesRef { ptr: data, len }.as_slice())
        }
    }
    unsafe extern "C" fn log(_: u32, _: BytesRef, _: BytesRef) {}
    unsafe extern "C" fn release(_: *const HostContext) {
        RELEASED.fetch_add(1, Ordering::SeqCst);
    }
    unsafe extern "C" fn reconfigure(_: *const HostContext) {}
    unsafe extern "C" fn raise(_: *const HostContext, _: i32, _: BytesRef) {}
    unsafe extern "C" fn problem(_: *const HostContext, present: bool, text: BytesRef) {
        let text = String::from_utf8_lossy(unsafe { text.as_slice() }).into_owned();
        PROBLEMS
            .lock()
            .unwrap()
            .push(if present { text } else { "none".into() });
    }
    unsafe extern "C" fn errant(
        _: *const HostContext,
        _: BytesRef,
        _: i32,
        _: BytesRef,
        _: *mut OutBuf,
        _: unsafe extern "C" fn(*mut OutBuf, *const u8, usize),
    ) -> i32 {
        STATUS_OK
    }

    static HOST_API: HostApi = HostApi {
        abi_version: ABI_VERSION,
        max_log_level: log_level::INFO,
        out_write,
        log,
        context_release: release,
        request_task_reconfiguration: reconfigure,
        raise_error: raise,
        report_problem: problem,
        report_errant: errant,
    };

    /// Polls by mode (the task config's `mode`): `records`, `retriable`, `panic`, `wait`.
    struct TestConnector(Props);
    struct TestTask(String, i64);

    #[async_trait::async_trait]
    impl SourceConnector for TestConnector {
        async fn start(&mut self, _: ConnectorContext, config: Props) -> Result<()> {
            self.0 = config;
            Ok(())
        }
        async fn task_configs(&mut self, max: usize) -> Result<Vec<Props>> {
            Ok(vec![self.0.clone(); max])
        }
        fn create_task(&self) -> Box<dyn SourceTask> {
            Box::new(TestTask(String::new(), 0))
        }
    }

    #[async_trait::async_trait]
    impl SourceTask for TestTask {
        async fn start(&mut self, ctx: SourceTaskContext) -> Result<()> {
            self.0 = ctx.config["mode"].clone();
            let mut p = serde_json::Map::new();
            p.insert("p".into(), json!(1));
            self.1 = ctx.offset(&p).and_then(|o| o["n"].as_i64()).unwrap_or(0);
            ctx.report_problem(Some("warming up".into()));
            Ok(())
        }
        async fn poll(&mut self) -> Result<Vec<SourceRecord>> {
            match self.0.as_str() {
                "retriable" => Err(Error::retriable("try later")),
                "panic" => panic!("boom"),
                "wait" => std::future::pending().await,
                _ => Ok(vec![SourceRecord::new(
                    serde_json::Map::new(),
                    serde_json::Map::new(),
                    "t",
                    None,
                    Value::Int64(self.1),
                )]),
            }
        }
        async fn stop(&mut self) -> Result<()> {
            Ok(())
        }
    }

    #[derive(Debug)]
    struct Upper(String);
    impl Transform for Upper {
        fn apply(
            &self,
            mut r: TransformRecord,
        ) -> std::result::Result<Option<TransformRecord>, String> {
            match r.value.as_str() {
                Some("drop") => Ok(None),
                Some("panic") => panic!("upper panics"),
                Some(text) => {
                    r.value = Value::String(format!("{}{}", text.to_uppercase(), self.0));
                    Ok(Some(r))
                }
                None => Err("not a string".into()),
            }
        }
    }

    #[derive(Debug)]
    struct IsNull;
    impl Predicate for IsNull {
        fn test(&self, r: &TransformRecord) -> std::result::Result<bool, String> {
            Ok(r.value.is_null())
        }
    }

    #[derive(Debug)]
    struct Text(bool);
    impl Converter for Text {
        fn encode(
            &self,
            _: Option<&crate::Schema>,
            v: &Value,
        ) -> std::result::Result<Option<Vec<u8>>, String> {
            match v {
                Value::Null => Ok(None),
                Value::String(s) => Ok(Some(
                    format!("{}{s}", if self.0 { "k:" } else { "" }).into_bytes(),
                )),
                _ => Err("only text".into()),
            }
        }
        fn decode(
            &self,
            b: Option<&[u8]>,
        ) -> std::result::Result<(Option<crate::SchemaRef>, Value), String> {
            Ok((
                Some(Arc::new(crate::Schema::string())),
                b.map_or(Value::Null, |b| {
                    Value::String(String::from_utf8_lossy(b).into())
                }),
            ))
        }
    }

    fn api() -> &'static PluginApi {
        let api = unsafe {
            entry(&HOST_API, || {
                PluginSet::from(vec![ConnectorPlugin {
                    class: "test-source".into(),
                    aliases: vec![],
                    version: "1".into(),
                    config_def: ConfigDef::new().define(
                        ConfigKey::new("mode", ConfigType::String, Importance::High, "Mode.")
                            .validator(Validator::custom(|v| {
                                (v.to_string() != "bad")
                                    .then_some(())
                                    .ok_or("is bad".into())
                            })),
                    ),
                    kind: ConnectorKind::Source(Arc::new(|| Box::new(TestConnector(Props::new())))),
                }])
                .transform(TransformPlugin::transform(
                    "com.example.Upper",
                    "Upper-cases string values.",
                    ConfigDef::new().define(
                        ConfigKey::new("suffix", ConfigType::String, Importance::High, "Suffix.")
                            .default_value(""),
                    ),
                    |c| {
                        Ok(Box::new(Upper(
                            c.get_str("suffix").unwrap_or_default().into(),
                        )))
                    },
                ))
                .transform(TransformPlugin::predicate(
                    "com.example.IsNull",
                    "Null values.",
                    ConfigDef::new(),
                    |_| Ok(Box::new(IsNull)),
                ))
                .converter(ConverterPlugin::new(
                    "com.example.Text",
                    "UTF-8 text.",
                    ConfigDef::new(),
                    |_, is_key| Ok(Box::new(Text(is_key))),
                ))
            })
        };
        assert!(!api.is_null());
        unsafe { &*api }
    }

    fn call(f: impl FnOnce(*mut OutBuf) -> i32) -> (i32, String) {
        let mut out = Vec::<u8>::new();
        let status = f((&mut out as *mut Vec<u8>).cast());
        (status, String::from_utf8_lossy(&out).into_owned())
    }

    /// A started task of `mode`, resuming from offset `n` of partition `{"p": 1}`.
    fn started_task(api: &PluginApi, mode: &str, n: i64) -> *mut RawTask {
        let mut connector = std::ptr::null_mut();
        assert_eq!(
            call(|o| unsafe { (api.connector_new)(0, &mut connector, o) }).0,
            STATUS_OK
        );
        let input = json!({"name": "c", "config": {"mode": mode}}).to_string();
        let (status, _) = call(|o| unsafe {
            (api.connector_start)(
                connector,
                std::ptr::null(),
                BytesRef::new(input.as_bytes()),
                o,
            )
        });
        assert_eq!(status, STATUS_OK);
        let (status, configs) = call(|o| unsafe { (api.connector_task_configs)(connector, 2, o) });
        assert_eq!(
            (status, configs.as_str()),
            (
                STATUS_OK,
                r#"[{"mode":"MODE"},{"mode":"MODE"}]"#.replace("MODE", mode).as_str()
            )
        );
        let mut task = std::ptr::null_mut();
        assert_eq!(
            call(|o| unsafe { (api.task_new)(connector, &mut task, o) }).0,
            STATUS_OK
        );
        unsafe { (api.connector_free)(connector) };
        let input = json!({"connector": "c", "task_id": 0, "config": {"mode": mode},
            "offsets": [[{"p": 1}, {"n": n}]]})
        .to_string();
        // Released, never dereferenced, by the test host.
        let ctx = std::ptr::dangling::<HostContext>();
        let (status, message) =
            call(|o| unsafe { (api.task_start)(task, ctx, BytesRef::new(input.as_bytes()), o) });
        assert_eq!(status, STATUS_OK, "{message}");
        task
    }

    #[test]
    fn transforms_predicates_and_converters_cross_with_errors_and_panics() {
        let api = api();
        let (_, description) = call(|o| unsafe { (api.describe)(o) });
        let description: Json = serde_json::from_str(&description).unwrap();
        assert_eq!(description["transforms"][0]["class"], "com.example.Upper");
        assert_eq!(
            description["transforms"][0]["doc"],
            "Upper-cases string values."
        );
        assert_eq!(description["transforms"][0]["options"][0]["name"], "suffix");
        assert_eq!(description["predicates"][0]["class"], "com.example.IsNull");
        assert_eq!(description["converters"][0]["class"], "com.example.Text");

        // Options are checked by the declarations, in the plugin too.
        let mut transform: *mut RawTransform = std::ptr::null_mut();
        let props = json!({"suffix": "!"}).to_string();
        let (status, message) = call(|o| unsafe {
            (api.transform_new)(0, BytesRef::new(props.as_bytes()), &mut transform, o)
        });
        assert_eq!(status, STATUS_OK, "{message}");
        let (status, _) = call(|o| unsafe {
            (api.transform_new)(7, BytesRef::new(props.as_bytes()), &mut transform, o)
        });
        assert_eq!(status, STATUS_FATAL, "no such class");

        let apply = |value: Value| {
            let batch = encode_transform_batch(&[TransformRecord {
                topic: "t".into(),
                value,
                ..TransformRecord::default()
            }]);
            let mut out = Vec::<u8>::new();
            let status = unsafe {
                (api.transform_apply)(
                    transform,
                    BytesRef::new(&batch),
                    (&mut out as *mut Vec<u8>).cast(),
                )
            };
            (status, out)
        };
        let (status, out) = apply(Value::from("abc"));
        assert_eq!(status, STATUS_OK);
        assert_eq!(
            decode_transform_batch(&out).unwrap()[0].value,
            Value::from("ABC!")
        );
        let (status, out) = apply(Value::from("drop"));
        assert_eq!(
            (status, decode_transform_batch(&out).unwrap()),
            (STATUS_OK, vec![])
        );
        let (status, out) = apply(Value::Int32(1));
        assert_eq!(
            (status, out.as_slice()),
            (STATUS_FATAL, &b"not a string"[..])
        );
        let (status, out) = apply(Value::from("panic"));
        assert_eq!(
            (status, String::from_utf8(out).unwrap()),
            (
                STATUS_PANIC,
                "panicked in transform: upper panics".to_string()
            )
        );
        unsafe { (api.transform_free)(transform) };

        let mut predicate: *mut RawPredicate = std::ptr::null_mut();
        let (status, _) =
            call(|o| unsafe { (api.predicate_new)(0, BytesRef::new(b"{}"), &mut predicate, o) });
        assert_eq!(status, STATUS_OK);
        for (value, expected) in [(Value::Null, 1u8), (Value::from("x"), 0)] {
            let batch = encode_transform_batch(&[TransformRecord {
                value,
                ..TransformRecord::default()
            }]);
            let mut out = Vec::<u8>::new();
            let status = unsafe {
                (api.predicate_test)(
                    predicate,
                    BytesRef::new(&batch),
                    (&mut out as *mut Vec<u8>).cast(),
                )
            };
            assert_eq!((status, out), (STATUS_OK, vec![expected]));
        }
        unsafe { (api.predicate_free)(predicate) };

        let mut converter: *mut RawConverter = std::ptr::null_mut();
        let (status, _) = call(|o| unsafe {
            (api.converter_new)(0, true, BytesRef::new(b"{}"), &mut converter, o)
        });
        assert_eq!(status, STATUS_OK);
        let data = encode_data(None, &Value::from("id"));
        let mut out = Vec::<u8>::new();
        let status = unsafe {
            (api.converter_from_connect)(
                converter,
                BytesRef::new(&data),
                (&mut out as *mut Vec<u8>).cast(),
            )
        };
        assert_eq!(status, STATUS_OK);
        assert_eq!(decode_bytes(&out).unwrap(), Some(b"k:id".to_vec()));
        let bytes = encode_bytes(Some(b"back"));
        let mut out = Vec::<u8>::new();
        let status = unsafe {
            (api.converter_to_connect)(
                converter,
                BytesRef::new(&bytes),
                (&mut out as *mut Vec<u8>).cast(),
            )
        };
        assert_eq!(status, STATUS_OK);
        assert_eq!(decode_data(&out).unwrap().1, Value::from("back"));
        let data = encode_data(None, &Value::Int8(1));
        let (status, message) =
            call(|o| unsafe { (api.converter_from_connect)(converter, BytesRef::new(&data), o) });
        assert_eq!((status, message.as_str()), (STATUS_FATAL, "only text"));
        unsafe { (api.converter_free)(converter) };
    }

    #[test]
    fn the_glue_maps_results_errors_panics_and_cancellation() {
        let api = api();
        let (status, description) = call(|o| unsafe { (api.describe)(o) });
        assert_eq!(status, STATUS_OK);
        let description: Json = serde_json::from_str(&description).unwrap();
        assert_eq!(description["connectors"][0]["class"], "test-source");
        assert_eq!(
            description["connectors"][0]["options"][0]["validator"],
            json!({"custom": true})
        );
        assert_eq!(description["panic"], "unwind");

        // Custom validators run in the plugin.
        let props = json!({"mode": "bad"}).to_string();
        let (_, errors) =
            call(|o| unsafe { (api.connector_validate)(0, BytesRef::new(props.as_bytes()), o) });
        assert_eq!(errors, r#"[{"message":"is bad","option":"mode"}]"#);

        // Records, with the offsets snapshot handed over at start.
        let released = RELEASED.load(Ordering::SeqCst);
        let task = started_task(api, "records", 41);
        let (status, batch) = {
            let mut out = Vec::<u8>::new();
            let s = unsafe { (api.source_poll)(task, (&mut out as *mut Vec<u8>).cast()) };
            (s, out)
        };
        assert_eq!(status, STATUS_OK);
        assert_eq!(
            decode_source_batch(&batch).unwrap()[0].value,
            Value::Int64(41)
        );
        assert!(PROBLEMS.lock().unwrap().contains(&"warming up".to_string()));
        assert_eq!(call(|o| unsafe { (api.task_stop)(task, o) }).0, STATUS_OK);
        unsafe { (api.task_free)(task) };
        assert_eq!(
            RELEASED.load(Ordering::SeqCst),
            released + 1,
            "the task kept no context past start, so it was released"
        );

        // Errors keep their kind; panics are caught with their message.
        let task = started_task(api, "retriable", 0);
        assert_eq!(
            call(|o| unsafe { (api.source_poll)(task, o) }),
            (STATUS_RETRIABLE, "try later".to_string())
        );
        unsafe { (api.task_free)(task) };
        let task = started_task(api, "panic", 0);
        assert_eq!(
            call(|o| unsafe { (api.source_poll)(task, o) }),
            (STATUS_PANIC, "panicked in poll: boom".to_string())
        );
        // The task stays usable for stop and free after its panic.
        assert_eq!(call(|o| unsafe { (api.task_stop)(task, o) }).0, STATUS_OK);
        unsafe { (api.task_free)(task) };
        assert_eq!(
            status_to_error(STATUS_PANIC, b"panicked in poll: boom").to_string(),
            "the plugin panicked in poll: boom"
        );

        // A poll waiting forever returns once cancelled.
        let task = started_task(api, "wait", 0) as usize;
        let poll = std::thread::spawn(move || {
            call(|o| unsafe { (api.source_poll)(task as *mut RawTask, o) }).0
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while !poll.is_finished() {
            assert!(Instant::now() < deadline, "the poll was not cancelled");
            unsafe { (api.task_cancel)(task as *mut RawTask) };
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(poll.join().unwrap(), STATUS_CANCELLED);
        unsafe { (api.task_free)(task as *mut RawTask) };
    }
}
