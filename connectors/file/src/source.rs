//! `file-source`: one record per line of a file, as Kafka's `FileStreamSourceConnector`.
//!
//! The source partition is `{"filename": <file>}` and the offset `{"position": <byte after the
//! line>}`, Kafka's own format, so offsets carry over. The task keeps reading as the file grows
//! (a last line without a newline waits for its newline). When the file shrinks below the
//! position, or is replaced by another file, reading starts over from the beginning with a
//! warning.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value as Json};
use sluice_sdk::{
    async_trait, ConfigDef, ConfigKey, ConfigType, ConnectorContext, Error, Importance, Props,
    Result, Schema, SchemaRef, SourceConnector, SourceRecord, SourceTask, SourceTaskContext,
    Validator, Value,
};
use tracing::{info, warn};

/// `file`.
pub const FILE: &str = "file";
/// `topic`.
pub const TOPIC: &str = "topic";
/// `batch.size`.
pub const BATCH_SIZE: &str = "batch.size";
/// Offset key of the file name (Kafka's `FileStreamSourceTask.FILENAME_FIELD`).
pub const FILENAME_FIELD: &str = "filename";
/// Offset key of the byte position (Kafka's `FileStreamSourceTask.POSITION_FIELD`).
pub const POSITION_FIELD: &str = "position";

/// How long `poll` waits at the end of the file before looking again.
const EOF_WAIT: Duration = Duration::from_millis(50);

/// The source's options.
pub fn config_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            ConfigKey::new(
                FILE,
                ConfigType::String,
                Importance::High,
                "Path of the file to read.",
            )
            .validator(Validator::NonEmpty),
        )
        .define(
            ConfigKey::new(
                TOPIC,
                ConfigType::String,
                Importance::High,
                "Topic to write the lines to.",
            )
            .validator(Validator::NonEmpty),
        )
        .define(
            ConfigKey::new(
                BATCH_SIZE,
                ConfigType::Int,
                Importance::Low,
                "Most lines returned by one poll.",
            )
            .default_value("2000")
            .validator(Validator::AtLeast(1.0)),
        )
}

/// The `file-source` connector: one task per file.
#[derive(Debug, Default)]
pub struct FileSourceConnector {
    props: Props,
}

#[async_trait]
impl SourceConnector for FileSourceConnector {
    async fn start(&mut self, _ctx: ConnectorContext, config: Props) -> Result<()> {
        config_def().parse(&config)?;
        self.props = config;
        Ok(())
    }

    async fn task_configs(&mut self, _max_tasks: usize) -> Result<Vec<Props>> {
        Ok(vec![self.props.clone()])
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(FileSourceTask::default())
    }
}

struct Reader {
    reader: BufReader<File>,
    identity: Option<(u64, u64)>,
}

/// Reads lines from the file, resuming at the committed position.
#[derive(Default)]
pub struct FileSourceTask {
    path: PathBuf,
    topic: String,
    batch_size: usize,
    position: u64,
    partition: Map<String, Json>,
    schema: Option<SchemaRef>,
    reader: Option<Reader>,
    missing_logged: bool,
}

impl std::fmt::Debug for FileSourceTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSourceTask")
            .field("path", &self.path)
            .field("position", &self.position)
            .finish()
    }
}

#[cfg(unix)]
fn identity(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn identity(_meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

/// One batch read on a blocking thread: the lines with the position after each.
struct Batch {
    lines: Vec<(String, u64)>,
    reader: Option<Reader>,
    position: u64,
    restarted: Option<String>,
}

fn read_batch(
    path: &PathBuf,
    reader: Option<Reader>,
    mut position: u64,
    batch_size: usize,
) -> std::io::Result<Batch> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Batch {
                lines: Vec::new(),
                reader: None,
                position,
                restarted: None,
            });
        }
        Err(e) => return Err(e),
    };
    let mut restarted = None;
    let mut reader = match reader {
        Some(r) if r.identity == identity(&meta) && meta.len() >= position => r,
        other => {
            if let Some(old) = &other {
                restarted = Some(if old.identity != identity(&meta) {
                    "the file was replaced".to_string()
                } else {
                    format!(
                        "the file shrank to {} bytes, below position {position}",
                        meta.len()
                    )
                });
                position = 0;
            } else if meta.len() < position {
                restarted = Some(format!(
                    "the file has {} bytes, fewer than the committed position {position}",
                    meta.len()
                ));
                position = 0;
            }
            let mut file = File::open(path)?;
            file.seek(SeekFrom::Start(position))?;
            Reader {
                reader: BufReader::with_capacity(1 << 20, file),
                identity: identity(&meta),
            }
        }
    };
    let mut lines = Vec::new();
    let mut buf = Vec::with_capacity(256);
    while lines.len() < batch_size {
        buf.clear();
        let n = reader.reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        if buf.last() != Some(&b'\n') {
            // An unfinished last line: read it again once its newline arrives.
            reader.reader.seek_relative(-(n as i64))?;
            break;
        }
        position += n as u64;
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        // Valid text (nearly always) takes the fast check of `str::from_utf8`.
        let line = match std::str::from_utf8(&buf) {
            Ok(text) => text.to_owned(),
            Err(_) => String::from_utf8_lossy(&buf).into_owned(),
        };
        lines.push((line, position));
    }
    Ok(Batch {
        lines,
        reader: Some(reader),
        position,
        restarted,
    })
}

#[async_trait]
impl SourceTask for FileSourceTask {
    async fn start(&mut self, ctx: SourceTaskContext) -> Result<()> {
        let config = config_def().parse(&ctx.config)?;
        self.path = PathBuf::from(config.get_str(FILE).unwrap_or_default());
        self.topic = config.get_str(TOPIC).unwrap_or_default().to_string();
        self.batch_size =
            usize::try_from(config.get_i64(BATCH_SIZE).unwrap_or(2000)).unwrap_or(2000);
        self.partition = json!({ FILENAME_FIELD: self.path.to_string_lossy() })
            .as_object()
            .cloned()
            .unwrap_or_default();
        self.position = ctx
            .offset(&self.partition)
            .and_then(|o| o.get(POSITION_FIELD))
            .and_then(Json::as_u64)
            .unwrap_or(0);
        self.schema = Some(Arc::new(Schema::string()));
        info!(file = %self.path.display(), position = self.position, topic = %self.topic, "file source starting");
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>> {
        {
            let path = self.path.clone();
            let reader = self.reader.take();
            let (position, batch_size) = (self.position, self.batch_size);
            let batch = tokio::task::spawn_blocking(move || {
                read_batch(&path, reader, position, batch_size)
            })
            .await
            .map_err(|e| Error::fatal(format!("file reader panicked: {e}")))?
            .map_err(|e| Error::retriable(format!("cannot read {}: {e}", self.path.display())))?;
            if let Some(why) = &batch.restarted {
                warn!(file = %self.path.display(), "{why}; reading it again from the beginning");
            }
            if batch.reader.is_none() && !self.missing_logged {
                warn!(file = %self.path.display(), "file does not exist yet; waiting for it");
                self.missing_logged = true;
            } else if batch.reader.is_some() {
                self.missing_logged = false;
            }
            self.reader = batch.reader;
            self.position = batch.position;
            if batch.lines.is_empty() {
                // Nothing new: wait a little, then hand control back to the runtime.
                tokio::time::sleep(EOF_WAIT).await;
                return Ok(Vec::new());
            }
            Ok(batch
                .lines
                .into_iter()
                .map(|(line, position)| {
                    let mut offset = Map::with_capacity(1);
                    offset.insert(POSITION_FIELD.to_string(), Json::from(position));
                    SourceRecord::new(
                        self.partition.clone(),
                        offset,
                        self.topic.clone(),
                        self.schema.clone(),
                        Value::String(line),
                    )
                })
                .collect())
        }
    }

    async fn stop(&mut self) -> Result<()> {
        self.reader = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::connector::NoStatusReporter;
    use sluice_sdk::OffsetSnapshot;
    use std::io::Write;

    fn ctx(file: &std::path::Path, offsets: OffsetSnapshot) -> SourceTaskContext {
        let props: Props = [
            ("file".to_string(), file.to_string_lossy().into_owned()),
            ("topic".to_string(), "lines".to_string()),
            ("batch.size".to_string(), "3".to_string()),
        ]
        .into();
        SourceTaskContext::new("f", 0, props, Arc::new(offsets), Arc::new(NoStatusReporter))
    }

    /// Polls until the task returns records.
    async fn next(task: &mut FileSourceTask) -> Vec<SourceRecord> {
        loop {
            let records = task.poll().await.unwrap();
            if !records.is_empty() {
                return records;
            }
        }
    }

    fn texts(records: &[SourceRecord]) -> Vec<String> {
        records
            .iter()
            .map(|r| r.value.as_str().unwrap().to_string())
            .collect()
    }

    #[tokio::test]
    async fn reads_lines_in_batches_and_resumes_from_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("in.txt");
        std::fs::write(&file, "a\nb\r\nc\nd\npartial").unwrap();
        let mut task = FileSourceTask::default();
        task.start(ctx(&file, OffsetSnapshot::default()))
            .await
            .unwrap();
        let first = next(&mut task).await;
        assert_eq!(texts(&first), ["a", "b", "c"]);
        assert_eq!(first[1].source_offset.get("position"), Some(&json!(5)));
        let second = next(&mut task).await;
        assert_eq!(texts(&second), ["d"]);

        // The unfinished line arrives once it has its newline.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap()
            .write_all(b" line\n")
            .unwrap();
        assert_eq!(texts(&next(&mut task).await), ["partial line"]);

        // A new task resumes after the committed position.
        let committed = first[2].clone();
        let mut resumed = FileSourceTask::default();
        resumed
            .start(ctx(
                &file,
                OffsetSnapshot::new([(committed.source_partition, committed.source_offset)]),
            ))
            .await
            .unwrap();
        assert_eq!(texts(&next(&mut resumed).await), ["d", "partial line"]);
    }

    #[tokio::test]
    async fn truncation_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("in.txt");
        std::fs::write(&file, "one\ntwo\n").unwrap();
        let mut task = FileSourceTask::default();
        task.start(ctx(&file, OffsetSnapshot::default()))
            .await
            .unwrap();
        assert_eq!(texts(&next(&mut task).await), ["one", "two"]);
        std::fs::write(&file, "x\n").unwrap();
        assert_eq!(texts(&next(&mut task).await), ["x"]);
    }

    #[tokio::test]
    async fn replaced_file_starts_over_and_missing_file_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("in.txt");
        let mut task = FileSourceTask::default();
        task.start(ctx(&file, OffsetSnapshot::default()))
            .await
            .unwrap();
        assert!(
            task.poll().await.unwrap().is_empty(),
            "nothing while the file is missing"
        );
        std::fs::write(&file, "first file line\n").unwrap();
        assert_eq!(texts(&next(&mut task).await), ["first file line"]);
        let other = dir.path().join("other.txt");
        std::fs::write(&other, "new file, longer first line\n").unwrap();
        std::fs::rename(&other, &file).unwrap();
        assert_eq!(
            texts(&next(&mut task).await),
            ["new file, longer first line"]
        );
    }
}
