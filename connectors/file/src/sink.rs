//! `file-sink`: one line per record, as Kafka's `FileStreamSinkConnector`.
//!
//! String values are written as they are, bytes as UTF-8 (lossy), other values as JSON, and a
//! null value as the text `null` (as Kafka's sink does). Each batch is written as it arrives;
//! on `flush` the file is synced to disk before the runtime commits offsets.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
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
        // Several writers appending to one file would interleave partially written lines.
        let _ = max_tasks;
        Ok(vec![self.props.clone()])
    }

    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(FileSinkTask::default())
    }
}

/// Appends records to the file.
#[derive(Debug, Default)]
pub struct FileSinkTask {
    path: PathBuf,
    writer: Option<BufWriter<File>>,
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
    fn writer(&mut self) -> Result<&mut BufWriter<File>> {
        if self.writer.is_none() {
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
            self.writer = Some(BufWriter::with_capacity(1 << 20, file));
        }
        Ok(self.writer.as_mut().expect("just opened"))
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
        self.writer()?;
        info!(file = %self.path.display(), "file sink started");
        Ok(())
    }

    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<()> {
        let path = self.path.display().to_string();
        let writer = self.writer()?;
        for record in &records {
            writer
                .write_all(&line_of(record))
                .and_then(|()| writer.write_all(b"\n"))
                .map_err(|e| Error::retriable(format!("cannot write to {path}: {e}")))?;
        }
        // Hand the batch to the operating system now, so lines show up at once; `flush`
        // makes them durable (fsync) before offsets are committed.
        writer
            .flush()
            .map_err(|e| Error::retriable(format!("cannot write to {path}: {e}")))?;
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        let path = self.path.display().to_string();
        if let Some(mut writer) = self.writer.take() {
            // Sync on a blocking thread; the writer comes back unless the write failed.
            let synced = tokio::task::spawn_blocking(move || {
                writer.flush()?;
                writer.get_ref().sync_data()?;
                Ok::<_, std::io::Error>(writer)
            })
            .await
            .map_err(|e| Error::fatal(format!("file sync panicked: {e}")))?;
            match synced {
                Ok(writer) => self.writer = Some(writer),
                // The failed buffer is dropped; the runtime does not commit, so the records
                // are delivered again.
                Err(e) => return Err(Error::fatal(format!("cannot flush {path}: {e}"))),
            }
        }
        Ok(())
    }

    async fn stop(&mut self) -> Result<()> {
        if let Some(mut w) = self.writer.take() {
            let _ = w.flush();
        }
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
}
