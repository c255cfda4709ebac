//! `file-sink`: one line per record, as Kafka's `FileStreamSinkConnector`.
//!
//! String values are written as they are, bytes as UTF-8 (lossy), other values as JSON, and a
//! null value as the text `null` (as Kafka's sink does). Each batch is written as it arrives,
//! in one append; on `flush` the file is synced to disk before the runtime commits offsets.
//!
//! As Kafka's sink, the connector makes `tasks.max` tasks, each with the same file. A task
//! appends a whole batch with one `write` on a file opened for appending, so tasks that share
//! one file (on one host) never interleave parts of lines; lines of different partitions are
//! in no particular order relative to each other.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

use sluice_sdk::json::{value_to_json, DecimalFormat};
use sluice_sdk::{
    async_trait, ConfigDef, ConfigKey, ConfigType, ConnectorContext, Error, Importance, Props,
    Result, SinkConnector, SinkRecord, SinkTask, SinkTaskContext, Validator, Value,
};
use tracing::info;

/// `file`.
pub const FILE: &str = "file";

/// The sink's options (`topics` and `topics.regex` belong to every sink).
pub fn config_def() -> ConfigDef {
    ConfigDef::new().define(
        ConfigKey::new(
            FILE,
            ConfigType::String,
            Importance::High,
            "Path of the file to append lines to.",
        )
        .validator(Validator::NonEmpty),
    )
}

/// The `file-sink` connector.
#[derive(Debug, Default)]
pub struct FileSinkConnector {
    props: Props,
}

#[async_trait]
impl SinkConnector for FileSinkConnector {
    async fn start(&mut self, _ctx: ConnectorContext, config: Props) -> Result<()> {
        config_def().parse(&config)?;
        self.props = config;
        Ok(())
    }

    async fn task_configs(&mut self, max_tasks: usize) -> Result<Vec<Props>> {
        // Each task appends whole batches (see the module's notes), so several can share the
        // file; the partitions are spread over them.
        Ok(vec![self.props.clone(); max_tasks.max(1)])
    }

    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(FileSinkTask::default())
    }
}

/// Appends records to the file.
#[derive(Debug, Default)]
pub struct FileSinkTask {
    path: PathBuf,
    file: Option<File>,
    /// A batch's lines, reused from batch to batch.
    buffer: Vec<u8>,
}

/// The line written for a record's value.
pub fn line_of(record: &SinkRecord) -> Cow<'_, [u8]> {
    match &record.value {
        Value::String(s) => Cow::Borrowed(s.as_bytes()),
        Value::Bytes(b) => Cow::Borrowed(b),
        Value::Null => Cow::Borrowed(b"null"),
        other => Cow::Owned(
            value_to_json(
                record.value_schema.as_deref(),
                other,
                DecimalFormat::Numeric,
            )
            .or_else(|_| value_to_json(None, other, DecimalFormat::Numeric))
            .map(|j| j.to_string().into_bytes())
            .unwrap_or_else(|e| format!("<unprintable: {e}>").into_bytes()),
        ),
    }
}

impl FileSinkTask {
    fn file(&mut self) -> Result<&mut File> {
        if self.file.is_none() {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(|e| {
                    Error::retriable(format!(
                        "cannot open {} for appending: {e}",
                        self.path.display()
                    ))
                })?;
            self.file = Some(file);
        }
        Ok(self.file.as_mut().expect("just opened"))
    }
}

#[async_trait]
impl SinkTask for FileSinkTask {
    async fn start(&mut self, ctx: SinkTaskContext) -> Result<()> {
        let config = config_def().parse(&ctx.config)?;
        self.path = PathBuf::from(config.get_str(FILE).unwrap_or_default());
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                Error::fatal(format!(
                    "cannot create the folder of option 'file' ({}): {e}",
                    parent.display()
                ))
            })?;
        }
        self.file()?;
        info!(file = %self.path.display(), "file sink started");
        Ok(())
    }

    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<()> {
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.clear();
        for record in &records {
            buffer.extend_from_slice(&line_of(record));
            buffer.push(b'\n');
        }
        // Hand the batch to the operating system now, in one append, so lines show up at once
        // and never interleave with another task's; `flush` makes them durable (fsync) before
        // offsets are committed.
        let written = match self.file() {
            Ok(_) => {
                let file = self.file.as_mut().expect("just opened");
                file.write_all(&buffer).map_err(|e| {
                    Error::retriable(format!("cannot write to {}: {e}", self.path.display()))
                })
            }
            Err(e) => Err(e),
        };
        if written.is_err() {
            // The file's position after a short write is unknown: reopen before the retry.
            self.file = None;
        }
        self.buffer = buffer;
        written
    }

    async fn flush(&mut self) -> Result<()> {
        let path = self.path.display().to_string();
        if let Some(file) = self.file.take() {
            // Sync on a blocking thread; the file comes back unless the sync failed.
            let synced = tokio::task::spawn_blocking(move || file.sync_data().map(|()| file))
                .await
                .map_err(|e| Error::fatal(format!("file sync panicked: {e}")))?;
            match synced {
                Ok(file) => self.file = Some(file),
                // The runtime does not commit, so the records are delivered again.
                Err(e) => return Err(Error::fatal(format!("cannot flush {path}: {e}"))),
            }
        }
        Ok(())
    }

    async fn stop(&mut self) -> Result<()> {
        self.file = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::connector::NoStatusReporter;
    use sluice_sdk::{ErrantRecordReporter, Schema, Struct, TimestampType};
    use std::sync::Arc;

    #[derive(Debug)]
    struct FailingReporter;

    #[async_trait]
    impl ErrantRecordReporter for FailingReporter {
        async fn report(&self, _record: &SinkRecord, error: &Error) -> Result<()> {
            Err(Error::fatal(error.to_string()))
        }
    }

    fn record(value: Value, schema: Option<Schema>) -> SinkRecord {
        SinkRecord {
            topic: "t".into(),
            kafka_partition: 0,
            kafka_offset: 0,
            key_schema: None,
            key: Value::Null,
            value_schema: schema.map(Arc::new),
            value,
            timestamp: None,
            timestamp_type: TimestampType::NoTimestamp,
            headers: Vec::new(),
        }
    }

    #[tokio::test]
    async fn writes_one_line_per_record_and_syncs_on_flush() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("out").join("lines.txt");
        let props: Props = [("file".to_string(), file.to_string_lossy().into_owned())].into();
        let mut task = FileSinkTask::default();
        task.start(SinkTaskContext::new(
            "s",
            0,
            props,
            Arc::new(FailingReporter),
            Arc::new(NoStatusReporter),
        ))
        .await
        .unwrap();
        let schema = Schema::struct_of(vec![sluice_sdk::Field::new("id", Schema::int32())]);
        task.put(vec![
            record(Value::from("hello"), None),
            record(Value::Struct(Struct::new().with("id", 5)), Some(schema)),
            record(Value::Null, None),
        ])
        .await
        .unwrap();
        task.flush().await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "hello\n{\"id\":5}\nnull\n"
        );
        task.put(vec![record(Value::from("more"), None)])
            .await
            .unwrap();
        task.stop().await.unwrap();
        assert!(std::fs::read_to_string(&file).unwrap().ends_with("more\n"));
    }

    #[tokio::test]
    async fn tasks_max_tasks_share_the_file_without_interleaving_lines() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("shared.txt");
        let props: Props = [("file".to_string(), file.to_string_lossy().into_owned())].into();
        let mut connector = FileSinkConnector {
            props: props.clone(),
        };
        let configs = connector.task_configs(3).await.unwrap();
        assert_eq!(
            configs,
            vec![props.clone(); 3],
            "one config per task, as Kafka's sink"
        );

        // Three tasks append batches of long lines at the same time, each batch (1.3 MB) larger
        // than any write buffer a writer might split it at; every line must come out whole.
        let mut writers = Vec::new();
        for (t, props) in configs.iter().cloned().enumerate() {
            writers.push(tokio::spawn(async move {
                let mut task = FileSinkTask::default();
                task.start(SinkTaskContext::new(
                    "s",
                    t as u32,
                    props,
                    Arc::new(FailingReporter),
                    Arc::new(NoStatusReporter),
                ))
                .await
                .unwrap();
                for batch in 0..6 {
                    let records = (0..2500)
                        .map(|i| {
                            record(
                                Value::from(format!("t{t}-b{batch}-r{i}-{}", "x".repeat(500))),
                                None,
                            )
                        })
                        .collect();
                    task.put(records).await.unwrap();
                }
                task.flush().await.unwrap();
                task.stop().await.unwrap();
            }));
        }
        for w in writers {
            w.await.unwrap();
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3 * 6 * 2500);
        let tail = "x".repeat(500);
        for line in &lines {
            let (head, rest) = line.split_once("-r").expect("a whole line");
            assert!(
                head.starts_with('t') && head.contains("-b"),
                "broken line {line:.80}"
            );
            assert!(
                rest.ends_with(&tail) && rest.len() == tail.len() + rest.find('-').unwrap() + 1,
                "broken line {line:.80}"
            );
        }
        let unique: std::collections::BTreeSet<&&str> = lines.iter().collect();
        assert_eq!(unique.len(), lines.len());
    }
}
