//! Decoding of the `pgoutput` logical replication messages (protocol version 1), as
//! PostgreSQL documents them in "Logical Replication Message Formats".
//!
//! The replication client hands over each `XLogData` payload as bytes; Begin and Commit
//! arrive already parsed, everything else is decoded here. Column values come in pgoutput's
//! text format (the types' output functions), which [`super::types`] turns into Connect
//! values.

/// A column of a relation, as the Relation message describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Whether the column is part of the replica identity (the key).
    pub key: bool,
    /// Column name.
    pub name: String,
    /// The type's OID.
    pub type_oid: u32,
    /// The type modifier (`atttypmod`), -1 when none.
    pub type_modifier: i32,
}

/// A Relation message: the shape of a table, sent before its first change in a session and
/// again whenever it changed (a column added or dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// The table's OID.
    pub id: u32,
    /// Schema (namespace) name.
    pub schema: String,
    /// Table name.
    pub table: String,
    /// `REPLICA IDENTITY`: `d` default (primary key), `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    /// Columns in table order.
    pub columns: Vec<RelationColumn>,
}

/// One column's value in a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TupleValue {
    /// SQL NULL.
    Null,
    /// A TOASTed value that did not change; the server did not send it.
    UnchangedToast,
    /// The value in the type's text output format.
    Text(String),
    /// The value in the type's binary format (only when binary mode is asked for).
    Binary(Vec<u8>),
}

/// A row image.
pub type Tuple = Vec<TupleValue>;

/// A decoded pgoutput message (Begin and Commit come parsed from the client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// The shape of a table.
    Relation(Relation),
    /// A row inserted.
    Insert {
        /// The table's OID.
        relation: u32,
        /// The new row.
        new: Tuple,
    },
    /// A row updated.
    Update {
        /// The table's OID.
        relation: u32,
        /// The old row: only the key columns (`K`, when the key changed) or the whole row
        /// (`O`, `REPLICA IDENTITY FULL`); `None` when the server sent no old image.
        old: Option<(OldKind, Tuple)>,
        /// The new row.
        new: Tuple,
    },
    /// A row deleted.
    Delete {
        /// The table's OID.
        relation: u32,
        /// The old row: key columns or the whole row.
        old: (OldKind, Tuple),
    },
    /// Tables truncated.
    Truncate {
        /// The tables' OIDs.
        relations: Vec<u32>,
    },
    /// Begin, Commit, Origin, Type or a logical decoding message: carries nothing a change
    /// event needs.
    Other(u8),
}

/// Which old image an Update or Delete carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldKind {
    /// `K`: the replica identity's (key) columns; the others are null.
    Key,
    /// `O`: every column (`REPLICA IDENTITY FULL`).
    Full,
}

/// A malformed message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed pgoutput message: {0}")]
pub struct DecodeError(pub String);

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError(format!(
                "{what}: needs {n} bytes, {} left",
                self.buf.len()
            )));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    fn i16(&mut self, what: &str) -> Result<i16, DecodeError> {
        let b = self.take(2, what)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, what: &str) -> Result<i32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn cstring(&mut self, what: &str) -> Result<String, DecodeError> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| DecodeError(format!("{what}: unterminated string")))?;
        let text = String::from_utf8(self.buf[..end].to_vec())
            .map_err(|_| DecodeError(format!("{what}: not UTF-8")))?;
        self.buf = &self.buf[end + 1..];
        Ok(text)
    }

    fn tuple(&mut self) -> Result<Tuple, DecodeError> {
        let n = self.i16("tuple column count")?;
        let n = usize::try_from(n).map_err(|_| DecodeError("negative column count".into()))?;
        let mut values = Vec::with_capacity(n);
        for _ in 0..n {
            let value = match self.u8("tuple value kind")? {
                b'n' => TupleValue::Null,
                b'u' => TupleValue::UnchangedToast,
                kind @ (b't' | b'b') => {
                    let len = self.i32("value length")?;
                    let len = usize::try_from(len)
                        .map_err(|_| DecodeError("negative value length".into()))?;
                    let bytes = self.take(len, "value")?;
                    if kind == b't' {
                        TupleValue::Text(
                            String::from_utf8(bytes.to_vec())
                                .map_err(|_| DecodeError("text value is not UTF-8".into()))?,
                        )
                    } else {
                        TupleValue::Binary(bytes.to_vec())
                    }
                }
                other => {
                    return Err(DecodeError(format!(
                        "unknown tuple value kind {:?}",
                        other as char
                    )))
                }
            };
            values.push(value);
        }
        Ok(values)
    }
}

/// Decodes one pgoutput message.
///
/// # Errors
/// [`DecodeError`] when the bytes do not follow the format.
pub fn decode(data: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader { buf: data };
    let tag = r.u8("message tag")?;
    match tag {
        b'R' => {
            let id = r.u32("relation id")?;
            let schema = r.cstring("namespace")?;
            let table = r.cstring("relation name")?;
            let replica_identity = r.u8("replica identity")?;
            let n = r.i16("column count")?;
            let n = usize::try_from(n).map_err(|_| DecodeError("negative column count".into()))?;
            let mut columns = Vec::with_capacity(n);
            for _ in 0..n {
                let flags = r.u8("column flags")?;
                columns.push(RelationColumn {
                    key: flags & 1 == 1,
                    name: r.cstring("column name")?,
                    type_oid: r.u32("column type")?,
                    type_modifier: r.i32("column type modifier")?,
                });
            }
            Ok(Message::Relation(Relation {
                id,
                schema,
                table,
                replica_identity,
                columns,
            }))
        }
        b'I' => {
            let relation = r.u32("relation id")?;
            match r.u8("tuple kind")? {
                b'N' => Ok(Message::Insert {
                    relation,
                    new: r.tuple()?,
                }),
                other => Err(DecodeError(format!(
                    "insert: expected a new tuple, got {:?}",
                    other as char
                ))),
            }
        }
        b'U' => {
            let relation = r.u32("relation id")?;
            let mut old = None;
            let mut kind = r.u8("tuple kind")?;
            if kind == b'K' || kind == b'O' {
                let which = if kind == b'K' {
                    OldKind::Key
                } else {
                    OldKind::Full
                };
                old = Some((which, r.tuple()?));
                kind = r.u8("tuple kind")?;
            }
            if kind != b'N' {
                return Err(DecodeError(format!(
                    "update: expected a new tuple, got {:?}",
                    kind as char
                )));
            }
            Ok(Message::Update {
                relation,
                old,
                new: r.tuple()?,
            })
        }
        b'D' => {
            let relation = r.u32("relation id")?;
            let which = match r.u8("tuple kind")? {
                b'K' => OldKind::Key,
                b'O' => OldKind::Full,
                other => {
                    return Err(DecodeError(format!(
                        "delete: expected an old tuple, got {:?}",
                        other as char
                    )))
                }
            };
            Ok(Message::Delete {
                relation,
                old: (which, r.tuple()?),
            })
        }
        b'T' => {
            let n = r.u32("relation count")?;
            let _options = r.u8("truncate options")?;
            let relations = (0..n)
                .map(|_| r.u32("relation id"))
                .collect::<Result<_, _>>()?;
            Ok(Message::Truncate { relations })
        }
        other => Ok(Message::Other(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cstr(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    fn text(out: &mut Vec<u8>, s: &str) {
        out.push(b't');
        out.extend_from_slice(&(s.len() as i32).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    }

    #[test]
    fn relation_message_decodes_columns_and_key_flags() {
        let mut m = vec![b'R'];
        m.extend_from_slice(&16384u32.to_be_bytes());
        cstr(&mut m, "public");
        cstr(&mut m, "orders");
        m.push(b'd');
        m.extend_from_slice(&2i16.to_be_bytes());
        m.push(1);
        cstr(&mut m, "id");
        m.extend_from_slice(&20u32.to_be_bytes());
        m.extend_from_slice(&(-1i32).to_be_bytes());
        m.push(0);
        cstr(&mut m, "total");
        m.extend_from_slice(&1700u32.to_be_bytes());
        m.extend_from_slice(&((10 << 16 | 2) + 4i32).to_be_bytes());
        let Message::Relation(r) = decode(&m).unwrap() else {
            panic!("not a relation")
        };
        assert_eq!((r.schema.as_str(), r.table.as_str()), ("public", "orders"));
        assert_eq!(r.columns.len(), 2);
        assert!(r.columns[0].key && !r.columns[1].key);
        assert_eq!(r.columns[1].type_oid, 1700);
    }

    #[test]
    fn update_with_old_key_and_unchanged_toast_decodes() {
        let mut m = vec![b'U'];
        m.extend_from_slice(&7u32.to_be_bytes());
        m.push(b'K');
        m.extend_from_slice(&2i16.to_be_bytes());
        text(&mut m, "1");
        m.push(b'n');
        m.push(b'N');
        m.extend_from_slice(&2i16.to_be_bytes());
        text(&mut m, "2");
        m.push(b'u');
        assert_eq!(
            decode(&m).unwrap(),
            Message::Update {
                relation: 7,
                old: Some((
                    OldKind::Key,
                    vec![TupleValue::Text("1".into()), TupleValue::Null]
                )),
                new: vec![TupleValue::Text("2".into()), TupleValue::UnchangedToast],
            }
        );
    }

    #[test]
    fn truncated_messages_are_errors_not_panics() {
        for len in 0..12 {
            let mut m = vec![b'I'];
            m.extend_from_slice(&7u32.to_be_bytes());
            m.push(b'N');
            m.extend_from_slice(&1i16.to_be_bytes());
            text(&mut m, "hello");
            if len < m.len() {
                assert!(decode(&m[..len]).is_err() || len == 0 && decode(&m[..0]).is_err());
            }
        }
    }
}
