//! `ritualist check`: every mistake in the config, the rituals and the templates, with file,
//! line and a hint — then every ritual rendered for every locale and channel against sample
//! customers (one with every optional field missing), and SMS lengths. Sends nothing.

use std::path::Path;

use super::Definitions;
use super::message::{compose, sample_customers, sample_occasion};
use crate::config::{Config, Diagnostic, Diagnostics};
use crate::domain::Locale;
use crate::render::SmsEncoding;

/// Validates everything reachable from the config file. Never touches the database.
pub fn check(config_path: &Path) -> Diagnostics {
    let cfg = match Config::load(config_path) {
        Ok(c) => c,
        Err(d) => return d,
    };
    let dkim = super::dkim_signer(&cfg).err();
    let defs = match Definitions::load(&cfg) {
        Ok(d) => d,
        Err(mut d) => {
            d.extend(dkim.unwrap_or_default());
            return d;
        }
    };
    let mut diags = render_samples(&cfg, &defs);
    for d in super::overlap::overlaps(&defs.rituals) {
        diags.push(d);
    }
    missing_labels(&defs, &mut diags);
    diags.extend(dkim.unwrap_or_default());
    diags
}

fn render_samples(cfg: &Config, defs: &Definitions) -> Diagnostics {
    let mut diags = Diagnostics::default();
    let key = b"check";
    for ritual in &defs.rituals {
        let mut locales = defs.templates.locales(&ritual.template);
        if locales.is_empty() {
            locales.push(cfg.defaults.locale.to_string());
        }
        for locale in locales {
            let Ok(loc) = Locale::parse(&locale) else {
                continue;
            };
            for mut c in sample_customers(cfg) {
                c.locale = loc.clone();
                let occasion = sample_occasion(Some(ritual), c.external_id == "sample-full");
                for channel in &ritual.channels {
                    match compose(cfg, &defs.templates, key, ritual, &c, &occasion, "2027", *channel, 1_800_000_000) {
                        Ok(m) => {
                            if let Some(len) = m.sms
                                && c.external_id == "sample-full"
                            {
                                let file = cfg.templates_dir.join(&ritual.template).join(&m.locale).join("sms.hbs");
                                let enc = match len.encoding {
                                    SmsEncoding::Gsm7 => "GSM-7: 160 per SMS, 153 per part",
                                    SmsEncoding::Ucs2 => "UCS-2 (Cyrillic or diacritics): 70 per SMS, 67 per part",
                                };
                                let what = format!(
                                    "the `{locale}` SMS of `{}` costs {} segment(s): {} units, {enc}",
                                    ritual.name, len.segments, len.units
                                );
                                if len.segments as u32 > ritual.sms_max_segments {
                                    diags.push(
                                        Diagnostic::warning(&file, 1, 1, format!("{what}; the ritual allows {}", ritual.sms_max_segments))
                                            .with_hint("shorten the text, or avoid characters outside GSM-7 to get 160 per segment; or raise `sms_max_segments`"),
                                    );
                                } else {
                                    diags.push(Diagnostic::note(&file, what));
                                }
                            }
                        }
                        Err(e) => diags.push(
                            Diagnostic::error(&ritual.source, ritual.template_line, 1, format!(
                                "`{}` cannot be rendered in `{locale}` on {channel} for the sample customer `{}`: {e}",
                                ritual.name, c.external_id
                            ))
                            .with_hint("a variable may be missing for some customers: use {{#if …}} or {{default value \"fallback\"}}"),
                        ),
                    }
                }
            }
        }
    }
    diags
}

/// A ritual with templates in a language but no `label` in it: its topic on the preference
/// and unsubscribe pages would fall back to another language.
fn missing_labels(defs: &Definitions, diags: &mut Diagnostics) {
    for ritual in &defs.rituals {
        let missing: Vec<String> = defs
            .templates
            .locales(&ritual.template)
            .into_iter()
            .filter(|l| ritual.label(l).is_none())
            .collect();
        if missing.is_empty() {
            continue;
        }
        let example = missing
            .iter()
            .map(|l| format!("{l}: …"))
            .collect::<Vec<_>>()
            .join(", ");
        diags.push(
            Diagnostic::warning(
                &ritual.source,
                ritual.label_line,
                1,
                format!(
                    "`{}` has templates in {} but no label there: its preference and unsubscribe pages would name it in another language",
                    ritual.name,
                    missing
                        .iter()
                        .map(|l| format!("`{l}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .with_hint(format!(
                "add what customers read for these messages: `label: {{ {example} }}`"
            )),
        );
    }
}
