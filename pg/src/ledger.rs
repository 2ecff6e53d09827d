//! The ledger file: one JSON line per state change, appended and fsync'ed before the change takes
//! effect, replayed on start.

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// One state change, as one line of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Record {
    /// A confirm that charged.
    #[serde(rename_all = "camelCase")]
    Charged {
        idempotency_key: String,
        payment_key: String,
        order_id: String,
        amount: i64,
        method: String,
        approved_at: String,
    },
    /// A confirm that was declined: nothing charged, and the key answers this decline again.
    #[serde(rename_all = "camelCase")]
    Declined {
        idempotency_key: String,
        order_id: String,
        amount: i64,
        method: String,
        code: String,
        message: String,
        at: String,
    },
    /// A payment cancelled (refunded in full).
    #[serde(rename_all = "camelCase")]
    Canceled {
        payment_key: String,
        idempotency_key: String,
        cancel_reason: String,
        cancel_amount: i64,
        canceled_at: String,
    },
}

/// The open ledger file, held exclusively by this process.
#[derive(Debug, Clone)]
pub struct LedgerFile {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    file: File,
    /// Bytes of whole records in the file: where the next one starts.
    len: u64,
    /// A failed append could not be undone: the file's tail is unknown, so nothing more is
    /// appended (every change answers 500) until a restart replays it.
    poisoned: bool,
}

impl LedgerFile {
    /// Opens (or creates) the file, locks it and reads every record. A torn last line is cut off
    /// with a warning; a bad line before it is an error naming it.
    pub fn open(path: &Path) -> io::Result<(Self, Vec<Record>)> {
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(io::Error::other(
                    "the file is locked: another cafe-pg is serving this ledger",
                ));
            }
            Err(std::fs::TryLockError::Error(error)) => return Err(error),
        }
        if !existed {
            // The new file's directory entry must survive a crash too.
            sync_parent(path)?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (records, good_len, fix) = parse(&bytes)?;
        match fix {
            Fix::None => {}
            Fix::Truncate { torn } => {
                tracing::warn!(
                    ledger = %path.display(),
                    offset = good_len,
                    bytes = torn.len(),
                    torn = %String::from_utf8_lossy(&torn[..torn.len().min(200)]),
                    "ignoring a torn last line (a crash mid-write; it was never answered) and cutting it off"
                );
                file.set_len(good_len)?;
                file.sync_all()?;
            }
            Fix::AddNewline => {
                // A whole record whose newline did not make it: keep it, end its line.
                file.write_all(b"\n")?;
                file.sync_all()?;
            }
        }
        let len = file.metadata()?.len();
        Ok((
            Self {
                inner: Arc::new(Mutex::new(Inner {
                    file,
                    len,
                    poisoned: false,
                })),
            },
            records,
        ))
    }

    /// Appends `record` and fsyncs it; then, still in ledger order, runs `then` (which applies
    /// the record to the in-memory state). On an error the file is put back as it was and
    /// `then` is not run.
    pub async fn append<T: Send + 'static>(
        &self,
        record: &Record,
        then: impl FnOnce() -> T + Send + 'static,
    ) -> io::Result<T> {
        let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
        line.push(b'\n');
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = inner.lock().unwrap_or_else(|p| p.into_inner());
            let inner = &mut *guard;
            if inner.poisoned {
                return Err(io::Error::other(
                    "an earlier append failed and could not be undone; restart to replay the ledger",
                ));
            }
            let written = inner
                .file
                .write_all(&line)
                .and_then(|()| inner.file.sync_data());
            match written {
                Ok(()) => {
                    inner.len += line.len() as u64;
                    Ok(then())
                }
                Err(error) => {
                    let undone = inner
                        .file
                        .set_len(inner.len)
                        .and_then(|()| inner.file.sync_all());
                    if let Err(undo) = undone {
                        tracing::error!(%undo, "cannot undo a failed append; refusing further changes");
                        inner.poisoned = true;
                    }
                    Err(error)
                }
            }
        })
        .await
        .map_err(io::Error::other)?
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Fix {
    None,
    /// Cut the file to the end of the last good record; `torn` is what is cut.
    Truncate {
        torn: Vec<u8>,
    },
    /// The last record is whole but lacks its newline.
    AddNewline,
}

/// The records in `bytes`, the length of the part that holds them, and what to do to the tail.
fn parse(bytes: &[u8]) -> io::Result<(Vec<Record>, u64, Fix)> {
    let mut records = Vec::new();
    let mut start = 0;
    let mut line_number = 0;
    while start < bytes.len() {
        line_number += 1;
        let (end, next, terminated) = match bytes[start..].iter().position(|&b| b == b'\n') {
            Some(offset) => (start + offset, start + offset + 1, true),
            None => (bytes.len(), bytes.len(), false),
        };
        let line = &bytes[start..end];
        let is_last = next >= bytes.len();
        if line.iter().all(|b| b.is_ascii_whitespace()) && terminated {
            start = next;
            continue;
        }
        match serde_json::from_slice::<Record>(line) {
            Ok(record) => {
                records.push(record);
                if !terminated {
                    return Ok((records, bytes.len() as u64, Fix::AddNewline));
                }
            }
            Err(_) if is_last => {
                return Ok((
                    records,
                    start as u64,
                    Fix::Truncate {
                        torn: bytes[start..].to_vec(),
                    },
                ));
            }
            Err(error) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "line {line_number} is not a ledger record ({error}) and is not the last line: \
                         the file is corrupt; refusing to start rather than lose or invent payments"
                    ),
                ));
            }
        }
        start = next;
    }
    Ok((records, bytes.len() as u64, Fix::None))
}

fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charged(key: &str) -> String {
        serde_json::to_string(&Record::Charged {
            idempotency_key: key.into(),
            payment_key: format!("pk_{key}"),
            order_id: "o".into(),
            amount: 1,
            method: "CARD".into(),
            approved_at: "2024-01-01T00:00:00+09:00".into(),
        })
        .unwrap()
    }

    #[test]
    fn whole_lines_parse_and_a_torn_tail_is_cut() {
        let good = format!("{}\n{}\n", charged("a"), charged("b"));
        let (records, len, fix) = parse(good.as_bytes()).unwrap();
        assert_eq!((records.len(), len, fix), (2, good.len() as u64, Fix::None));

        let torn = format!("{good}{{\"type\":\"char");
        let (records, len, fix) = parse(torn.as_bytes()).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(len, good.len() as u64);
        assert_eq!(
            fix,
            Fix::Truncate {
                torn: b"{\"type\":\"char".to_vec()
            }
        );

        // Zeros left by a crash count as a torn tail too, newline or not.
        let zeros = format!("{good}\0\0\0\n");
        let (_, len, _) = parse(zeros.as_bytes()).unwrap();
        assert_eq!(len, good.len() as u64);

        let unterminated = format!("{good}{}", charged("c"));
        let (records, _, fix) = parse(unterminated.as_bytes()).unwrap();
        assert_eq!((records.len(), fix), (3, Fix::AddNewline));
    }

    #[test]
    fn a_bad_line_before_the_last_is_corruption() {
        let bad = format!("{}\nnot json\n{}\n", charged("a"), charged("b"));
        let error = parse(bad.as_bytes()).unwrap_err();
        assert!(error.to_string().contains("line 2"), "{error}");
    }
}
