//! The audit log: who changed what an administrator is answerable for, when, with the old and new values
//! (never a secret: callers record "a key was added", not the key).

use crate::db::{DbRow, on_pool, on_tx};
use crate::{Result, Store, StoreError, StoreTx, uuid_of};
use uuid::Uuid;

/// One change to record. `old_value` and `new_value` are what a reader needs to see what changed (JSON text
/// or a plain sentence), without any secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    /// The user name of who made the change (as it was then), or `cli` for the command line.
    pub actor: String,
    /// What was done, named by area: `powerbi.endpoints`, `powerbi.key.added`, `user.disabled`, …
    pub action: String,
    /// What it was done to: a registration's name, a user name.
    pub target: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: Uuid,
    pub at: i64,
    pub entry: NewAuditEntry,
}

/// Where a page of the log ends: the next page starts after it (older entries). Entries are ordered by a
/// sequence number, since several changes can land in the same second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditCursor {
    seq: i64,
    id: Uuid,
}

impl AuditCursor {
    /// `seq.id`, as it travels in a URL.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.seq, self.id)
    }

    pub fn parse(text: &str) -> Option<Self> {
        let (seq, id) = text.split_once('.')?;
        Some(Self { seq: seq.parse().ok()?, id: Uuid::parse_str(id).ok()? })
    }
}

pub(crate) async fn insert(tx: &mut StoreTx<'_>, entry: &NewAuditEntry, now: i64) -> Result<()> {
    // Two transactions at once may read the same MAX and share a number: the id breaks the tie.
    on_tx!(tx, |conn| {
        sqlx::query("INSERT INTO audit_log (id, seq, at, actor, action, target, old_value, new_value) VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM audit_log), $2, $3, $4, $5, $6, $7)")
            .bind(Uuid::new_v4().to_string())
            .bind(now)
            .bind(&entry.actor)
            .bind(&entry.action)
            .bind(&entry.target)
            .bind(entry.old_value.as_deref())
            .bind(entry.new_value.as_deref())
            .execute(&mut *conn)
            .await?;
    });
    Ok(())
}

impl Store {
    /// Records changes that stand alone (a change made in a transaction of its own records inside it).
    pub async fn record_audit(&self, entries: &[NewAuditEntry], now: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for entry in entries {
            insert(&mut tx, entry, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Up to `limit` entries, newest first, older than `after` when given; and the cursor of the next page
    /// when there may be more.
    pub async fn audit_entries(&self, after: Option<AuditCursor>, limit: u32) -> Result<(Vec<AuditEntry>, Option<AuditCursor>)> {
        let limit = i64::from(limit.clamp(1, 500));
        // Without a cursor: everything (no sequence number reaches i64::MAX, and "~" sorts after any UUID).
        let (seq, id) = after.map_or((i64::MAX, "~".to_owned()), |c| (c.seq, c.id.to_string()));
        let mut entries = on_pool!(&self.pool, |pool| {
            sqlx::query(
            "SELECT id, seq, at, actor, action, target, old_value, new_value FROM audit_log WHERE seq < $1 OR (seq = $1 AND id < $2) ORDER BY seq DESC, id DESC LIMIT $3",
        )
        .bind(seq)
        .bind(id)
        .bind(limit + 1)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.field::<i64>("seq")?,
                AuditEntry {
                    id: uuid_of(r, "id")?,
                    at: r.field("at")?,
                    entry: NewAuditEntry {
                        actor: r.field("actor")?,
                        action: r.field("action")?,
                        target: r.field("target")?,
                        old_value: r.field("old_value")?,
                        new_value: r.field("new_value")?,
                    },
                },
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?
        });
        let more = entries.len() as i64 > limit;
        entries.truncate(limit as usize);
        let next = more.then(|| entries.last().map(|(seq, e)| AuditCursor { seq: *seq, id: e.id })).flatten();
        Ok((entries.into_iter().map(|(_, e)| e).collect(), next))
    }
}
