//! The one place where a delivery's channel and status become text and back: the ledger
//! stores them as `TEXT` (`deliveries.channel`, `deliveries.status`, `channel_pauses.channel`),
//! everything above the store handles [`Channel`] and [`Status`].
//!
//! SQL text names a status through [`Status::sql`] (a quoted literal, so the statement text
//! and its query plan are what they were when the literals were written by hand); values are
//! bound through the `From<…> for Value` impls; read columns are decoded by [`channel_at`] and
//! [`status_at`], which refuse a value no version of ritualist writes.

use std::fmt;
use std::str::FromStr;

use sea_orm::{QueryResult, Value};

use super::StoreError;
use super::ledger::Status;
use crate::domain::Channel;

/// The ledger's `channel` of a decision that has none (suppressed before a channel was
/// chosen: no contact at all, an opt-out of everything).
pub const NO_CHANNEL: &str = "none";

impl Status {
    /// Every status, in lifecycle order (how `ritualist outbox` lists them).
    pub const ALL: [Status; 9] = [
        Status::Pending,
        Status::Claimed,
        Status::RetryWait,
        Status::Sending,
        Status::InDoubt,
        Status::Sent,
        Status::Failed,
        Status::Suppressed,
        Status::Cancelled,
    ];

    /// The text stored in `deliveries.status`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Claimed => "claimed",
            Status::Sending => "sending",
            Status::InDoubt => "in_doubt",
            Status::RetryWait => "retry_wait",
            Status::Sent => "sent",
            Status::Failed => "failed",
            Status::Suppressed => "suppressed",
            Status::Cancelled => "cancelled",
        }
    }

    /// The status as an SQL string literal (`'pending'`), for statement text.
    pub(crate) const fn sql(self) -> &'static str {
        match self {
            Status::Pending => "'pending'",
            Status::Claimed => "'claimed'",
            Status::Sending => "'sending'",
            Status::InDoubt => "'in_doubt'",
            Status::RetryWait => "'retry_wait'",
            Status::Sent => "'sent'",
            Status::Failed => "'failed'",
            Status::Suppressed => "'suppressed'",
            Status::Cancelled => "'cancelled'",
        }
    }

    /// `'a', 'b'`: the statuses as an SQL list, for `status IN (…)`.
    pub(crate) fn sql_list(statuses: &[Status]) -> String {
        statuses
            .iter()
            .map(|s| s.sql())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The statuses as SQL literals, for statement text (`format!("… status = {PENDING} …")`).
pub(crate) mod sql {
    use super::Status;

    pub const PENDING: &str = Status::Pending.sql();
    pub const CLAIMED: &str = Status::Claimed.sql();
    pub const SENDING: &str = Status::Sending.sql();
    pub const IN_DOUBT: &str = Status::InDoubt.sql();
    pub const RETRY_WAIT: &str = Status::RetryWait.sql();
    pub const SENT: &str = Status::Sent.sql();
    pub const FAILED: &str = Status::Failed.sql();
    pub const SUPPRESSED: &str = Status::Suppressed.sql();
    pub const CANCELLED: &str = Status::Cancelled.sql();
    /// The statuses of a row under a worker's lease: `'claimed', 'sending'`.
    pub const LEASED: &str = "'claimed', 'sending'";
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Status {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown delivery status `{s}`")))
    }
}

impl serde::Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Compares with the stored text (`row.status == "sent"` in tests and reports).
impl PartialEq<&str> for Status {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl From<Status> for Value {
    fn from(s: Status) -> Value {
        Value::from(s.as_str())
    }
}

impl From<Channel> for Value {
    fn from(c: Channel) -> Value {
        Value::from(c.as_str())
    }
}

/// The channel stored in column `col` of `r`.
pub(crate) fn channel_at(r: &QueryResult, col: &str) -> Result<Channel, StoreError> {
    let text: String = r.try_get("", col)?;
    channel_of(&text)
}

/// The channel a ledger text names (exactly as [`Channel::as_str`] writes it).
pub fn channel_of(text: &str) -> Result<Channel, StoreError> {
    Channel::from_code(text)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown delivery channel `{text}`")))
}

/// The status stored in column `col` of `r`.
pub(crate) fn status_at(r: &QueryResult, col: &str) -> Result<Status, StoreError> {
    let text: String = r.try_get("", col)?;
    text.parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>().unwrap(), s);
            assert_eq!(s.sql(), format!("'{}'", s.as_str()));
        }
        for c in Channel::ALL {
            assert_eq!(channel_of(c.as_str()).unwrap(), c);
        }
        assert!("mail".parse::<Status>().is_err());
        assert!(channel_of("mail").is_err());
        assert!(channel_of(NO_CHANNEL).is_err());
        assert_eq!(
            sql::LEASED,
            Status::sql_list(&[Status::Claimed, Status::Sending])
        );
    }
}
