//! Provider rate limits shared by the daemons on one PostgreSQL database (`rate_limits`, one
//! row per provider): each message counts against the day's quota and takes the next
//! `per_second` slot in one statement, on the database's clock so that daemons on machines
//! whose clocks disagree still pace as one.

use super::{Store, StoreError};

/// What [`Store::take_rate_slot`] gave one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateSlot {
    /// Counted; its slot comes this long from now (zero: at once).
    Wait(std::time::Duration),
    /// Today's quota is spent: nothing was counted or reserved.
    Spent,
}

impl Store {
    /// Counts one message of `provider` against `per_day` on UTC `day` and reserves its slot
    /// `interval` after the previous one (zero: no pacing; kept to the microsecond). A day the row has not seen yet
    /// starts from `seed` (what the ledger says was sent that day before the row counted). A
    /// daemon whose clock is still on the previous day counts against the newer one.
    ///
    /// PostgreSQL only: on SQLite the one daemon of a file keeps its limits in its process.
    pub async fn take_rate_slot(
        &self,
        provider: &str,
        day: i64,
        seed: u64,
        per_day: Option<u64>,
        interval: std::time::Duration,
    ) -> Result<RateSlot, StoreError> {
        if !self.is_postgres() {
            return Err(StoreError::NeedsPostgres(
                "sharing rate limits between daemons",
            ));
        }
        let max = per_day.map_or(i64::MAX, |m| m.min(i64::MAX as u64) as i64);
        let first = (seed.min(i64::MAX as u64 - 1) as i64) + 1;
        let interval_us = interval.as_micros().min(i64::MAX as u128) as i64;
        let row = self
            .one(
                "WITH c AS (SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT AS now_us), \
                 u AS ( \
                   INSERT INTO rate_limits AS r (provider, day, used, next_at_us) \
                   SELECT $1, $2, $3, c.now_us + $5 FROM c WHERE $3 <= $4 \
                   ON CONFLICT (provider) DO UPDATE SET \
                     used = CASE WHEN EXCLUDED.day > r.day THEN EXCLUDED.used ELSE r.used + 1 END, \
                     day = GREATEST(r.day, EXCLUDED.day), \
                     next_at_us = GREATEST(r.next_at_us, EXCLUDED.next_at_us - $5) + $5 \
                   WHERE EXCLUDED.day > r.day OR r.used < $4 \
                   RETURNING r.next_at_us \
                 ) \
                 SELECT u.next_at_us - $5 - c.now_us AS wait_us FROM u, c",
                vec![
                    provider.into(),
                    day.into(),
                    first.into(),
                    max.into(),
                    interval_us.into(),
                ],
            )
            .await?;
        Ok(match row {
            Some(r) => {
                let us = r.try_get::<i64>("", "wait_us")?.max(0);
                RateSlot::Wait(std::time::Duration::from_micros(us as u64))
            }
            None => RateSlot::Spent,
        })
    }
}
