use std::fmt;

/// The identity of one occurrence of a ritual for one customer: (ritual, customer, occurrence).
///
/// Yearly rituals use the *year* as the occurrence ("birthday", 42, "2027"), never the date, so
/// editing a birth date cannot mint a second greeting in the same year. The store keeps a unique
/// constraint on (key, channel) and inserts it before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OccurrenceKey {
    pub ritual: String,
    pub customer_id: i64,
    pub occurrence: String,
}

impl OccurrenceKey {
    pub fn yearly(ritual: &str, customer_id: i64, year: i16) -> Self {
        OccurrenceKey {
            ritual: ritual.to_string(),
            customer_id,
            occurrence: year.to_string(),
        }
    }
}

impl fmt::Display for OccurrenceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.ritual, self.customer_id, self.occurrence
        )
    }
}
