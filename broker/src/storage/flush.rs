//! Group commit: produce requests that need durability hand their partitions to one flusher
//! thread and wait; the flusher fsyncs every partition dirtied since its last round, then
//! wakes all requests whose data that round covered. While one round runs, new requests
//! pile up for the next, so N concurrent requests cost about one fsync, not N.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;
use tracing::{error, info};

use super::partition::Partition;

#[derive(Debug, Default)]
struct Pending {
    partitions: Vec<Arc<Partition>>,
    /// Number of rounds started so far.
    started: u64,
    shutdown: bool,
}

/// The group committer shared by all connections.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    pending: Mutex<Pending>,
    wake: Condvar,
    /// Number of rounds finished.
    completed: watch::Sender<u64>,
    /// The last round whose fsync failed.
    failed_round: AtomicU64,
}

/// A flush failed; the data may not be durable.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlushFailed;

impl GroupCommit {
    /// Starts the flusher thread.
    pub(crate) fn start() -> Arc<Self> {
        let (completed, _) = watch::channel(0);
        let commit = Arc::new(Self {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            completed,
            failed_round: AtomicU64::new(0),
        });
        let worker = Arc::clone(&commit);
        thread::Builder::new()
            .name("sluice-fsync".to_owned())
            .spawn(move || worker.run())
            .expect("spawn the fsync thread");
        commit
    }

    fn run(&self) {
        loop {
            let (round, partitions) = {
                let mut pending = self.pending.lock();
                while pending.partitions.is_empty() && !pending.shutdown {
                    self.wake.wait(&mut pending);
                }
                if pending.partitions.is_empty() && pending.shutdown {
                    info!("fsync thread stopped");
                    return;
                }
                pending.started += 1;
                (pending.started, std::mem::take(&mut pending.partitions))
            };
            let mut seen: Vec<*const Partition> = Vec::with_capacity(partitions.len());
            for partition in &partitions {
                let ptr = Arc::as_ptr(partition);
                if seen.contains(&ptr) {
                    continue;
                }
                seen.push(ptr);
                if let Err(e) = partition.sync() {
                    error!(error = %e, topic = %partition.topic, partition = partition.index, "fsync failed; acknowledging nothing from this round");
                    self.failed_round.store(round, Ordering::SeqCst);
                }
            }
            self.completed.send_replace(round);
        }
    }

    /// Waits until data already written to `partitions` is on disk.
    pub(crate) async fn wait_durable(
        &self,
        partitions: Vec<Arc<Partition>>,
    ) -> Result<(), FlushFailed> {
        if partitions.is_empty() {
            return Ok(());
        }
        let mut completed = self.completed.subscribe();
        let target = {
            let mut pending = self.pending.lock();
            pending.partitions.extend(partitions);
            pending.started + 1
        };
        self.wake.notify_one();
        if completed.wait_for(|round| *round >= target).await.is_err() {
            return Err(FlushFailed);
        }
        if self.failed_round.load(Ordering::SeqCst) >= target {
            return Err(FlushFailed);
        }
        Ok(())
    }

    /// fsyncs the given partitions now, from the calling thread (interval flush, shutdown).
    pub(crate) fn sync_now(partitions: &[Arc<Partition>]) {
        for partition in partitions {
            if let Err(e) = partition.sync() {
                error!(error = %e, topic = %partition.topic, partition = partition.index, "fsync failed");
            }
        }
    }

    /// Lets the flusher finish its queue and stop.
    pub(crate) fn stop(&self) {
        self.pending.lock().shutdown = true;
        self.wake.notify_one();
    }
}
