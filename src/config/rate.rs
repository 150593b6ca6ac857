//! `rate:` on a provider (`{ per_second, per_day }`): the YAML shape and its validation.

use std::path::Path;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::diagnostic::{Diagnostic, Diagnostics};

/// `rate: { per_second: 10, per_day: 50000 }` on a provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RateSpec {
    per_second: Option<f64>,
    per_day: Option<u64>,
}

/// A provider's limits: messages per second (evenly paced) and per UTC day.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RateLimit {
    pub per_second: Option<f64>,
    pub per_day: Option<u64>,
}

impl RateLimit {
    pub fn is_limited(&self) -> bool {
        self.per_second.is_some() || self.per_day.is_some()
    }
}

/// Validates a `rate:` section.
pub(super) fn rate_limit(
    path: &Path,
    spec: Option<&Spanned<RateSpec>>,
    diags: &mut Diagnostics,
) -> RateLimit {
    let Some(r) = spec else {
        return RateLimit::default();
    };
    let per_second = r.value.per_second.filter(|v| {
        let ok = v.is_finite() && *v > 0.0 && *v <= 100_000.0;
        if !ok {
            diags.push(
                Diagnostic::at(path, &r.referenced, format!("rate.per_second {v} is not a rate"))
                    .with_hint("a number of messages per second above 0, e.g. 14 (fractions work: 0.5 is one every 2 s)"),
            );
        }
        ok
    });
    let per_day = r.value.per_day.filter(|v| {
        if *v == 0 {
            diags.push(
                Diagnostic::at(
                    path,
                    &r.referenced,
                    "rate.per_day is 0: nothing could be sent",
                )
                .with_hint("leave it out for no daily limit"),
            );
        }
        *v > 0
    });
    RateLimit {
        per_second,
        per_day,
    }
}
