//! The `{placeholder}` template language of the generic HTTP provider: `{to}`,
//! `{to_digits}`, `{text}`, `{from}`, `{secret}` and `{receipt_url}`, substituted in one pass; braces that do
//! not enclose a name stay as written. JSON bodies are templates in their string leaves.

use crate::domain::suggest::did_you_mean;

/// A name a template may substitute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// The recipient in E.164 (`+40721000002`).
    To,
    /// The recipient's digits without the `+` (`40721000002`).
    ToDigits,
    Text,
    From,
    Secret,
    /// Where the gateway may report the message's fate (`<public_url>/sms/receipt/<token>`);
    /// empty without an `http:` section or for a test send.
    ReceiptUrl,
}

impl Placeholder {
    pub(super) const ALL: [Placeholder; 6] = [
        Placeholder::To,
        Placeholder::ToDigits,
        Placeholder::Text,
        Placeholder::From,
        Placeholder::Secret,
        Placeholder::ReceiptUrl,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Placeholder::To => "to",
            Placeholder::ToDigits => "to_digits",
            Placeholder::Text => "text",
            Placeholder::From => "from",
            Placeholder::Secret => "secret",
            Placeholder::ReceiptUrl => "receipt_url",
        }
    }
}

/// The values substituted into templates for one message.
#[derive(Debug, Clone, Copy)]
pub struct TemplateVars<'a> {
    pub to: &'a str,
    pub text: &'a str,
    pub from: &'a str,
    pub secret: &'a str,
    pub receipt_url: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Piece {
    Literal(String),
    Var(Placeholder),
}

/// A string with `{name}` placeholders, parsed once at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(pub(super) Vec<Piece>);

impl Template {
    /// `{name}` (letters, digits, `_`) must be a known placeholder; other braces are literal.
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let name_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if name_len == 0 || !after[name_len..].starts_with('}') {
                lit.push_str(&rest[..=open]);
                rest = after;
                continue;
            }
            let name = &after[..name_len];
            let Some(p) = Placeholder::ALL.iter().find(|p| p.name() == name) else {
                let names: Vec<String> = Placeholder::ALL
                    .iter()
                    .map(|p| p.name().to_string())
                    .collect();
                let guess = did_you_mean(name, &names)
                    .map(|b| format!(" (did you mean `{{{b}}}`?)"))
                    .unwrap_or_default();
                return Err(format!("unknown placeholder `{{{name}}}`{guess}"));
            };
            lit.push_str(&rest[..open]);
            if lit.ends_with('{') && after[name_len + 1..].starts_with('}') {
                return Err(format!(
                    "write `{{{name}}}`, not `{{{{{name}}}}}`: placeholders take single braces"
                ));
            }
            if !lit.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut lit)));
            }
            pieces.push(Piece::Var(*p));
            rest = &after[name_len + 1..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            pieces.push(Piece::Literal(lit));
        }
        Ok(Template(pieces))
    }

    pub fn uses(&self, p: Placeholder) -> bool {
        self.0.contains(&Piece::Var(p))
    }

    /// Substitutes in one pass: a value that itself contains `{to}` stays as it is.
    pub fn render(&self, v: &TemplateVars) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Literal(s) => out.push_str(s),
                Piece::Var(Placeholder::To) => out.push_str(v.to),
                Piece::Var(Placeholder::ToDigits) => out.push_str(v.to.trim_start_matches('+')),
                Piece::Var(Placeholder::Text) => out.push_str(v.text),
                Piece::Var(Placeholder::From) => out.push_str(v.from),
                Piece::Var(Placeholder::Secret) => out.push_str(v.secret),
                Piece::Var(Placeholder::ReceiptUrl) => out.push_str(v.receipt_url),
            }
        }
        out
    }
}

/// A JSON body whose string leaves are templates; rendered into a `serde_json::Value`, so
/// quotes, backslashes, newlines and non-ASCII text are escaped by serde_json.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonTemplate {
    /// null, booleans and numbers, as written.
    Scalar(serde_json::Value),
    String(Template),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

impl JsonTemplate {
    /// Errors carry the JSON path of the bad string (`messages.0.to`).
    pub(super) fn parse(v: &serde_json::Value, at: &str) -> Result<JsonTemplate, String> {
        let join = |k: &str| {
            if at.is_empty() {
                k.to_string()
            } else {
                format!("{at}.{k}")
            }
        };
        Ok(match v {
            serde_json::Value::String(s) => JsonTemplate::String(
                Template::parse(s).map_err(|e| format!("json `{}`: {e}", at_or_root(at)))?,
            ),
            serde_json::Value::Array(a) => JsonTemplate::Array(
                a.iter()
                    .enumerate()
                    .map(|(i, x)| JsonTemplate::parse(x, &join(&i.to_string())))
                    .collect::<Result<_, _>>()?,
            ),
            serde_json::Value::Object(o) => JsonTemplate::Object(
                o.iter()
                    .map(|(k, x)| Ok((k.clone(), JsonTemplate::parse(x, &join(k))?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => JsonTemplate::Scalar(other.clone()),
        })
    }

    pub fn render(&self, v: &TemplateVars) -> serde_json::Value {
        match self {
            JsonTemplate::Scalar(x) => x.clone(),
            JsonTemplate::String(t) => serde_json::Value::String(t.render(v)),
            JsonTemplate::Array(a) => a.iter().map(|x| x.render(v)).collect(),
            JsonTemplate::Object(o) => {
                serde_json::Value::Object(o.iter().map(|(k, x)| (k.clone(), x.render(v))).collect())
            }
        }
    }

    pub(super) fn uses(&self, p: Placeholder) -> bool {
        match self {
            JsonTemplate::Scalar(_) => false,
            JsonTemplate::String(t) => t.uses(p),
            JsonTemplate::Array(a) => a.iter().any(|x| x.uses(p)),
            JsonTemplate::Object(o) => o.iter().any(|(_, x)| x.uses(p)),
        }
    }

    /// Object keys, everywhere in the tree, with the template under each.
    pub(super) fn fields(&self, out: &mut Vec<(String, JsonTemplate)>) {
        match self {
            JsonTemplate::Array(a) => a.iter().for_each(|x| x.fields(out)),
            JsonTemplate::Object(o) => {
                for (k, x) in o {
                    out.push((k.clone(), x.clone()));
                    x.fields(out);
                }
            }
            _ => {}
        }
    }
}

fn at_or_root(at: &str) -> &str {
    if at.is_empty() { "(root)" } else { at }
}
