//! What `/metrics` reads from the ledger: rows per ritual, channel, status and reason (one
//! grouped scan; the ledger is the source of truth, so every process scraping it agrees).

use super::codes::status_at;
use super::ledger::Status;
use super::{Store, StoreError};

/// Ledger rows sharing a ritual, channel, status and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerCount {
    pub ritual: String,
    /// The channel's name, `none` for a decision that has none.
    pub channel: String,
    pub status: Status,
    /// Empty when the row has none.
    pub reason: String,
    pub n: i64,
}

impl Store {
    /// Every (ritual, channel, status, reason) group of the ledger with its row count, sorted.
    pub async fn ledger_counts(&self) -> Result<Vec<LedgerCount>, StoreError> {
        let rows = self
            .all(
                "SELECT ritual, channel, status, COALESCE(reason, '') AS reason, COUNT(*) AS n FROM deliveries \
                 GROUP BY ritual, channel, status, COALESCE(reason, '') ORDER BY ritual, channel, status, reason",
                vec![],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(LedgerCount {
                    ritual: r.try_get("", "ritual")?,
                    channel: r.try_get("", "channel")?,
                    status: status_at(r, "status")?,
                    reason: r.try_get("", "reason")?,
                    n: r.try_get("", "n")?,
                })
            })
            .collect()
    }
}
