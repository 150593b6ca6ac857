//! Holiday calendars: `config/calendars/<id>.yaml` → [`Calendar`] values, and the pure date
//! arithmetic behind them (fixed dates, nth/last weekday of a month, Western and Orthodox
//! Easter ± N days, dates decreed year by year).
//!
//! This module owns *which day a holiday falls on in a given year*; it knows nothing of
//! rituals, customers' consent or the clock (a year is always an argument).
//!
//! - `rule`: the [`Rule`] enum, [`Rule::date_in`] and the rule-string parser;
//! - `easter`: the Gregorian and Julian computuses;

mod easter;
mod rule;

pub use rule::{Computus, Ordinal, RULE_FORMS, Rule, RuleError, parse as parse_rule};
