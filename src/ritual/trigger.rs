//! `trigger:` of a ritual file: the YAML shape ([`TriggerSpec`], one optional section per kind)
//! becomes a [`TriggerKind`] (exactly one kind, or an error), which compiles into a
//! [`Trigger`], one function per kind.

use std::path::Path;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::schedule::{self, CronSchedule};
use super::{Trigger, YearlyField, valid_name};
use crate::config::{Diagnostic, Diagnostics};
use crate::domain::Feb29Policy;

/// `trigger:` as written: one section per kind, exactly one of them given.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TriggerSpec {
    yearly: Option<Spanned<YearlySpec>>,
    holiday: Option<Spanned<HolidaySpec>>,
    schedule: Option<Spanned<ScheduleSpec>>,
    inactivity: Option<Spanned<InactivitySpec>>,
    order: Option<Spanned<OrderSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct YearlySpec {
    date: Option<Spanned<String>>,
    custom: Option<Spanned<String>>,
    offset_days: Option<Spanned<i32>>,
    milestones: Option<Spanned<Vec<i16>>>,
    feb29: Option<Feb29Policy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HolidaySpec {
    ids: Spanned<Vec<Spanned<String>>>,
    offset_days: Option<Spanned<i32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleSpec {
    cron: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InactivitySpec {
    days: Spanned<Vec<i32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderSpec {
    delay_days: Option<Spanned<i32>>,
    every_nth: Option<Spanned<u32>>,
}

/// The one kind a `trigger:` names.
#[derive(Debug)]
enum TriggerKind<'a> {
    Yearly(&'a Spanned<YearlySpec>),
    Holiday(&'a Spanned<HolidaySpec>),
    Schedule(&'a Spanned<ScheduleSpec>),
    Inactivity(&'a Spanned<InactivitySpec>),
    Order(&'a Spanned<OrderSpec>),
}

impl TriggerSpec {
    /// The kind written, or the error: none, or more than one.
    fn kind(&self) -> Result<TriggerKind<'_>, &'static str> {
        let mut kinds: Vec<TriggerKind> = [
            self.yearly.as_ref().map(TriggerKind::Yearly),
            self.holiday.as_ref().map(TriggerKind::Holiday),
            self.schedule.as_ref().map(TriggerKind::Schedule),
            self.inactivity.as_ref().map(TriggerKind::Inactivity),
            self.order.as_ref().map(TriggerKind::Order),
        ]
        .into_iter()
        .flatten()
        .collect();
        match kinds.len() {
            0 => Err("the trigger names no kind"),
            1 => Ok(kinds.remove(0)),
            _ => Err("the trigger names more than one kind"),
        }
    }
}

const TRIGGER_HINT: &str = "one of: yearly: { date: birthday }, holiday: { ids: [mothers_day] }, \
     schedule: { cron: \"0 10 1 * *\" }, inactivity: { days: [45, 90] }, order: { delay_days: 0 }";

/// Compiles `trigger:`; `send_time_given` is the ritual's `send_time:` (some kinds ignore it,
/// which is worth a warning).
pub(super) fn compile_trigger(
    file: &Path,
    spec: &Spanned<TriggerSpec>,
    send_time_given: Option<&Spanned<String>>,
    diags: &mut Diagnostics,
) -> Option<Trigger> {
    match spec.value.kind() {
        Err(msg) => {
            diags.push(Diagnostic::at(file, &spec.referenced, msg).with_hint(TRIGGER_HINT));
            None
        }
        Ok(TriggerKind::Yearly(y)) => yearly(file, y, diags),
        Ok(TriggerKind::Holiday(h)) => Some(holiday(file, &h.value, diags)),
        Ok(TriggerKind::Schedule(s)) => schedule(file, &s.value, send_time_given, diags),
        Ok(TriggerKind::Inactivity(i)) => inactivity(file, &i.value, diags),
        Ok(TriggerKind::Order(o)) => Some(order(file, &o.value, send_time_given, diags)),
    }
}

/// `offset_days`: at most a year either way (0 when out of range or not given).
fn offset(file: &Path, o: &Option<Spanned<i32>>, diags: &mut Diagnostics) -> i32 {
    match o {
        Some(o) if o.value.abs() > 366 => {
            diags.push(
                Diagnostic::at(
                    file,
                    &o.referenced,
                    format!("offset_days {} is more than a year", o.value),
                )
                .with_hint(
                    "a negative number of days before the date (-3), a positive one after it",
                ),
            );
            0
        }
        Some(o) => o.value,
        None => 0,
    }
}

/// `yearly:`: one of the customer's dates (`date:` or `custom:`), milestones, an offset.
fn yearly(file: &Path, y: &Spanned<YearlySpec>, diags: &mut Diagnostics) -> Option<Trigger> {
    let y_val = &y.value;
    let date = match (&y_val.date, &y_val.custom) {
        (Some(d), None) => match d.value.as_str() {
            "birthday" => Some(YearlyField::Birthday),
            "signup" => Some(YearlyField::Signup),
            "first_purchase" => Some(YearlyField::FirstPurchase),
            other => {
                diags.push(
                        Diagnostic::at(file, &d.referenced, format!("unknown yearly date `{other}`"))
                            .with_hint(format!(
                                "`date:` is birthday, signup or first_purchase; for a `date:{other}` column of the customer import write `custom: {other}`"
                            )),
                    );
                None
            }
        },
        (None, Some(c)) => {
            if valid_name(&c.value) {
                Some(YearlyField::Custom(c.value.clone()))
            } else {
                diags.push(
                        Diagnostic::at(file, &c.referenced, format!("invalid custom date name `{}`", c.value))
                            .with_hint("the name after `date:` in the import column, e.g. `custom: wedding` for `date:wedding`"),
                    );
                None
            }
        }
        _ => {
            diags.push(
                Diagnostic::at(
                    file,
                    &y.referenced,
                    "a yearly trigger needs exactly one of `date:` and `custom:`",
                )
                .with_hint("yearly: { date: birthday } or yearly: { custom: wedding }"),
            );
            None
        }
    };
    let milestones = match &y_val.milestones {
        None => None,
        Some(m) => {
            if m.value.is_empty() || m.value.iter().any(|n| *n < 0) {
                diags.push(
                    Diagnostic::at(
                        file,
                        &m.referenced,
                        "milestones must be a non-empty list of years",
                    )
                    .with_hint(
                        "milestones: [1, 5, 10] sends on the 1st, 5th and 10th anniversary only",
                    ),
                );
            }
            let mut v = m.value.clone();
            v.sort_unstable();
            v.dedup();
            Some(v)
        }
    };
    let offset_days = offset(file, &y_val.offset_days, diags);
    date.map(|date| Trigger::Yearly {
        date,
        offset_days,
        milestones,
        feb29: y_val.feb29.unwrap_or_default(),
    })
}

/// `holiday:`: holiday ids of the customer's calendar, with an offset.
fn holiday(file: &Path, h: &HolidaySpec, diags: &mut Diagnostics) -> Trigger {
    let mut ids = Vec::new();
    for id in &h.ids.value {
        if !valid_name(&id.value) {
            diags.push(
                Diagnostic::at(
                    file,
                    &id.referenced,
                    format!("invalid holiday id `{}`", id.value),
                )
                .with_hint("holiday ids are the keys of config/calendars/*.yaml, e.g. mothers_day"),
            );
        }
        ids.push(id.value.clone());
    }
    if ids.is_empty() {
        diags.push(
            Diagnostic::at(file, &h.ids.referenced, "no holidays listed").with_hint(
                "holiday: { ids: [mothers_day] }; `ritualist calendar ro` lists the ids",
            ),
        );
    }
    let offset_days = offset(file, &h.offset_days, diags);
    Trigger::Holiday { ids, offset_days }
}

/// `schedule:`: a cron expression (which carries its own time: `send_time` is ignored).
fn schedule(
    file: &Path,
    s: &ScheduleSpec,
    send_time_given: Option<&Spanned<String>>,
    diags: &mut Diagnostics,
) -> Option<Trigger> {
    if let Some(st) = send_time_given {
        diags.push(
            Diagnostic::at(
                file,
                &st.referenced,
                "send_time has no effect on a schedule",
            )
            .with_hint("the time is part of the cron expression: `0 10 1 * *` is 10:00 on the 1st"),
        );
    }
    match CronSchedule::parse(&s.cron.value) {
        Ok(cron) => Some(Trigger::Schedule { cron }),
        Err(e) => {
            let msg = match &e {
                schedule::ScheduleError::FieldCount { expr, found, .. } => {
                    format!("schedule `{expr}` has {found} fields")
                }
                schedule::ScheduleError::Field {
                    field,
                    token,
                    problem,
                    ..
                } => format!("{field} field: `{token}` {problem}"),
            };
            diags.push(Diagnostic::at(file, &s.cron.referenced, msg).with_hint(e.hint()));
            None
        }
    }
}

/// `inactivity:`: days without an order, positive and increasing.
fn inactivity(file: &Path, i: &InactivitySpec, diags: &mut Diagnostics) -> Option<Trigger> {
    let days = i.days.value.clone();
    let increasing = days.windows(2).all(|w| w[0] < w[1]);
    if days.is_empty() || days.iter().any(|d| *d <= 0) || !increasing {
        diags.push(
            Diagnostic::at(
                file,
                &i.days.referenced,
                "inactivity steps must be positive days in increasing order",
            )
            .with_hint("days: [45, 90] sends after 45 days without an order, then after 90"),
        );
        return None;
    }
    Some(Trigger::Inactivity { days })
}

/// `order:`: after an order, with a delay in days, every Nth order.
fn order(
    file: &Path,
    o: &OrderSpec,
    send_time_given: Option<&Spanned<String>>,
    diags: &mut Diagnostics,
) -> Trigger {
    let delay_days = match &o.delay_days {
        Some(d) if d.value < 0 || d.value > 366 => {
            diags.push(
                Diagnostic::at(
                    file,
                    &d.referenced,
                    format!("delay_days {} is out of range", d.value),
                )
                .with_hint("0 = right after the order; 7 = a week later at send_time"),
            );
            0
        }
        Some(d) => d.value,
        None => 0,
    };
    if delay_days == 0
        && let Some(st) = send_time_given
    {
        diags.push(
                Diagnostic::at(file, &st.referenced, "send_time has no effect with delay_days: 0")
                    .with_hint("a message with no delay goes right after the order; set delay_days to send on a later day at send_time"),
            );
    }
    let every_nth = match &o.every_nth {
        Some(n) if n.value == 0 => {
            diags.push(
                Diagnostic::at(file, &n.referenced, "every_nth must be at least 1")
                    .with_hint("every_nth: 5 rewards the 5th, 10th, 15th … order"),
            );
            1
        }
        Some(n) => n.value,
        None => 1,
    };
    Trigger::Order {
        delay_days,
        every_nth,
    }
}
