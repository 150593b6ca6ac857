//! Did-you-mean: the one place that decides whether a word is a likely typo of a known one.
//! Every suggestion the product makes (unknown YAML keys, template variables, helpers and
//! partials, calendar rules, scopes and names on the command line) comes from [`closest`].

/// The candidate closest to `word`, if close enough to be a likely typo (never `word` itself).
///
/// Closest by edit distance (Damerau-Levenshtein; ties: Jaro-Winkler), judged against the
/// part that differs, so that a long shared prefix (`customer.`) does not make unrelated
/// fields look close: one edit per three differing characters, at least one; two edits
/// when the words are much alike overall (Jaro-Winkler above 0.8: `ro-X` finds `ro`). Case
/// does not count as an edit (`en-us` finds `en-US`).
pub fn closest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    by_edits(word, candidates)
}

/// [`closest`] over owned names.
pub fn did_you_mean(word: &str, candidates: &[String]) -> Option<String> {
    closest(word, candidates.iter().map(String::as_str)).map(str::to_string)
}

fn by_edits<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let mut best: Option<(usize, f64, &str)> = None;
    let target = word.to_lowercase();
    let target_len = target.chars().count();
    for c in candidates {
        if c == word {
            continue;
        }
        let folded = c.to_lowercase();
        let dist = strsim::damerau_levenshtein(&target, &folded);
        let prefix = target
            .chars()
            .zip(folded.chars())
            .take_while(|(a, b)| a == b)
            .count();
        let c_len = folded.chars().count();
        let shorter = target_len.min(c_len) - prefix;
        let suffix = target
            .chars()
            .rev()
            .zip(folded.chars().rev())
            .take_while(|(a, b)| a == b)
            .count()
            .min(shorter);
        let differing = (target_len - prefix - suffix).max(c_len - prefix - suffix);
        let allowed = (differing / 3).max(1);
        let jw = strsim::jaro_winkler(word, c);
        if dist > allowed && !(dist <= 2 && jw > 0.8) {
            continue;
        }
        if best.is_none_or(|(d, j, _)| dist < d || (dist == d && jw > j)) {
            best = Some((dist, jw, c));
        }
    }
    best.map(|(_, _, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_finds_its_word_and_a_stranger_finds_nothing() {
        assert_eq!(
            closest("templat", ["template", "trigger"]),
            Some("template")
        );
        assert_eq!(closest("eqq", ["eq", "ne"]), Some("eq"));
        assert_eq!(
            closest("customer.emial", ["customer.email", "customer.phone"]),
            Some("customer.email")
        );
        assert_eq!(closest("zzz", ["template", "trigger"]), None);
        assert_eq!(closest("eq", ["eq"]), None);
        assert_eq!(closest("en-us", ["en-GB", "en-US", "ro"]), Some("en-US"));
        assert_eq!(closest("ro-X", ["en-GB", "en-US", "ro", "ru"]), Some("ro"));
        assert_eq!(
            closest("customer.middle", ["customer.email", "customer.last_name"]),
            None
        );
    }
}
