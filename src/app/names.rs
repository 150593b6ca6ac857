//! The names commands take — rituals, opt-out scopes and categories, holidays, channels —
//! checked against what is loaded, with a did-you-mean. A typo is an error (exit 2), never a
//! silent no-op: `optout X12 --scope category:mothers_dya` used to print "opted out of …" and
//! record a scope that matches nothing.

use std::collections::BTreeSet;

use crate::config::Config;
use crate::domain::suggest::did_you_mean;
use crate::ritual::{Ritual, Trigger};

use super::AppError;

/// The names a config defines: rituals and the opt-out categories they can send under.
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub rituals: BTreeSet<String>,
    /// Every category a message can carry, and each parent (`holidays` for `holidays.easter`).
    pub categories: BTreeSet<String>,
}

impl Known {
    /// From the rituals and calendars of `cfg`, without templates: an opt-out must not wait for
    /// a template to be fixed. Rituals or calendars that do not load are an error.
    pub fn load(cfg: &Config) -> Result<Known, AppError> {
        let rituals = crate::ritual::load_rituals(&cfg.rituals_dir)?;
        let holidays: Vec<String> = if cfg.calendars_dir.is_dir() {
            crate::calendar::load_calendars(&cfg.calendars_dir)?
                .values()
                .flat_map(|c| c.holidays.iter().map(|h| h.id.clone()))
                .collect()
        } else {
            Vec::new()
        };
        Ok(Known::from_parts(&rituals, &holidays))
    }

    pub fn from_parts(rituals: &[Ritual], holidays: &[String]) -> Known {
        let mut k = Known::default();
        let mut add = |cat: String| {
            let mut c = cat.as_str();
            k.categories.insert(c.to_string());
            while let Some(i) = c.rfind('.') {
                c = &c[..i];
                k.categories.insert(c.to_string());
            }
        };
        for r in rituals {
            match (&r.trigger, &r.category) {
                (Trigger::Holiday { ids, .. }, None) => {
                    for id in ids.iter().chain(holidays) {
                        add(r.category_for(Some(id)));
                    }
                }
                _ => add(r.category_for(None)),
            }
        }
        k.rituals = rituals.iter().map(|r| r.name.clone()).collect();
        k
    }

    /// `name` is a ritual, or an error naming the closest one and the list.
    pub fn ritual(&self, name: &str) -> Result<(), AppError> {
        check("ritual", name, &self.rituals, "")
    }

    /// An opt-out scope: `all`, `channel:email|sms`, `ritual:<known>`, `category:<known>`.
    pub fn scope(&self, scope: &str) -> Result<(), AppError> {
        const FORMS: &str = "all, channel:email, channel:sms, ritual:<name> or category:<name>";
        if scope == "all" {
            return Ok(());
        }
        match scope.split_once(':') {
            Some(("channel", ch)) => {
                let channels: BTreeSet<String> = ["email".into(), "sms".into()].into();
                check("channel", ch, &channels, "channel:")
            }
            Some(("ritual", r)) => check("ritual", r, &self.rituals, "ritual:"),
            Some(("category", c)) => check("category", c, &self.categories, "category:"),
            _ => {
                let forms: Vec<String> = ["all", "channel:email", "channel:sms"]
                    .iter()
                    .map(|s| s.to_string())
                    .chain(self.rituals.iter().map(|r| format!("ritual:{r}")))
                    .chain(self.categories.iter().map(|c| format!("category:{c}")))
                    .collect();
                let hint = match did_you_mean(scope, &forms) {
                    Some(best) => format!("did you mean `{best}`? "),
                    None => String::new(),
                };
                Err(AppError::Other(format!(
                    "invalid scope `{scope}`: {hint}use {FORMS}"
                )))
            }
        }
    }
}

fn check(kind: &str, name: &str, known: &BTreeSet<String>, prefix: &str) -> Result<(), AppError> {
    if known.contains(name) {
        return Ok(());
    }
    let list: Vec<String> = known.iter().cloned().collect();
    let hint = match did_you_mean(name, &list) {
        Some(best) => format!("did you mean `{prefix}{best}`? "),
        None => String::new(),
    };
    let known_list = if list.is_empty() {
        "none is defined".to_string()
    } else {
        list.join(", ")
    };
    Err(AppError::Other(format!(
        "unknown {kind} `{name}`: {hint}known {kind}s: {known_list}"
    )))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn ritual(name: &str, yaml: &str) -> Ritual {
        crate::ritual::parse_ritual(Path::new(&format!("{name}.yaml")), yaml)
            .unwrap()
            .unwrap()
    }

    fn known() -> Known {
        let birthday = ritual(
            "birthday",
            "trigger:\n  yearly:\n    date: birthday\nsend_time: \"10:00\"\nchannels: [email]\ntemplate: b\n",
        );
        let holidays = ritual(
            "holidays",
            "trigger:\n  holiday:\n    ids: [mothers_day, easter]\nsend_time: \"10:00\"\nchannels: [email]\ntemplate: h\n",
        );
        let digest = ritual(
            "digest",
            "category: news.digest\ntrigger:\n  schedule:\n    cron: \"0 10 1 * *\"\nchannels: [email]\ntemplate: d\n",
        );
        Known::from_parts(&[birthday, holidays, digest], &["new_year".into()])
    }

    #[test]
    fn known_scopes_pass() {
        let k = known();
        for ok in [
            "all",
            "channel:email",
            "channel:sms",
            "ritual:birthday",
            "category:birthday",
            "category:holidays",
            "category:holidays.mothers_day",
            "category:holidays.new_year",
            "category:news",
            "category:news.digest",
        ] {
            k.scope(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn a_typo_in_a_scope_is_refused_with_a_did_you_mean() {
        // #24: these printed "opted out of …", exited 0 and did nothing.
        let k = known();
        let e = k
            .scope("category:holidays.mothers_dya")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown category `holidays.mothers_dya`")
                && e.contains("did you mean `category:holidays.mothers_day`?"),
            "{e}"
        );
        let e = k.scope("ritual:nope").unwrap_err().to_string();
        assert!(
            e.contains("unknown ritual `nope`")
                && e.contains("known rituals: birthday, digest, holidays"),
            "{e}"
        );
        let e = k.scope("channel:emial").unwrap_err().to_string();
        assert!(e.contains("did you mean `channel:email`?"), "{e}");
        let e = k.scope("ritaul:birthday").unwrap_err().to_string();
        assert!(
            e.contains("invalid scope") && e.contains("did you mean `ritual:birthday`?"),
            "{e}"
        );
        let e = k.ritual("birthdya").unwrap_err().to_string();
        assert!(e.contains("did you mean `birthday`?"), "{e}");
    }
}
