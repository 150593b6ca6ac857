//! TEMPORARY placeholder until the real linter lands (being written in parallel).
use std::collections::BTreeSet;
pub struct Vocabulary {
    pub variables: BTreeSet<String>,
    pub helpers: BTreeSet<String>,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: FindingKind,
    pub line: usize,
    pub column: usize,
    pub name: String,
    pub message: String,
    pub hint: Option<String>,
}
pub fn lint(_source: &str, _vocab: &Vocabulary) -> Vec<Finding> {
    Vec::new()
}
pub fn partials_used(_source: &str) -> Vec<String> {
    Vec::new()
}
