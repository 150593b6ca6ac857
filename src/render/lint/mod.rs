//! Static checks for marketer-written Handlebars templates.
//!
//! Handlebars strict mode only complains about the branch that actually ran,
//! so a typo inside `{{#if}}` or `{{else}}` can reach customers. [`lint`]
//! parses a template with the same parser the renderer uses and walks every
//! element in every branch (block bodies, `{{else}}` and `{{else if}}` arms,
//! subexpressions, hash values, partial arguments), reporting unknown
//! variables, helpers and partials with a 1-based line/column and a hint.
//!
//! Positions: each element's start comes from the compiled template's
//! element mapping (the position of its `{{`). Within that tag the linter
//! then locates the offending token, so a finding points at the token itself
//! (`customer.frist_name` in `{{default customer.frist_name "x"}}`), falling
//! back to the tag's `{{` when the token cannot be located. Columns count
//! characters (not bytes) like the handlebars parser does; a tab is one column.
//!
//! Scope rules:
//! * Relative paths are checked against [`Vocabulary::variables`] while the
//!   context is the root. Inside `{{#each}}`/`{{#with}}` bodies (and the body
//!   of a context block such as `{{#customer}}`, or of a partial block called
//!   with a context argument) the context changes, so relative paths there are
//!   not checked; `@root.…` paths and `../` paths that climb back to the root
//!   are. `{{else}}` arms keep the outer context and are checked.
//! * `{{#if}}`, `{{#unless}}` and custom block helpers keep the context.
//! * Block params (`as |item i|`) and hash keys of partial blocks are accepted
//!   wherever they are in scope; `@index`/`@key`/`@first`/`@last` inside any
//!   `{{#each}}`.
//! * Blocks nested more than [`MAX_DEPTH`] levels (each `{{else if}}` link
//!   and each subexpression also counts as a level) are reported as
//!   [`FindingKind::TooDeep`] and not inspected further.

use std::collections::BTreeSet;
use std::fmt;

use handlebars::template::TemplateElement;

use parse::{compile, inline_partials, literal_partial_name, teardown};
use source::Source;
use walk::Linter;

/// Variables the product fills only when the configuration says where they point; absent from
/// the vocabulary otherwise, and reported with this hint instead of a did-you-mean (a template
/// rendered `href=""` for `{{links.preferences}}` without an `http:` section, and nothing said so).
const CONFIG_FILLED: &[(&str, &str)] = &[(
    "links.preferences",
    "`links.preferences` is empty with this configuration: add an `http:` section (the daemon \
     serves the preference page at <public_url>/p/<token>) or `links: { preferences: URL }` to \
     ritualist.yaml",
)];

/// Maximum nesting of blocks (plus `{{else if}}` links and subexpressions).
pub const MAX_DEPTH: usize = 32;

/// Templates nested deeper than this (by a lexical pre-scan) are rejected
/// without being parsed: the handlebars parser is slow on them and dropping
/// a very long `{{else if}}` chain recurses.
const PARSE_DEPTH_LIMIT: usize = 2 * MAX_DEPTH;

/// Helpers every `handlebars::Handlebars` registry has (`raw` backs `{{{{raw}}}}`).
pub const BUILTIN_HELPERS: &[&str] = &[
    "if", "unless", "each", "with", "lookup", "log", "eq", "ne", "gt", "gte", "lt", "lte", "and",
    "or", "not", "len", "raw",
];

/// `@` variables `{{#each}}` provides.
const LOCAL_VARS: &[&str] = &["index", "key", "first", "last"];

/// How many names a "known …" list in a hint shows.
const LIST_LIMIT: usize = 12;

/// What a template may reference.
#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    /// Every valid variable path, dotted: "customer.first_name", "occasion.age", "shop.name", "links.unsubscribe".
    /// A prefix of a valid path is itself valid ("customer" alone, e.g. for `{{#with customer}}`).
    pub variables: BTreeSet<String>,
    /// Helper names registered besides the built-ins (if, unless, each, with, lookup, log, eq, ne, gt, gte, lt, lte, and, or, not, len are built in and always valid).
    pub helpers: BTreeSet<String>,
    /// Partial names that exist (e.g. "footer", "layouts/brand").
    pub partials: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FindingKind {
    UnknownVariable,
    UnknownHelper,
    UnknownPartial,
    Syntax,
    TooDeep,
}

/// One problem in a template.
///
/// `name` is the offending name as written (`customer.frist_name`,
/// `@root.shop.nme`, `formt_date`, `footr`); for `TooDeep` the helper or
/// partial of the block over the limit; for `Syntax` the offending tag name
/// or value when handlebars reports one, else empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: FindingKind,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    pub name: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

/// Parse `source` and walk EVERY element in every branch (if/else, unless, each, with bodies and inverses, nested blocks,
/// subexpressions, hash values, partial parameters), reporting each unknown variable, helper and partial once per use with
/// the line and column of that use (1-based). A syntax error is returned as a single Finding of kind Syntax with the
/// line/column the handlebars error reports (TemplateError has line_no / column_no / reason), and a hint.
///
/// Findings are sorted by position.
pub fn lint(source: &str, vocab: &Vocabulary) -> Vec<Finding> {
    let text = Source::new(source);
    let template = match compile(&text) {
        Ok(t) => t,
        Err(finding) => return vec![finding],
    };
    let mut linter = Linter::new(&text, vocab, &template);
    linter.template(&template, 0, 0);
    let mut findings = linter.findings;
    teardown(template);
    findings.sort_by_key(|f| (f.line, f.column));
    findings
}

/// Names of partials a template references (for cycle detection by the caller).
///
/// Literal names only (a dynamic `{{> (lookup …)}}` is skipped), without
/// `@partial-block` and without inline partials the template defines itself
/// (`{{#*inline "x"}}`), deduplicated and sorted. Empty if the template does
/// not parse (`lint` reports that).
pub fn partials_used(source: &str) -> Vec<String> {
    let Ok(template) = compile(&Source::new(source)) else {
        return Vec::new();
    };
    let inline = inline_partials(&template);
    let mut used = BTreeSet::new();
    let mut stack = vec![&template];
    while let Some(t) = stack.pop() {
        for el in &t.elements {
            match el {
                TemplateElement::PartialExpression(d) | TemplateElement::PartialBlock(d) => {
                    if let Some(name) = literal_partial_name(&d.name)
                        && name != "@partial-block"
                        && !inline.contains(name)
                    {
                        used.insert(name.to_owned());
                    }
                    stack.extend(d.template.as_ref());
                }
                TemplateElement::HelperBlock(h) => {
                    stack.extend(h.template.as_ref());
                    stack.extend(h.inverse.as_ref());
                }
                TemplateElement::DecoratorBlock(d) => stack.extend(d.template.as_ref()),
                _ => {}
            }
        }
    }
    teardown(template);
    used.into_iter().collect()
}

mod parse;
mod source;
mod walk;

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Vocabulary {
        let set = |xs: &[&str]| xs.iter().map(|s| (*s).to_owned()).collect();
        Vocabulary {
            variables: set(&[
                "customer.first_name",
                "customer.last_name",
                "customer.email",
                "occasion.age",
                "occasion.kind",
                "shop.name",
                "links.unsubscribe",
                "order.items",
            ]),
            helpers: set(&["format_date", "default", "upper", "today"]),
            partials: set(&["footer", "layouts/brand"]),
        }
    }

    fn finding(
        kind: FindingKind,
        line: usize,
        column: usize,
        name: &str,
        message: &str,
        hint: &str,
    ) -> Finding {
        Finding {
            kind,
            line,
            column,
            name: name.to_owned(),
            message: message.to_owned(),
            hint: Some(hint.to_owned()),
        }
    }

    fn var(line: usize, column: usize, name: &str, hint: &str) -> Finding {
        let message = format!("unknown variable `{name}`");
        finding(
            FindingKind::UnknownVariable,
            line,
            column,
            name,
            &message,
            hint,
        )
    }

    fn helper(line: usize, column: usize, name: &str, hint: &str) -> Finding {
        let message = format!("unknown helper `{name}`");
        finding(
            FindingKind::UnknownHelper,
            line,
            column,
            name,
            &message,
            hint,
        )
    }

    fn check(source: &str) -> Vec<Finding> {
        lint(source, &vocab())
    }

    #[test]
    fn clean_template_has_no_findings() {
        let src = "\
{{#> layouts/brand title=\"Happy birthday\"}}
{{title}}
{{#if customer.first_name}}Hi {{customer.first_name}}{{else if customer.last_name}}Dear {{customer.last_name}}{{else}}Hi friend{{/if}},
{{#unless (eq occasion.age 0)}}You turn {{occasion.age}} {{format_date (today) \"%d %B\"}}!{{/unless}}
{{#each order.items as |item i|}}{{@index}}: {{item.name}} {{name}} {{../shop.name}} {{@root.customer.email}}{{else}}{{shop.name}}{{/each}}
{{#with customer}}{{first_name}} {{this}}{{/with}}
{{{customer.email}}} {{&links.unsubscribe}} {{default customer.first_name \"friend\"}} {{upper value=(lookup customer \"email\")}}
{{#*inline \"sig\"}}{{shop.name}}{{/inline}}{{> sig}}{{> footer}}{{> (lookup shop \"name\")}}{{> @partial-block}}
{{!-- {{nope}} --}}{{! {{nope}} }}\\{{nope}}{{{{raw}}}}{{nope}}{{{{/raw}}}}{{today}}
{{/layouts/brand}}";
        assert_eq!(check(src), vec![]);
    }

    #[test]
    fn typo_in_else_branch_is_reported_with_position_and_hint() {
        // The column is the token's, not the `{{` (which is at column 3).
        let src = "{{#if customer.first_name}}Hi {{customer.first_name}}\n{{else}}\n  {{customr.first_name}}, hello\n{{/if}}";
        assert_eq!(
            check(src),
            vec![var(
                3,
                5,
                "customr.first_name",
                "did you mean `customer.first_name`?"
            )]
        );
    }

    #[test]
    fn else_if_links_are_checked_at_their_own_tag() {
        let src = "{{#if shop.name}}a{{else if occasion.knd}}b{{else if occasion.age}}c{{else}}{{shop.nme}}{{/if}}";
        assert_eq!(
            check(src),
            vec![
                var(1, 29, "occasion.knd", "did you mean `occasion.kind`?"),
                var(1, 79, "shop.nme", "did you mean `shop.name`?"),
            ]
        );
    }

    #[test]
    fn unknown_helper_with_params() {
        assert_eq!(
            check("Date: {{formt_date occasion.age \"%Y\"}}"),
            vec![helper(1, 9, "formt_date", "did you mean `format_date`?")]
        );
        assert_eq!(
            check("{{customer x}}"),
            vec![
                helper(
                    1,
                    3,
                    "customer",
                    "`customer` is a variable, not a helper; to print it write `{{customer}}`"
                ),
                var(
                    1,
                    12,
                    "x",
                    "known variables: `customer`, `links`, `occasion`, `order`, `shop`"
                ),
            ]
        );
    }

    #[test]
    fn unknown_helper_in_subexpression() {
        assert_eq!(
            check("{{#if (eqq occasion.kind \"birthday\")}}!{{/if}}"),
            vec![helper(1, 8, "eqq", "did you mean `eq`?")]
        );
        // `(x)` calls a helper named `x`, even for a variable.
        assert_eq!(
            check("{{upper (shop.name)}}"),
            vec![helper(
                1,
                10,
                "shop.name",
                "`shop.name` is a variable; pass it without parentheses to use its value"
            )]
        );
    }

    #[test]
    fn unknown_partial() {
        assert_eq!(
            check("{{> footr}}\n{{#> layout/brand}}fallback{{/layout/brand}}"),
            vec![
                finding(
                    FindingKind::UnknownPartial,
                    1,
                    5,
                    "footr",
                    "unknown partial `footr`",
                    "did you mean `footer`?"
                ),
                finding(
                    FindingKind::UnknownPartial,
                    2,
                    6,
                    "layout/brand",
                    "unknown partial `layout/brand` (the block's content would be rendered instead)",
                    "did you mean `layouts/brand`?"
                ),
            ]
        );
    }

    #[test]
    fn known_partials() {
        let src = "{{> footer}}{{> footer customer}}{{#> layouts/brand}}x{{/layouts/brand}}{{#*inline \"row\"}}r{{/inline}}{{> row}}";
        assert_eq!(check(src), vec![]);
        assert_eq!(partials_used(src), vec!["footer", "layouts/brand"]);
        assert_eq!(
            partials_used(
                "{{> a}}{{#if x}}{{> b}}{{else}}{{#> c}}{{> @partial-block}}{{> a}}{{/c}}{{/if}}{{> (dyn)}}"
            ),
            vec!["a", "b", "c"]
        );
        assert_eq!(partials_used("{{#if x}}"), Vec::<String>::new());
    }

    #[test]
    fn each_and_with_bodies_skip_relative_paths_but_check_root_paths() {
        let src = "{{#each order.items as |item|}}{{name}} {{item.sku}} {{@index}} {{@root.shop.nme}}{{/each}}\n{{#with customer}}{{first_name}} {{@root.custmer.email}}{{/with}}";
        assert_eq!(
            check(src),
            vec![
                var(1, 67, "@root.shop.nme", "did you mean `@root.shop.name`?"),
                var(
                    2,
                    36,
                    "@root.custmer.email",
                    "did you mean `@root.customer.email`?"
                ),
            ]
        );
    }

    #[test]
    fn block_parameter_parent_paths_and_inverse_are_checked() {
        let src = "{{#each order.itemz}}{{../shop.nam}}{{#with this}}{{../../shop.nam}}{{/with}}{{else}}{{nope}}{{/each}}";
        assert_eq!(
            check(src),
            vec![
                var(1, 9, "order.itemz", "did you mean `order.items`?"),
                var(1, 24, "../shop.nam", "did you mean `../shop.name`?"),
                var(1, 53, "../../shop.nam", "did you mean `../../shop.name`?"),
                var(
                    1,
                    88,
                    "nope",
                    "known variables: `customer`, `links`, `occasion`, `order`, `shop`"
                ),
            ]
        );
    }

    #[test]
    fn triple_stash_is_checked() {
        assert_eq!(
            check("<p>{{{customer.emial}}}</p>"),
            vec![var(
                1,
                7,
                "customer.emial",
                "did you mean `customer.email`?"
            )]
        );
    }

    #[test]
    fn helper_param_and_hash_values_are_checked() {
        assert_eq!(
            check(
                "Hi {{default customer.first_nme \"friend\"}}!\n{{upper value=customer.first_nme fallback=(default shop.nme \"x\")}}"
            ),
            vec![
                var(
                    1,
                    14,
                    "customer.first_nme",
                    "did you mean `customer.first_name`?"
                ),
                var(
                    2,
                    15,
                    "customer.first_nme",
                    "did you mean `customer.first_name`?"
                ),
                var(2, 52, "shop.nme", "did you mean `shop.name`?"),
            ]
        );
    }

    #[test]
    fn names_and_locals() {
        assert_eq!(
            check("{{today}} {{first_name}}"),
            vec![var(
                1,
                13,
                "first_name",
                "did you mean `customer.first_name`?"
            )]
        );
        assert_eq!(
            check("{{customer.middle}} {{@index}} {{@idx}}"),
            vec![
                var(
                    1,
                    3,
                    "customer.middle",
                    "`customer` has: `email`, `first_name`, `last_name`"
                ),
                var(
                    1,
                    23,
                    "@index",
                    "`@index` is only available inside `{{#each}}`"
                ),
                var(
                    1,
                    34,
                    "@idx",
                    "available `@` variables: `@index`, `@key`, `@first`, `@last` (inside `{{#each}}`) and `@root`"
                ),
            ]
        );
    }

    #[test]
    fn columns_count_characters_and_crlf_lines() {
        assert_eq!(
            check("Zoë 😀 {{custmer}}\r\n\t{{shop.nam}}"),
            vec![
                var(1, 9, "custmer", "did you mean `customer`?"),
                var(2, 4, "shop.nam", "did you mean `shop.name`?"),
            ]
        );
    }

    #[test]
    fn unclosed_block_is_one_syntax_finding() {
        let found = check("{{#if customer.first_name}}\nHello");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, FindingKind::Syntax);
        assert_eq!((found[0].line, found[0].column), (2, 6));
        assert!(
            found[0]
                .message
                .starts_with("syntax error: invalid handlebars syntax")
        );
        assert_eq!(
            found[0].hint.as_deref(),
            Some("`{{#if}}` opened at line 1, column 1 is never closed with `{{/if}}`")
        );
    }

    #[test]
    fn mismatched_close_is_one_syntax_finding() {
        assert_eq!(
            check("a\n{{#if shop.name}}\nb{{/unless}}"),
            vec![finding(
                FindingKind::Syntax,
                3,
                2,
                "unless",
                "syntax error: helper \"if\" was opened, but \"unless\" is closing",
                "`{{#if}}` must be closed with `{{/if}}` before `{{/unless}}`"
            )]
        );
    }

    fn nested_ifs(n: usize) -> String {
        format!("{}x{}", "{{#if shop.name}}".repeat(n), "{{/if}}".repeat(n))
    }

    fn too_deep(line: usize, column: usize, name: &str, depth: usize) -> Finding {
        let message = format!(
            "`{name}` is nested {depth} levels deep; the limit is 32 (blocks, `{{{{else if}}}}` links and `( )` subexpressions each count)"
        );
        finding(
            FindingKind::TooDeep,
            line,
            column,
            name,
            &message,
            "flatten the template, e.g. combine conditions with `(and …)`/`(or …)`",
        )
    }

    #[test]
    fn forty_nested_ifs_are_too_deep() {
        assert_eq!(check(&nested_ifs(32)), vec![]);
        // The 33rd `{{#if` starts at column 32 * 17 + 1.
        assert_eq!(check(&nested_ifs(40)), vec![too_deep(1, 545, "if", 33)]);
    }

    #[test]
    fn long_else_if_chains_and_subexpressions_are_too_deep() {
        let chain = format!(
            "{{{{#if shop.name}}}}{}{{{{/if}}}}",
            "{{else if shop.name}}x".repeat(40)
        );
        // Link 32 (depth 33) starts after the 17-char opener and 31 links of 22 chars.
        assert_eq!(check(&chain), vec![too_deep(1, 17 + 31 * 22 + 1, "if", 33)]);
        let subs = format!(
            "{{{{upper {}shop.name{}}}}}",
            "(not ".repeat(40),
            ")".repeat(40)
        );
        assert_eq!(check(&subs), vec![too_deep(1, 9 + 32 * 5, "not", 33)]);
    }

    #[test]
    fn hostile_templates_are_rejected_without_overflowing_a_small_stack() {
        // Too deep for the parser: rejected by the lexical pre-scan, at the
        // same place the walk would report.
        let chain = format!(
            "{{{{#if a}}}}{}{{{{/if}}}}",
            "{{else if a}}x".repeat(20_000)
        );
        let deep = nested_ifs(5_000);
        let worker = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || (check(&chain), check(&deep), partials_used(&chain)))
            .unwrap();
        let (chain, deep, used) = worker.join().unwrap();
        assert_eq!(chain, vec![too_deep(1, 9 + 31 * 14 + 1, "if", 33)]);
        assert_eq!(deep, vec![too_deep(1, 32 * 17 + 1, "if", 33)]);
        assert!(used.is_empty());
    }
}
