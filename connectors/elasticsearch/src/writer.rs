//! The bulk writer: buffers actions, sends them as `_bulk` requests in the background, reads
//! every item's result, retries what can be retried and reports what cannot.
//!
//! # How records move
//! `put` hands converted actions to [`BulkWriter::enqueue`], which waits while the task
//! already holds `max.buffered.records` (so memory stays bounded), then queues them. A
//! background loop takes batches off the queue when one is full (`batch.size` records or
//! `bulk.size.bytes`), when the oldest action has waited `linger.ms`, or at once while a
//! flush is waiting, and keeps up to `max.in.flight.requests` batches in flight.
//!
//! # Order
//! Actions for the same document (same index and id) are never in two batches in flight at
//! once: a batch is formed from the queue in order, passing over actions whose document is
//! busy and every later action for that document. Within a batch, Elasticsearch applies
//! actions for one document in order. So the last record for a key is the one that stays,
//! whatever is retried.
//!
//! # Failures
//! - The whole request fails with a connection error, a timeout, 429 or 5xx: the batch is
//!   sent again after an exponential backoff from `retry.backoff.ms` (with jitter, capped at
//!   10 s). After `max.retries` the failure is reported as the task's problem (it shows in the
//!   task status) and retries go on until the cluster answers; the problem is cleared then.
//! - Some items fail with 429 / 5xx, or their index vanished: those items, and any later item
//!   of the same batch for the same document, are sent again the same way.
//! - An upsert's version conflict (another writer raced it) is retried `max.retries` times,
//!   then treated like a malformed document. Version conflicts of offset-versioned inserts and
//!   deletes mean a newer record is already in: they count as written.
//! - Malformed documents (400: mapping conflict, unparsable value, bad id) follow
//!   `behavior.on.malformed.documents` and go through [`SinkTaskContext::report_errant`]; the
//!   other items of the batch are written regardless.
//! - 401 / 403 fail the task: every further request would fail the same way.
//!
//! # Flush
//! [`BulkWriter::flush`] returns once nothing is queued or in flight: every action is
//! acknowledged by Elasticsearch or reported as errant. After `flush.timeout.ms` it returns a
//! retriable error and the actions stay queued, so nothing is lost and offsets are not
//! committed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use parking_lot::Mutex;
use sluice_sdk::{SinkRecord, SinkTaskContext};
use tokio::sync::{watch, Notify};
use tokio::task::{Id, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::bulk::{self, classify, ItemOutcome};
use crate::client::EsClient;
use crate::config::{
    ElasticsearchSinkConfig, MalformedBehavior, BEHAVIOR_ON_MALFORMED_DOCUMENTS, FLUSH_TIMEOUT_MS,
};
use crate::convert::{BulkAction, Operation};
use crate::error::Error;
use crate::mapping::mapping_for;

/// The longest wait between retries (unless `retry.backoff.ms` is longer).
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

/// One record's action waiting to be written.
#[derive(Debug)]
pub struct PendingAction {
    record: SinkRecord,
    action: BulkAction,
    key: u64,
    enqueued: Instant,
}

impl PendingAction {
    /// An action for `record`.
    pub fn new(record: SinkRecord, action: BulkAction) -> Self {
        Self {
            key: action.ordering_key(),
            record,
            action,
            enqueued: Instant::now(),
        }
    }
}

#[derive(Debug, Default)]
struct Queue {
    pending: VecDeque<PendingAction>,
    pending_bytes: usize,
    /// Queued plus in flight.
    outstanding: usize,
    flush_requested: bool,
    fatal: Option<String>,
}

#[derive(Debug)]
struct Shared {
    config: Arc<ElasticsearchSinkConfig>,
    client: Arc<EsClient>,
    ctx: SinkTaskContext,
    queue: Mutex<Queue>,
    wake: Notify,
    progress: watch::Sender<u64>,
    ready_indices: Mutex<HashSet<String>>,
    cluster_checked: AtomicBool,
    outage: Mutex<Option<String>>,
}

/// The background writer of one task.
#[derive(Debug)]
pub struct BulkWriter {
    shared: Arc<Shared>,
    cancel: CancellationToken,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl BulkWriter {
    /// Starts the background loop.
    pub fn start(
        config: Arc<ElasticsearchSinkConfig>,
        client: Arc<EsClient>,
        ctx: SinkTaskContext,
    ) -> Self {
        let shared = Arc::new(Shared {
            config,
            client,
            ctx,
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            progress: watch::Sender::new(0),
            ready_indices: Mutex::new(HashSet::new()),
            cluster_checked: AtomicBool::new(false),
            outage: Mutex::new(None),
        });
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(run(shared.clone(), cancel.clone()));
        Self {
            shared,
            cancel,
            handle: Some(handle),
        }
    }

    /// Records that the cluster was already identified (at task start).
    pub fn mark_cluster_checked(&self) {
        self.shared.cluster_checked.store(true, Ordering::Release);
    }

    /// Reports that the cluster cannot be reached (at task start).
    pub fn report_outage(&self, problem: String) {
        self.shared.report_outage(problem);
    }

    /// The error that stopped the writer, if one did.
    pub fn failure(&self) -> Option<sluice_sdk::Error> {
        self.shared
            .queue
            .lock()
            .fatal
            .clone()
            .map(sluice_sdk::Error::Fatal)
    }

    /// Waits until the writer holds fewer than `max.buffered.records` actions.
    ///
    /// # Errors
    /// The writer's fatal error, or a retriable error after `flush.timeout.ms`.
    pub async fn wait_for_room(&self) -> sluice_sdk::Result<()> {
        let limit = self.shared.config.max_buffered;
        self.wait_until(|q| q.outstanding < limit, "room in the buffer")
            .await
    }

    /// Queues actions (call [`Self::wait_for_room`] first to keep memory bounded).
    pub fn enqueue(&self, actions: Vec<PendingAction>) {
        if actions.is_empty() {
            return;
        }
        {
            let mut q = self.shared.queue.lock();
            q.outstanding += actions.len();
            q.pending_bytes += actions.iter().map(|a| a.action.lines.len()).sum::<usize>();
            q.pending.extend(actions);
        }
        self.shared.wake.notify_one();
    }

    /// Sends everything queued at once and waits until every action is written or reported.
    ///
    /// # Errors
    /// The writer's fatal error, or a retriable error after `flush.timeout.ms` (the actions
    /// stay queued).
    pub async fn flush(&self) -> sluice_sdk::Result<()> {
        self.shared.queue.lock().flush_requested = true;
        self.shared.wake.notify_one();
        let result = self.wait_until(|q| q.outstanding == 0, "flush").await;
        self.shared.queue.lock().flush_requested = false;
        result
    }

    async fn wait_until(
        &self,
        ready: impl Fn(&Queue) -> bool,
        what: &str,
    ) -> sluice_sdk::Result<()> {
        let timeout = self.shared.config.flush_timeout;
        let deadline = Instant::now() + timeout;
        let mut progress = self.shared.progress.subscribe();
        loop {
            progress.borrow_and_update();
            {
                let q = self.shared.queue.lock();
                if let Some(fatal) = &q.fatal {
                    return Err(sluice_sdk::Error::Fatal(fatal.clone()));
                }
                if ready(&q) {
                    return Ok(());
                }
            }
            if tokio::time::timeout_at(deadline, progress.changed())
                .await
                .is_err()
            {
                let outstanding = self.shared.queue.lock().outstanding;
                let cause = self
                    .shared
                    .outage
                    .lock()
                    .clone()
                    .unwrap_or_else(|| "Elasticsearch is slow to acknowledge them".to_string());
                return Err(sluice_sdk::Error::retriable(format!(
                    "waiting for {what}: {FLUSH_TIMEOUT_MS} ({} ms) expired with {outstanding} \
                     records not yet written to Elasticsearch ({cause}); they stay buffered and \
                     are retried",
                    timeout.as_millis()
                )));
            }
        }
    }

    /// Stops the background loop; queued and in-flight actions are dropped (their offsets
    /// were not committed, so they are delivered again).
    pub async fn stop(&mut self) {
        self.cancel.cancel();
        if let Some(handle) = self.handle.take() {
            let _ = handle.await;
        }
    }
}

impl Drop for BulkWriter {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Shared {
    fn report_outage(&self, problem: String) {
        let mut outage = self.outage.lock();
        if outage.as_deref() != Some(problem.as_str()) {
            warn!(connector = %self.ctx.connector, task = self.ctx.task_id, %problem, "Elasticsearch outage; retrying");
            self.ctx.report_problem(Some(problem.clone()));
            *outage = Some(problem);
        }
    }

    fn clear_outage(&self) {
        let mut outage = self.outage.lock();
        if outage.take().is_some() {
            info!(connector = %self.ctx.connector, task = self.ctx.task_id, "Elasticsearch answers again");
            self.ctx.report_problem(None);
        }
    }

    fn fail(&self, message: String) {
        error!(connector = %self.ctx.connector, task = self.ctx.task_id, %message, "bulk writer stopped");
        let mut q = self.queue.lock();
        if q.fatal.is_none() {
            q.fatal = Some(message);
        }
    }

    fn signal_progress(&self) {
        self.progress.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// What the loop should do next.
enum Next {
    Send(Vec<PendingAction>),
    WaitUntil(Instant),
    Idle,
}

fn next_batch(q: &mut Queue, busy: &HashMap<u64, usize>, config: &ElasticsearchSinkConfig) -> Next {
    let Some(front) = q.pending.front() else {
        return Next::Idle;
    };
    if q.fatal.is_some() {
        return Next::Idle;
    }
    let full = q.pending.len() >= config.batch_size
        || config
            .bulk_size_bytes
            .is_some_and(|limit| q.pending_bytes >= limit);
    let due_at = front.enqueued + config.linger;
    if !(full || q.flush_requested || Instant::now() >= due_at) {
        return Next::WaitUntil(due_at);
    }
    let byte_limit = config.bulk_size_bytes.unwrap_or(usize::MAX);
    let mut batch: Vec<PendingAction> = Vec::new();
    let mut bytes = 0usize;
    let fits = |batch: &Vec<PendingAction>, bytes: usize, next: &PendingAction| {
        batch.is_empty()
            || (batch.len() < config.batch_size && bytes + next.action.lines.len() <= byte_limit)
    };
    // Fast path: take from the front while documents are free.
    while let Some(front) = q.pending.front() {
        if busy.contains_key(&front.key) || !fits(&batch, bytes, front) {
            break;
        }
        let action = q.pending.pop_front().expect("front exists");
        bytes += action.action.lines.len();
        batch.push(action);
    }
    let blocked_front = q
        .pending
        .front()
        .is_some_and(|front| busy.contains_key(&front.key));
    if blocked_front && batch.len() < config.batch_size {
        // Pass over busy documents (and every later action for them), keeping order.
        let mut skipped: HashSet<u64> = HashSet::new();
        let mut rest = VecDeque::with_capacity(q.pending.len());
        for action in q.pending.drain(..) {
            if busy.contains_key(&action.key)
                || skipped.contains(&action.key)
                || !fits(&batch, bytes, &action)
            {
                skipped.insert(action.key);
                rest.push_back(action);
            } else {
                bytes += action.action.lines.len();
                batch.push(action);
            }
        }
        q.pending = rest;
    }
    q.pending_bytes = q.pending_bytes.saturating_sub(bytes);
    if batch.is_empty() {
        Next::Idle
    } else {
        Next::Send(batch)
    }
}

async fn run(shared: Arc<Shared>, cancel: CancellationToken) {
    let mut in_flight: JoinSet<sluice_sdk::Result<()>> = JoinSet::new();
    let mut batches: HashMap<Id, (Vec<u64>, usize)> = HashMap::new();
    let mut busy: HashMap<u64, usize> = HashMap::new();
    loop {
        let mut wait_until = None;
        while in_flight.len() < shared.config.max_in_flight {
            let next = next_batch(&mut shared.queue.lock(), &busy, &shared.config);
            match next {
                Next::Send(batch) => {
                    let keys: Vec<u64> = batch.iter().map(|a| a.key).collect();
                    for key in &keys {
                        *busy.entry(*key).or_default() += 1;
                    }
                    let count = batch.len();
                    let handle = in_flight.spawn(write_batch(shared.clone(), batch));
                    batches.insert(handle.id(), (keys, count));
                }
                Next::WaitUntil(at) => {
                    wait_until = Some(at);
                    break;
                }
                Next::Idle => break,
            }
        }
        tokio::select! {
            () = cancel.cancelled() => {
                in_flight.abort_all();
                return;
            }
            () = shared.wake.notified() => {}
            Some(done) = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                let (id, result) = match done {
                    Ok((id, result)) => (id, result),
                    Err(e) => {
                        let message = if e.is_panic() {
                            format!("the bulk writer panicked: {e}")
                        } else {
                            format!("the bulk writer was cancelled: {e}")
                        };
                        (e.id(), Err(sluice_sdk::Error::Fatal(message)))
                    }
                };
                if let Some((keys, count)) = batches.remove(&id) {
                    for key in keys {
                        if let Some(n) = busy.get_mut(&key) {
                            *n -= 1;
                            if *n == 0 {
                                busy.remove(&key);
                            }
                        }
                    }
                    shared.queue.lock().outstanding -= count;
                }
                if let Err(e) = result {
                    shared.fail(e.to_string());
                }
                shared.signal_progress();
            }
            () = sleep_until(wait_until), if wait_until.is_some() => {}
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

fn retry_delays(config: &ElasticsearchSinkConfig) -> impl Iterator<Item = Duration> {
    let first = config.retry_backoff.max(Duration::from_millis(1));
    ExponentialBuilder::default()
        .with_min_delay(first)
        .with_max_delay(MAX_RETRY_DELAY.max(first))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

/// Counts attempts of one batch and waits before the next.
struct Retrier<I> {
    attempt: usize,
    delays: I,
}

impl<I: Iterator<Item = Duration>> Retrier<I> {
    async fn wait(&mut self, shared: &Shared, cause: &str, records: usize) {
        self.attempt += 1;
        if self.attempt > shared.config.max_retries {
            shared.report_outage(format!(
                "{cause}; {records} records waiting, retrying (attempt {})",
                self.attempt
            ));
        } else {
            debug!(attempt = self.attempt, records, %cause, "retrying bulk request");
        }
        let delay = self.delays.next().unwrap_or(MAX_RETRY_DELAY);
        tokio::time::sleep(delay).await;
    }
}

/// Makes sure the cluster was identified and the batch's indices exist with their mappings.
async fn prepare(shared: &Shared, batch: &[PendingAction]) -> Result<(), Error> {
    if !shared.cluster_checked.load(Ordering::Acquire) {
        if let Some(info) = shared.client.cluster_info().await? {
            info!(connector = %shared.ctx.connector, task = shared.ctx.task_id, cluster = %info, "connected");
        }
        shared.cluster_checked.store(true, Ordering::Release);
    }
    let mut seen = HashSet::new();
    for pending in batch {
        let action = &pending.action;
        if action.op == Operation::Delete || !seen.insert(action.index.as_str()) {
            continue;
        }
        if shared.ready_indices.lock().contains(&action.index) {
            continue;
        }
        // The first document of the batch with a schema for this index gives the mapping.
        let mapping = batch
            .iter()
            .filter(|p| p.action.index == action.index)
            .find_map(|p| p.action.schema.as_deref())
            .and_then(|schema| mapping_for(schema, shared.config.compact_map_entries));
        shared
            .client
            .ensure_index(&action.index, mapping.as_ref())
            .await
            .map_err(|e| match e {
                Error::Rejected { .. } | Error::UnexpectedAnswer { .. } => {
                    Error::Setup(format!("cannot prepare index '{}': {e}", action.index))
                }
                other => other,
            })?;
        shared.ready_indices.lock().insert(action.index.clone());
    }
    Ok(())
}

/// Writes one batch until every action is written or reported.
async fn write_batch(shared: Arc<Shared>, batch: Vec<PendingAction>) -> sluice_sdk::Result<()> {
    let mut queue = VecDeque::from([batch]);
    while let Some(batch) = queue.pop_front() {
        // A batch too large for the cluster comes back in halves, written in order.
        if let Some((first, second)) = write_one_batch(&shared, batch).await? {
            queue.push_front(second);
            queue.push_front(first);
        }
    }
    Ok(())
}

type Halves = (Vec<PendingAction>, Vec<PendingAction>);

async fn write_one_batch(
    shared: &Shared,
    mut batch: Vec<PendingAction>,
) -> sluice_sdk::Result<Option<Halves>> {
    let mut retrier = Retrier {
        attempt: 0,
        delays: retry_delays(&shared.config),
    };
    loop {
        if let Err(e) = prepare(shared, &batch).await {
            if e.is_retriable() {
                retrier.wait(shared, &e.to_string(), batch.len()).await;
                continue;
            }
            return Err(e.into());
        }
        let started = std::time::Instant::now();
        let body = bulk::request_body(batch.iter().map(|p| &p.action));
        let response = match shared.client.bulk(body).await {
            Ok(response) => response,
            Err(e) if e.is_retriable() => {
                retrier.wait(shared, &e.to_string(), batch.len()).await;
                continue;
            }
            Err(Error::Rejected { status: 413, .. }) if batch.len() > 1 => {
                let second = batch.split_off(batch.len() / 2);
                debug!(
                    records = batch.len() + second.len(),
                    "request too large; splitting"
                );
                return Ok(Some((batch, second)));
            }
            Err(Error::Rejected {
                status: 413,
                reason,
                ..
            }) => {
                let pending = batch.pop().expect("one action");
                report_malformed(
                    shared,
                    pending,
                    &format!("the document is too large: {reason}"),
                )
                .await?;
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        shared.clear_outage();
        debug!(
            records = batch.len(),
            errors = response.errors,
            took_ms = started.elapsed().as_millis() as u64,
            "bulk request done"
        );
        if !response.errors {
            return Ok(None);
        }
        if response.items.len() != batch.len() {
            return Err(sluice_sdk::Error::fatal(format!(
                "Elasticsearch answered a _bulk request of {} actions with {} results",
                batch.len(),
                response.items.len()
            )));
        }
        let may_retry_conflicts = retrier.attempt < shared.config.max_retries;
        let mut outcomes = Vec::with_capacity(batch.len());
        for (pending, item) in batch.iter().zip(&response.items) {
            let outcome = item
                .values()
                .next()
                .map(|item| classify(&pending.action, item))
                .unwrap_or_else(|| ItemOutcome::Retry("empty result item".into()));
            if let ItemOutcome::Denied(reason) = &outcome {
                return Err(sluice_sdk::Error::fatal(format!(
                    "Elasticsearch refused to write to index '{}': {reason}; check \
                     connection.username/connection.password (or connection.api.key) and the \
                     user's privileges ('create_index', 'write' and 'view_index_metadata' on the \
                     index), and that the index is not blocked for writes",
                    pending.action.index
                )));
            }
            outcomes.push(outcome);
        }
        // Every item from the first one to retry for a document onwards goes again, so a
        // retried write never lands after a later write of the same document.
        let mut retry_from: HashMap<u64, usize> = HashMap::new();
        let mut first_cause = None;
        for (i, (pending, outcome)) in batch.iter().zip(&outcomes).enumerate() {
            let retry = match outcome {
                ItemOutcome::Retry(cause) | ItemOutcome::IndexMissing(cause) => {
                    if matches!(outcome, ItemOutcome::IndexMissing(_)) {
                        shared.ready_indices.lock().remove(&pending.action.index);
                    }
                    first_cause.get_or_insert_with(|| cause.clone());
                    true
                }
                ItemOutcome::Conflict(cause) if may_retry_conflicts => {
                    first_cause.get_or_insert_with(|| cause.clone());
                    true
                }
                _ => false,
            };
            if retry {
                retry_from.entry(pending.key).or_insert(i);
            }
        }
        let mut again = Vec::new();
        for (i, (pending, outcome)) in batch.into_iter().zip(outcomes).enumerate() {
            if retry_from.get(&pending.key).is_some_and(|&from| i >= from) {
                again.push(pending);
                continue;
            }
            match outcome {
                ItemOutcome::Malformed(reason) => {
                    report_malformed(shared, pending, &reason).await?
                }
                ItemOutcome::Conflict(reason) => {
                    report_malformed(
                        shared,
                        pending,
                        &format!("{reason} (still conflicting after retries)"),
                    )
                    .await?;
                }
                _ => {}
            }
        }
        if again.is_empty() {
            return Ok(None);
        }
        let cause = first_cause.unwrap_or_else(|| "items to retry".into());
        retrier
            .wait(
                shared,
                &format!(
                    "Elasticsearch could not write {} documents yet: {cause}",
                    again.len()
                ),
                again.len(),
            )
            .await;
        batch = again;
    }
}

/// Handles a document Elasticsearch rejected, per `behavior.on.malformed.documents`.
async fn report_malformed(
    shared: &Shared,
    pending: PendingAction,
    reason: &str,
) -> sluice_sdk::Result<()> {
    let record = &pending.record;
    let message = format!(
        "Elasticsearch rejected the document for record {}-{}@{} (index '{}', id '{}'): {reason}",
        record.topic,
        record.kafka_partition,
        record.kafka_offset,
        pending.action.index,
        pending.action.id
    );
    let error = sluice_sdk::Error::fatal(&message);
    let (connector, task) = (&shared.ctx.connector, shared.ctx.task_id);
    match shared.config.malformed_documents {
        MalformedBehavior::Ignore | MalformedBehavior::Warn => {
            if shared.config.malformed_documents == MalformedBehavior::Warn {
                warn!(%connector, task, %message, "skipping malformed document ({BEHAVIOR_ON_MALFORMED_DOCUMENTS}=warn)");
            } else {
                debug!(%connector, task, %message, "skipping malformed document ({BEHAVIOR_ON_MALFORMED_DOCUMENTS}=ignore)");
            }
            // Dead-letter it when errors are tolerated; skip it either way.
            if let Err(e) = shared.ctx.report_errant(record, &error).await {
                debug!(%connector, task, error = %e, "malformed document not dead-lettered");
            }
            Ok(())
        }
        MalformedBehavior::Fail => shared.ctx.report_errant(record, &error).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::Operation;
    use sluice_sdk::{TimestampType, Value};
    use std::collections::BTreeMap;

    fn config(batch_size: &str, linger: &str) -> ElasticsearchSinkConfig {
        let props = BTreeMap::from([
            ("connection.url".to_string(), "http://es:9200".to_string()),
            ("batch.size".to_string(), batch_size.to_string()),
            ("linger.ms".to_string(), linger.to_string()),
        ]);
        ElasticsearchSinkConfig::parse(&props).unwrap()
    }

    fn pending(id: &str, offset: i64) -> PendingAction {
        let record = SinkRecord {
            topic: "t".into(),
            kafka_partition: 0,
            kafka_offset: offset,
            key_schema: None,
            key: Value::String(id.into()),
            value_schema: None,
            value: Value::Null,
            timestamp: None,
            timestamp_type: TimestampType::NoTimestamp,
            headers: Vec::new(),
        };
        let action = BulkAction {
            index: "t".into(),
            id: id.into(),
            op: Operation::Index,
            external_version: false,
            schema: None,
            lines: b"{\"index\":{}}\n{}\n".to_vec(),
        };
        PendingAction::new(record, action)
    }

    fn queue(ids: &[&str]) -> Queue {
        let mut q = Queue::default();
        for (i, id) in ids.iter().enumerate() {
            let p = pending(id, i as i64);
            q.pending_bytes += p.action.lines.len();
            q.pending.push_back(p);
        }
        q.outstanding = ids.len();
        q
    }

    fn ids(batch: &[PendingAction]) -> Vec<&str> {
        batch.iter().map(|p| p.action.id.as_str()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn partial_batches_wait_for_linger_unless_flushing() {
        let c = config("3", "50");
        let mut q = queue(&["a", "b"]);
        assert!(matches!(
            next_batch(&mut q, &HashMap::new(), &c),
            Next::WaitUntil(_)
        ));
        q.flush_requested = true;
        let Next::Send(batch) = next_batch(&mut q, &HashMap::new(), &c) else {
            panic!("flush sends at once")
        };
        assert_eq!(ids(&batch), ["a", "b"]);
        let mut q = queue(&["a", "b"]);
        tokio::time::advance(Duration::from_millis(51)).await;
        assert!(matches!(
            next_batch(&mut q, &HashMap::new(), &c),
            Next::Send(_)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn full_batches_go_at_once_and_are_capped() {
        let c = config("2", "60000");
        let mut q = queue(&["a", "b", "c"]);
        let Next::Send(batch) = next_batch(&mut q, &HashMap::new(), &c) else {
            panic!("a full batch goes")
        };
        assert_eq!(ids(&batch), ["a", "b"]);
        assert_eq!(q.pending.len(), 1);
        assert!(matches!(
            next_batch(&mut q, &HashMap::new(), &c),
            Next::WaitUntil(_)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn busy_documents_and_their_later_actions_wait() {
        let c = config("10", "0");
        let mut q = queue(&["a", "b", "a", "c", "b"]);
        let busy_a = pending("a", 0).key;
        let busy = HashMap::from([(busy_a, 1)]);
        let Next::Send(batch) = next_batch(&mut q, &busy, &c) else {
            panic!("free documents go")
        };
        assert_eq!(ids(&batch), ["b", "c", "b"]);
        assert_eq!(ids(q.pending.make_contiguous()), ["a", "a"]);
        assert!(matches!(next_batch(&mut q, &busy, &c), Next::Idle));
        assert!(matches!(
            next_batch(&mut q, &HashMap::new(), &c),
            Next::Send(_)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_document_after_a_full_batch_keeps_its_place() {
        let c = config("2", "0");
        let mut q = queue(&["x", "a", "b", "a"]);
        let busy = HashMap::from([(pending("x", 0).key, 1)]);
        let Next::Send(batch) = next_batch(&mut q, &busy, &c) else {
            panic!("free documents go")
        };
        assert_eq!(ids(&batch), ["a", "b"]);
        assert_eq!(ids(q.pending.make_contiguous()), ["x", "a"]);
    }

    #[test]
    fn retry_delays_grow_and_are_capped() {
        let mut c = config("1", "0");
        c.retry_backoff = Duration::from_millis(100);
        let delays: Vec<Duration> = retry_delays(&c).take(12).collect();
        assert!(delays[0] >= Duration::from_millis(100) && delays[0] <= Duration::from_millis(200));
        assert!(
            delays.iter().all(|d| *d <= Duration::from_secs(20)),
            "{delays:?}"
        );
        assert!(delays[11] >= Duration::from_secs(5), "{delays:?}");
    }
}
