//! Catalog reads and server checks over the ordinary (tokio-postgres) connection: captured
//! tables, column facts, non-built-in types, the publication and the slot, and the settings
//! logical decoding needs (`wal_level`, the REPLICATION attribute), each refused with the SQL
//! or setting that fixes it.

use std::collections::HashMap;

use sluice_sdk::{ConfigErrors, Error, Result};
use tokio_postgres::Client;

use super::config::{
    PostgresCdcConfig, PublicationAutocreate, DATABASE_HOSTNAME, DATABASE_USER,
    PUBLICATION_AUTOCREATE_MODE, PUBLICATION_NAME, SLOT_NAME,
};
use super::envelope::ColumnInfo;
use super::types::{is_builtin, CatalogType};
use crate::connection::{db_message, is_transient};

/// A captured table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    /// The table's OID.
    pub oid: u32,
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub table: String,
}

impl TableRef {
    /// `"schema"."table"`, quoted for SQL.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.table))
    }
}

/// An identifier quoted for SQL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A text literal quoted for SQL.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A driver error as an SDK error: transient ones are retriable.
pub fn pg_error(what: &str, e: &tokio_postgres::Error) -> Error {
    let message = format!("{what}: {}", db_message(e));
    if is_transient(e) {
        Error::retriable(message)
    } else {
        Error::fatal(message)
    }
}

/// The tables the configuration captures, in name order.
///
/// # Errors
/// The catalog could not be read.
pub async fn captured_tables(client: &Client, config: &PostgresCdcConfig) -> Result<Vec<TableRef>> {
    let rows = client
        .query(
            "SELECT c.oid, n.nspname::text, c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
               AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' \
             ORDER BY 2, 3",
            &[],
        )
        .await
        .map_err(|e| pg_error("listing tables", &e))?;
    Ok(rows
        .iter()
        .map(|r| TableRef {
            oid: r.get(0),
            schema: r.get(1),
            table: r.get(2),
        })
        .filter(|t| config.captures(&t.schema, &t.table))
        .collect())
}

/// The columns of table `oid` in order, with nullability and primary-key membership.
///
/// # Errors
/// The catalog could not be read.
pub async fn table_columns(client: &Client, oid: u32) -> Result<Vec<ColumnInfo>> {
    let rows = client
        .query(
            "SELECT a.attname::text, a.atttypid, a.atttypmod, NOT a.attnotnull, \
                    COALESCE(a.attnum = ANY(i.indkey::int2[]), false) \
             FROM pg_attribute a \
             LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&oid],
        )
        .await
        .map_err(|e| pg_error("reading a table's columns", &e))?;
    Ok(rows
        .iter()
        .map(|r| ColumnInfo {
            name: r.get(0),
            type_oid: r.get(1),
            modifier: r.get(2),
            nullable: r.get(3),
            primary_key: r.get(4),
        })
        .collect())
}

/// Adds to `cache` what the catalog says of every type in `oids` that is not built in (and
/// of their element and base types).
///
/// # Errors
/// The catalog could not be read.
pub async fn resolve_types(
    client: &Client,
    cache: &mut HashMap<u32, CatalogType>,
    oids: impl IntoIterator<Item = u32>,
) -> Result<()> {
    let mut wanted: Vec<u32> = oids
        .into_iter()
        .filter(|o| !is_builtin(*o) && !cache.contains_key(o))
        .collect();
    while !wanted.is_empty() {
        wanted.sort_unstable();
        wanted.dedup();
        let rows = client
            .query(
                "SELECT t.oid, t.typtype::text, t.typelem, t.typbasetype, t.typtypmod, \
                        t.typcategory::text, \
                        ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid \
                              ORDER BY e.enumsortorder) \
                 FROM pg_type t WHERE t.oid = ANY($1)",
                &[&wanted],
            )
            .await
            .map_err(|e| pg_error("reading column types", &e))?;
        let mut next = Vec::new();
        for oid in &wanted {
            cache.insert(*oid, CatalogType::Other);
        }
        for r in rows {
            let oid: u32 = r.get(0);
            let typtype: String = r.get(1);
            let elem: u32 = r.get(2);
            let base: u32 = r.get(3);
            let base_modifier: i32 = r.get(4);
            let category: String = r.get(5);
            let labels: Vec<String> = r.get(6);
            let ty = match typtype.as_str() {
                "e" => CatalogType::Enum(labels),
                "d" => {
                    next.push(base);
                    CatalogType::Domain(base, base_modifier)
                }
                _ if category == "A" && elem != 0 => {
                    next.push(elem);
                    CatalogType::Array(elem)
                }
                _ => CatalogType::Other,
            };
            cache.insert(oid, ty);
        }
        wanted = next
            .into_iter()
            .filter(|o| !is_builtin(*o) && !cache.contains_key(o))
            .collect();
    }
    Ok(())
}

/// The slot's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotState {
    /// The backend holding it, when one does.
    pub active_pid: Option<i32>,
    /// `confirmed_flush_lsn`.
    pub confirmed_flush: u64,
    /// Its output plugin.
    pub plugin: String,
    /// Its database.
    pub database: String,
}

/// Parses `16/B374D848`.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// `16/B374D848`.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

/// The slot called `name`, if it exists.
///
/// # Errors
/// The catalog could not be read.
pub async fn slot(client: &Client, name: &str) -> Result<Option<SlotState>> {
    let row = client
        .query_opt(
            "SELECT active_pid, COALESCE(confirmed_flush_lsn::text, '0/0'), \
                    COALESCE(plugin::text, ''), COALESCE(database::text, '') \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&name],
        )
        .await
        .map_err(|e| pg_error("reading pg_replication_slots", &e))?;
    Ok(row.map(|r| SlotState {
        active_pid: r.get(0),
        confirmed_flush: parse_lsn(r.get::<_, &str>(1)).unwrap_or(0),
        plugin: r.get(2),
        database: r.get(3),
    }))
}

/// The message for a slot another session holds.
pub fn slot_in_use(name: &str, pid: i32) -> String {
    format!(
        "replication slot '{name}' is in use by another process (PostgreSQL backend pid {pid}); \
         only one reader may hold a slot. Stop the other consumer, give this connector its own \
         slot.name, or end that session with SELECT pg_terminate_backend({pid});"
    )
}

/// Whether `error` (from [`check_server`]) is the slot being held by another session.
pub fn is_slot_in_use(error: &sluice_sdk::ConfigError) -> bool {
    error.option == SLOT_NAME && error.message.contains("in use by another process")
}

/// Checks the server allows logical decoding for this user, and that the slot is not held by
/// someone else: each problem with the option to change or the SQL to run.
pub async fn check_server(client: &Client, config: &PostgresCdcConfig) -> ConfigErrors {
    let mut errors = ConfigErrors::default();
    match client.query_one("SHOW wal_level", &[]).await {
        Ok(row) => {
            let level: String = row.get(0);
            if level != "logical" {
                errors.push(
                    DATABASE_HOSTNAME,
                    format!(
                        "names a PostgreSQL server with wal_level={level}; change data capture \
                         needs wal_level=logical: run ALTER SYSTEM SET wal_level = logical; and \
                         restart the server (also check max_replication_slots and \
                         max_wal_senders are at least 1)"
                    ),
                );
            }
        }
        Err(e) => errors.push(
            DATABASE_HOSTNAME,
            format!("cannot read wal_level: {}", db_message(&e)),
        ),
    }
    match client
        .query_one(
            "SELECT current_user::text, rolreplication OR rolsuper FROM pg_roles \
             WHERE rolname = current_user",
            &[],
        )
        .await
    {
        Ok(row) => {
            let user: String = row.get(0);
            let allowed: bool = row.get(1);
            if !allowed {
                errors.push(
                    DATABASE_USER,
                    format!(
                        "is '{user}', which lacks the REPLICATION attribute that reading a \
                         replication slot needs: run ALTER ROLE {} WITH REPLICATION; (as a \
                         superuser), or connect as a user that has it",
                        quote_ident(&user)
                    ),
                );
            }
        }
        Err(e) => errors.push(
            DATABASE_USER,
            format!("cannot read the user's attributes: {}", db_message(&e)),
        ),
    }
    match slot(client, &config.slot_name).await {
        Ok(Some(state)) => {
            if let Some(pid) = state.active_pid {
                errors.push(SLOT_NAME, slot_in_use(&config.slot_name, pid));
            } else if state.plugin != "pgoutput" {
                errors.push(
                    SLOT_NAME,
                    format!(
                        "names an existing slot of plugin '{}'; this connector reads pgoutput \
                         slots: choose another slot.name, or drop it with SELECT \
                         pg_drop_replication_slot('{}');",
                        state.plugin, config.slot_name
                    ),
                );
            } else if state.database != config.dbname {
                errors.push(
                    SLOT_NAME,
                    format!(
                        "names a slot of database '{}', not '{}': choose another slot.name",
                        state.database, config.dbname
                    ),
                );
            }
        }
        Ok(None) => {}
        Err(e) => errors.push(SLOT_NAME, e.to_string()),
    }
    errors
}

/// Creates the publication or brings it in line with the captured tables, per
/// `publication.autocreate.mode`; refuses a publication that misses a captured table.
///
/// # Errors
/// [`Error::Config`] with the SQL that fixes the publication; a driver error.
pub async fn ensure_publication(client: &Client, config: &PostgresCdcConfig) -> Result<()> {
    let name = &config.publication_name;
    let quoted = quote_ident(name);
    let tables = captured_tables(client, config).await?;
    let list = tables
        .iter()
        .map(TableRef::quoted)
        .collect::<Vec<_>>()
        .join(", ");
    let existing = client
        .query_opt(
            "SELECT puballtables FROM pg_publication WHERE pubname = $1",
            &[name],
        )
        .await
        .map_err(|e| pg_error("reading pg_publication", &e))?;
    let all_tables = existing.as_ref().map(|r| r.get::<_, bool>(0));
    let run = |sql: String| async move {
        client.batch_execute(&sql).await.map_err(|e| {
            Error::config(
                PUBLICATION_AUTOCREATE_MODE,
                format!(
                    "could not run {sql}: {}; create the publication as a superuser, or set \
                     publication.autocreate.mode=disabled and create it yourself",
                    db_message(&e)
                ),
            )
        })
    };
    match (config.publication_autocreate, all_tables) {
        (PublicationAutocreate::AllTables, None) => {
            return run(format!("CREATE PUBLICATION {quoted} FOR ALL TABLES")).await;
        }
        (PublicationAutocreate::Filtered, None) => {
            let sql = if tables.is_empty() {
                format!("CREATE PUBLICATION {quoted}")
            } else {
                format!("CREATE PUBLICATION {quoted} FOR TABLE {list}")
            };
            return run(sql).await;
        }
        (PublicationAutocreate::Filtered, Some(false)) if !tables.is_empty() => {
            return run(format!("ALTER PUBLICATION {quoted} SET TABLE {list}")).await;
        }
        (PublicationAutocreate::Disabled, None) => {
            return Err(Error::config(
                PUBLICATION_NAME,
                format!(
                    "names publication '{name}', which does not exist and \
                     publication.autocreate.mode=disabled: run CREATE PUBLICATION {quoted} FOR \
                     TABLE {};",
                    if list.is_empty() { "<tables>" } else { &list }
                ),
            ));
        }
        (_, Some(true)) => return Ok(()),
        _ => {}
    }
    let published = client
        .query(
            "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1",
            &[name],
        )
        .await
        .map_err(|e| pg_error("reading pg_publication_tables", &e))?;
    let published: Vec<(String, String)> = published.iter().map(|r| (r.get(0), r.get(1))).collect();
    let missing: Vec<String> = tables
        .iter()
        .filter(|t| {
            !published
                .iter()
                .any(|(s, n)| *s == t.schema && *n == t.table)
        })
        .map(TableRef::quoted)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::config(
        PUBLICATION_NAME,
        format!(
            "names publication '{name}', which does not publish the captured table(s) {}: run \
             ALTER PUBLICATION {quoted} ADD TABLE {}; or leave them out with table.exclude.list",
            missing.join(", "),
            missing.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_round_trip_through_text() {
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(format_lsn(0x16_B374_D848), "16/B374D848");
        assert_eq!(parse_lsn("nope"), None);
    }

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
