//! The ingest API's use cases (`POST /api/customers`, `POST /api/orders`): JSON items read by
//! the CSV import's own row parsers ([`crate::import::JsonReader`]), valid ones stored like an
//! import (upsert by external id; orders idempotent by their external id, the customers'
//! order facts refreshed, and `created_at` set so the next tick sees them as fresh), invalid
//! ones reported per field. Like the CSV import, a batch stores its valid items even when
//! others are rejected; a later item repeating an earlier one's external id is rejected. A
//! refused contact value (name, email, phone) leaves its item stored without it (a stored
//! value is kept), reported in `errors` as `left_out`; a normalised name in `warnings`.

use std::collections::HashMap;

use serde_json::Value;

use crate::import::{FieldError, FieldOutcome, ImportOptions, JsonReader, json_items};

use super::{App, AppError};

/// What one request did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IngestReport {
    /// Items stored (inserted + updated).
    pub accepted: u64,
    /// Items rejected (each has at least one `rejected` entry in `errors`).
    pub rejected: u64,
    pub inserted: u64,
    pub updated: u64,
    /// Per field: why an item was rejected, or why a value was left out of a stored item.
    pub errors: Vec<FieldError>,
    /// Per field: a value of a stored item that was normalised.
    pub warnings: Vec<FieldError>,
}

impl App {
    fn json_reader(&self) -> Result<JsonReader, AppError> {
        JsonReader::new(&ImportOptions {
            encoding: None,
            delimiter: None,
            default_country_code: self.cfg.defaults.country_code.clone(),
            default_locale: self.cfg.defaults.locale.to_string(),
            default_time_zone: self.cfg.defaults.time_zone.clone(),
        })
        .map_err(|e| AppError::Other(e.to_string()))
    }

    /// Upserts the customers of a request body (one object or an array).
    pub async fn ingest_customers(&self, body: &Value) -> Result<IngestReport, AppError> {
        let reader = self.json_reader()?;
        let mut report = IngestReport::default();
        let mut records = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (index, item) in json_items(body).into_iter().enumerate() {
            match reader.customer(index, item) {
                Ok((c, notes)) => match seen.get(&c.external_id) {
                    Some(first) => report.errors.push(duplicate(index, "external_id", *first)),
                    None => {
                        seen.insert(c.external_id.clone(), index);
                        records.push(c);
                        for n in notes {
                            match n.outcome {
                                FieldOutcome::Normalised => report.warnings.push(n),
                                FieldOutcome::LeftOut | FieldOutcome::Rejected => {
                                    report.errors.push(n)
                                }
                            }
                        }
                    }
                },
                Err(e) => report.errors.extend(e),
            }
        }
        let stubs: Vec<Vec<String>> = records
            .iter()
            .map(|c| self.stub_keys.matches_for(c))
            .collect();
        let now = self.clock.now().as_second();
        let stats = self
            .store
            .upsert_customers_checked(&records, &stubs, now)
            .await?;
        report.inserted = stats.inserted;
        report.updated = stats.updated;
        finish(&mut report);
        Ok(report)
    }

    /// Records the orders of a request body (one object or an array).
    pub async fn ingest_orders(&self, body: &Value) -> Result<IngestReport, AppError> {
        let reader = self.json_reader()?;
        let mut report = IngestReport::default();
        let mut records = Vec::new();
        let mut indexes = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (index, item) in json_items(body).into_iter().enumerate() {
            match reader.order(index, item) {
                Ok(o) => match seen.get(&o.external_id) {
                    Some(first) => report.errors.push(duplicate(index, "external_id", *first)),
                    None => {
                        seen.insert(o.external_id.clone(), index);
                        records.push(o);
                        indexes.push(index);
                    }
                },
                Err(e) => report.errors.extend(e),
            }
        }
        let now = self.clock.now().as_second();
        let (stats, unknown) = self.store.upsert_orders(&records, now).await?;
        for (i, message) in unknown {
            report.errors.push(FieldError {
                index: indexes[i],
                field: "customer".into(),
                message,
                hint: "POST the customer to /api/customers first".into(),
                outcome: FieldOutcome::Rejected,
            });
        }
        report.inserted = stats.inserted;
        report.updated = stats.updated;
        finish(&mut report);
        Ok(report)
    }
}

fn duplicate(index: usize, field: &str, first: usize) -> FieldError {
    FieldError {
        index,
        field: field.into(),
        message: format!("the same external id as item {first}; the first is kept"),
        hint: "send each customer or order once per request".into(),
        outcome: FieldOutcome::Rejected,
    }
}

fn finish(report: &mut IngestReport) {
    report.errors.sort_by_key(|e| e.index);
    report.warnings.sort_by_key(|e| e.index);
    let mut rejected: Vec<usize> = report
        .errors
        .iter()
        .filter(|e| e.outcome == FieldOutcome::Rejected)
        .map(|e| e.index)
        .collect();
    rejected.dedup();
    report.rejected = rejected.len() as u64;
    report.accepted = report.inserted + report.updated;
}
