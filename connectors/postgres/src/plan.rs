//! Reading the catalog: which tables exist, and for one source the plan of a run — its
//! columns, their decoders and Connect schemas, the primary key, the mode's columns — and
//! the conversion of rows into records.

use std::collections::HashMap;
use std::sync::Arc;

use sluice_sdk::{
    ConfigError, Field, Schema, SchemaRef, SourceOffset, SourceRecord, Struct, Value,
};
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{Client, Row};

use crate::config::{
    PostgresSourceConfig, INCREMENTING_COLUMN_NAME, SOFT_DELETE_COLUMN_NAME, TIMESTAMP_COLUMN_NAME,
    VALIDATE_NON_NULL,
};
use crate::query::{Offset, SelectColumn, Source, TableId};
use crate::types::{column_type, Decoder};

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The database failed (possibly transiently).
    #[error("{}", crate::connection::db_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// The configuration does not fit the table or query.
    #[error("{0}")]
    Config(ConfigError),
}

/// The tables `config` selects, sorted.
///
/// # Errors
/// The driver's error.
pub async fn list_tables(
    client: &Client,
    config: &PostgresSourceConfig,
) -> Result<Vec<TableId>, tokio_postgres::Error> {
    let relkinds: Vec<String> = config
        .table_types
        .iter()
        .flat_map(|t| t.relkinds().iter().map(|k| (*k).to_string()))
        .collect();
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind::text = ANY($1::text[]) AND NOT c.relispartition \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
               AND ($2::text IS NULL OR n.nspname LIKE $2::text) \
               AND has_table_privilege(c.oid, 'SELECT') \
             ORDER BY 1, 2",
            &[&relkinds, &config.schema_pattern],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| TableId::new(r.get::<_, String>(0), r.get::<_, String>(1)))
        .filter(|t| config.selects(t))
        .collect())
}

/// One column of a plan.
#[derive(Debug, Clone)]
pub struct PlanColumn {
    /// How it is selected.
    pub select: SelectColumn,
    /// Whether it may be NULL (`None`: unknown, e.g. a computed query column).
    pub nullable: Option<bool>,
}

/// What the record key is.
#[derive(Debug, Clone)]
pub enum KeyPlan {
    /// No primary key: records have no key.
    None,
    /// A one-column primary key: the key is that column's value.
    Single(usize, SchemaRef),
    /// A composite primary key: the key is a struct of its columns.
    Struct(Vec<usize>, SchemaRef),
}

/// Everything one run of a source needs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What is read.
    pub source: Source,
    /// Selected columns in order.
    pub columns: Vec<PlanColumn>,
    /// The value's struct schema.
    pub value_schema: SchemaRef,
    /// The record key.
    pub key: KeyPlan,
    /// Index of the incrementing column.
    pub incrementing: Option<usize>,
    /// Indexes of the timestamp columns, in COALESCE order.
    pub timestamps: Vec<usize>,
    /// Index of the `soft.delete.column.name` column: rows it marks become tombstones.
    pub soft_delete: Option<usize>,
}

fn column_list(columns: &[PlanColumn]) -> String {
    columns
        .iter()
        .map(|c| c.select.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn find_column(columns: &[PlanColumn], name: &str) -> Option<usize> {
    columns
        .iter()
        .position(|c| c.select.name == name)
        .or_else(|| {
            let matches: Vec<usize> = columns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.select.name.eq_ignore_ascii_case(name))
                .map(|(i, _)| i)
                .collect();
            (matches.len() == 1).then(|| matches[0])
        })
}

/// Column facts from `pg_attribute` for the given relations: nullability and position in the
/// primary key (0 = not in it), keyed by (relation, attnum).
async fn attribute_facts(
    client: &Client,
    relations: Vec<u32>,
) -> Result<HashMap<(u32, i16), (bool, i32)>, tokio_postgres::Error> {
    if relations.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = client
        .query(
            "SELECT a.attrelid, a.attnum, a.attnotnull, \
                    CASE WHEN a.attnum = ANY(i.indkey::int2[]) \
                      THEN array_position(i.indkey::int2[], a.attnum) - array_lower(i.indkey::int2[], 1) + 1 \
                      ELSE 0 END::int4 \
             FROM pg_catalog.pg_attribute a \
             LEFT JOIN pg_catalog.pg_index i ON i.indrelid = a.attrelid AND i.indisprimary \
             WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped",
            &[&relations],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                (r.get::<_, u32>(0), r.get::<_, i16>(1)),
                (r.get::<_, bool>(2), r.get::<_, i32>(3)),
            )
        })
        .collect())
}

/// The identity or serial column of `table`, for incrementing mode without a column name.
async fn find_autoincrement_column(
    client: &Client,
    table: &TableId,
) -> Result<Option<String>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT a.attname::text FROM pg_catalog.pg_attribute a \
             LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped \
               AND (a.attidentity <> '' OR pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%') \
             ORDER BY a.attnum LIMIT 1",
            &[&table.quoted()],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Reads the columns of `source` and checks the mode's columns against them.
///
/// # Errors
/// [`PlanError::Config`] when a named column is missing, of the wrong type, or nullable
/// with `validate.non.null`; [`PlanError::Postgres`] when the database fails.
pub async fn make_plan(
    client: &Client,
    source: &Source,
    config: &PostgresSourceConfig,
) -> Result<Plan, PlanError> {
    let probe = client
        .prepare(&format!("SELECT * FROM {}", source.from_clause()))
        .await?;
    let relations: Vec<u32> = {
        let mut r: Vec<u32> = probe
            .columns()
            .iter()
            .filter_map(|c| c.table_oid())
            .filter(|&o| o != 0)
            .collect();
        r.sort_unstable();
        r.dedup();
        r
    };
    let facts = attribute_facts(client, relations).await?;
    let mut columns = Vec::with_capacity(probe.columns().len());
    let mut pk: Vec<(i32, usize)> = Vec::new();
    for (i, column) in probe.columns().iter().enumerate() {
        if columns
            .iter()
            .any(|c: &PlanColumn| c.select.name == column.name())
        {
            return Err(PlanError::Config(ConfigError::new(
                crate::config::QUERY,
                format!(
                    "returns two columns named '{}'; give them distinct aliases (AS ...)",
                    column.name()
                ),
            )));
        }
        let ty = column_type(
            column.type_(),
            column.type_modifier(),
            config.numeric_mapping,
        );
        let fact = column
            .table_oid()
            .zip(column.column_id())
            .and_then(|key| facts.get(&key));
        if let (Some((_, position)), Source::Table(_)) = (fact, source) {
            if *position > 0 {
                pk.push((*position, i));
            }
        }
        columns.push(PlanColumn {
            select: SelectColumn {
                name: column.name().to_string(),
                cast: ty.cast,
                decoder: ty.decoder,
            },
            nullable: fact.map(|(not_null, _)| !not_null),
        });
    }
    let what = match source {
        Source::Table(t) => format!("table {t}"),
        Source::Query(_) => "the query".to_string(),
    };

    let mut incrementing = None;
    if config.mode.uses_incrementing() {
        let name = match (&config.incrementing_column, source) {
            (Some(name), _) => name.clone(),
            (None, Source::Table(t)) => match find_autoincrement_column(client, t).await? {
                Some(name) => name,
                None => {
                    return Err(PlanError::Config(ConfigError::new(
                        INCREMENTING_COLUMN_NAME,
                        format!(
                            "is empty and {what} has no identity or serial column; name its \
                             strictly increasing column (its columns: {})",
                            column_list(&columns)
                        ),
                    )))
                }
            },
            (None, Source::Query(_)) => {
                return Err(PlanError::Config(ConfigError::new(
                    INCREMENTING_COLUMN_NAME,
                    "is required with a query; name the query's strictly increasing column",
                )))
            }
        };
        let idx = find_column(&columns, &name).ok_or_else(|| {
            PlanError::Config(ConfigError::new(
                INCREMENTING_COLUMN_NAME,
                format!(
                    "names column '{name}', which {what} does not have (its columns: {}); \
                     correct the name",
                    column_list(&columns)
                ),
            ))
        })?;
        let column = &columns[idx];
        if !column.select.decoder.is_integer() {
            return Err(PlanError::Config(ConfigError::new(
                INCREMENTING_COLUMN_NAME,
                format!(
                    "names column '{name}' of {what}, which is not an integer column; use a \
                     smallint, integer, bigint or numeric(p,0) column that only grows"
                ),
            )));
        }
        if config.validate_non_null && column.nullable == Some(true) {
            return Err(PlanError::Config(ConfigError::new(
                INCREMENTING_COLUMN_NAME,
                format!(
                    "names column '{name}' of {what}, which is nullable (rows with NULL there \
                     would never be read); declare it NOT NULL (ALTER TABLE ... ALTER COLUMN \
                     {name} SET NOT NULL) or set {VALIDATE_NON_NULL}=false"
                ),
            )));
        }
        incrementing = Some(idx);
    }

    let mut timestamps = Vec::new();
    if config.mode.uses_timestamp() {
        for name in &config.timestamp_columns {
            let idx = find_column(&columns, name).ok_or_else(|| {
                PlanError::Config(ConfigError::new(
                    TIMESTAMP_COLUMN_NAME,
                    format!(
                        "names column '{name}', which {what} does not have (its columns: {}); \
                         correct the name",
                        column_list(&columns)
                    ),
                ))
            })?;
            if !columns[idx].select.decoder.is_timestamp() {
                return Err(PlanError::Config(ConfigError::new(
                    TIMESTAMP_COLUMN_NAME,
                    format!(
                        "names column '{name}' of {what}, which is not a timestamp; use a \
                         timestamp, timestamptz or date column"
                    ),
                )));
            }
            timestamps.push(idx);
        }
        let all_nullable = timestamps
            .iter()
            .all(|&i| columns[i].nullable == Some(true));
        if config.validate_non_null && all_nullable {
            let names = config.timestamp_columns.join(", ");
            return Err(PlanError::Config(ConfigError::new(
                TIMESTAMP_COLUMN_NAME,
                format!(
                    "names column(s) {names} of {what}, which are nullable (rows with NULL there \
                     would never be read); declare one NOT NULL (ALTER TABLE ... ALTER COLUMN ... \
                     SET NOT NULL) or set {VALIDATE_NON_NULL}=false"
                ),
            )));
        }
    }

    let soft_delete = match &config.soft_delete_column {
        None => None,
        Some(name) => Some(soft_delete_column(&columns, name, &what)?),
    };

    let fields: Vec<Field> = probe
        .columns()
        .iter()
        .zip(&columns)
        .map(|(c, plan)| {
            let ty = column_type(c.type_(), c.type_modifier(), config.numeric_mapping);
            let schema = if plan.nullable == Some(false) {
                ty.schema
            } else {
                ty.schema.optional()
            };
            Field::new(plan.select.name.clone(), schema)
        })
        .collect();
    let mut value_schema = Schema::struct_of(fields.clone());
    if let Source::Table(t) = source {
        value_schema = value_schema.named(t.table.clone());
    }
    pk.sort_unstable();
    let key = match pk.as_slice() {
        [] => KeyPlan::None,
        [(_, i)] => {
            let mut schema = fields[*i].schema.clone();
            schema.optional = false;
            KeyPlan::Single(*i, Arc::new(schema))
        }
        many => {
            let key_fields = many
                .iter()
                .map(|(_, i)| {
                    let mut f = fields[*i].clone();
                    f.schema.optional = false;
                    f
                })
                .collect();
            KeyPlan::Struct(
                many.iter().map(|(_, i)| *i).collect(),
                Arc::new(Schema::struct_of(key_fields)),
            )
        }
    };
    if soft_delete.is_some() && matches!(key, KeyPlan::None) {
        let why = match source {
            Source::Table(_) => format!("{what} has no primary key"),
            Source::Query(_) => "rows of a query have no key".to_string(),
        };
        return Err(PlanError::Config(ConfigError::new(
            SOFT_DELETE_COLUMN_NAME,
            format!(
                "needs record keys, but {why}: a tombstone without a key cannot say which row \
                 was deleted; read a table with a primary key (ALTER TABLE ... ADD PRIMARY KEY)"
            ),
        )));
    }
    Ok(Plan {
        source: source.clone(),
        columns,
        value_schema: Arc::new(value_schema),
        key,
        incrementing,
        timestamps,
        soft_delete,
    })
}

/// Finds the `soft.delete.column.name` column and checks that it is a boolean or a timestamp.
fn soft_delete_column(columns: &[PlanColumn], name: &str, what: &str) -> Result<usize, PlanError> {
    let idx = find_column(columns, name).ok_or_else(|| {
        PlanError::Config(ConfigError::new(
            SOFT_DELETE_COLUMN_NAME,
            format!(
                "names column '{name}', which {what} does not have (its columns: {}); correct \
                 the name or add the column (e.g. ALTER TABLE ... ADD COLUMN {name} timestamptz)",
                column_list(columns)
            ),
        ))
    })?;
    let decoder = &columns[idx].select.decoder;
    if !(decoder.is_timestamp() || *decoder == Decoder::Bool) {
        return Err(PlanError::Config(ConfigError::new(
            SOFT_DELETE_COLUMN_NAME,
            format!(
                "names column '{name}' of {what}, which is neither a boolean nor a timestamp; \
                 use a boolean column (true = deleted) or a timestamp, timestamptz or date \
                 column (not NULL = deleted)"
            ),
        )));
    }
    Ok(idx)
}

/// A column's raw binary value, whatever its type.
#[derive(Debug)]
pub struct RawValue<'a>(pub Option<&'a [u8]>);

impl<'a> FromSql<'a> for RawValue<'a> {
    fn from_sql(
        _ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Self(Some(raw)))
    }

    fn from_sql_null(_ty: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Self(None))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

/// One row turned into a record, with the offset facts of the row.
#[derive(Debug)]
pub struct RowRecord {
    /// The record (its offset is set by the caller).
    pub record: SourceRecord,
    /// The row's position.
    pub position: Offset,
}

impl Plan {
    /// The columns as the SQL builder takes them.
    pub fn select_columns(&self) -> Vec<SelectColumn> {
        self.columns.iter().map(|c| c.select.clone()).collect()
    }

    /// Turns `row` into a record for `topic` and `partition`.
    ///
    /// # Errors
    /// A message naming the column whose value cannot be read.
    pub fn to_record(
        &self,
        row: &Row,
        topic: &str,
        partition: &sluice_sdk::SourcePartition,
    ) -> Result<RowRecord, String> {
        let mut raws = Vec::with_capacity(self.columns.len());
        for i in 0..self.columns.len() {
            let raw: RawValue<'_> = row
                .try_get(i)
                .map_err(|e| format!("column '{}': {e}", self.columns[i].select.name))?;
            raws.push(raw.0);
        }
        let mut value = Struct::with_capacity(self.columns.len());
        for (column, raw) in self.columns.iter().zip(&raws) {
            let v = column
                .select
                .decoder
                .decode(*raw)
                .map_err(|e| format!("column '{}' {e}", column.select.name))?;
            value.put(column.select.name.clone(), v);
        }
        let field = |i: usize| value.fields()[i].1.clone();
        let key = match &self.key {
            KeyPlan::None => (None, Value::Null),
            KeyPlan::Single(i, schema) => (Some(schema.clone()), field(*i)),
            KeyPlan::Struct(indexes, schema) => {
                let mut s = Struct::with_capacity(indexes.len());
                for &i in indexes {
                    s.put(self.columns[i].select.name.clone(), field(i));
                }
                (Some(schema.clone()), Value::Struct(s))
            }
        };
        let mut position = Offset::default();
        if let Some(i) = self.incrementing {
            position.incrementing = self.columns[i]
                .select
                .decoder
                .integer(raws[i])
                .map_err(|e| format!("column '{}' {e}", self.columns[i].select.name))?;
        }
        for &i in &self.timestamps {
            let micros = self.columns[i]
                .select
                .decoder
                .timestamp_micros(raws[i])
                .map_err(|e| format!("column '{}' {e}", self.columns[i].select.name))?;
            if micros.is_some() {
                position.timestamp_micros = micros;
                break;
            }
        }
        // A soft-deleted row is a tombstone: no value and no value schema, which the
        // converters turn into a Kafka null.
        let (value_schema, value) = if self.is_soft_deleted(&raws)? {
            (None, Value::Null)
        } else {
            (Some(self.value_schema.clone()), Value::Struct(value))
        };
        let record = SourceRecord::new(
            partition.clone(),
            SourceOffset::new(),
            topic,
            value_schema,
            value,
        )
        .with_key(key.0, key.1);
        Ok(RowRecord { record, position })
    }

    /// Whether the row's `soft.delete.column.name` marks it deleted: a boolean that is true,
    /// or a timestamp that is not NULL.
    fn is_soft_deleted(&self, raws: &[Option<&[u8]>]) -> Result<bool, String> {
        let Some(i) = self.soft_delete else {
            return Ok(false);
        };
        let column = &self.columns[i].select;
        match column.decoder {
            Decoder::Bool => match column.decoder.decode(raws[i]) {
                Ok(Value::Boolean(deleted)) => Ok(deleted),
                Ok(_) => Ok(false),
                Err(e) => Err(format!("column '{}' {e}", column.name)),
            },
            _ => Ok(raws[i].is_some()),
        }
    }

    /// The timestamp columns, in COALESCE order.
    pub fn timestamp_columns(&self) -> Vec<&SelectColumn> {
        self.timestamps
            .iter()
            .map(|&i| &self.columns[i].select)
            .collect()
    }
}
