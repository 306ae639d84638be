//! The generalisations HIPAA Safe Harbor names (45 CFR §164.514(b)(2)(i)(B) and (C)).

/// ZIP3 areas with 20,000 or fewer people, reported as `000` (45 CFR §164.514(b)(2)(i)(B); HHS
/// OCR de-identification guidance, 2012). The union of the 2000 and 2010 Census lists, to err on
/// the side of suppression.
pub const RESTRICTED_ZIP3: [&str; 19] = [
    "036", "059", "063", "102", "203", "205", "369", "556", "692", "790", "821", "823", "830", "831", "878", "879",
    "884", "890", "893",
];

/// What a generalisation makes of a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Generalised {
    /// The value may stay as it is.
    Keep,
    /// The value is replaced by this text.
    Replace(String),
    /// The value cannot be generalised (not a number, too few digits): it is dropped.
    Drop,
}

/// A ZIP code: its first three digits, `000` where that area is restricted; dropped when it has
/// fewer than three digits.
pub fn zip(text: &str) -> Generalised {
    let digits: String = text.chars().filter(char::is_ascii_digit).take(3).collect();
    if digits.len() < 3 {
        Generalised::Drop
    } else if RESTRICTED_ZIP3.contains(&digits.as_str()) {
        Generalised::Replace("000".into())
    } else {
        Generalised::Replace(digits)
    }
}

/// An age in years: over 89 becomes `90+`; another number stays; anything else is dropped.
pub fn age(text: &str) -> Generalised {
    match text.trim().parse::<f64>() {
        Ok(age) if age > 89.0 => Generalised::Replace("90+".into()),
        Ok(_) => Generalised::Keep,
        Err(_) => Generalised::Drop,
    }
}

/// A date reduced to its year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Year {
    /// The year itself.
    Exact(i32),
    /// A year that would put someone over 89 this year (itself an identifier,
    /// §164.514(b)(2)(i)(C)): all such years are one category, "`cutoff` or earlier".
    OrEarlier(i32),
}

/// The year of a date, as it may be kept in `this_year`.
pub fn year_only(year: i32, this_year: i32) -> Year {
    let cutoff = this_year - 90;
    if year <= cutoff {
        Year::OrEarlier(cutoff)
    } else {
        Year::Exact(year)
    }
}

impl std::fmt::Display for Year {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Year::Exact(y) => write!(f, "{y}"),
            Year::OrEarlier(y) => write!(f, "{y} or earlier"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_zip_codes_are_generalised() {
        assert_eq!(age("90"), Generalised::Replace("90+".into()));
        assert_eq!(age("89.5"), Generalised::Replace("90+".into()));
        assert_eq!(age("89"), Generalised::Keep);
        assert_eq!(age("eighty"), Generalised::Drop);
        assert_eq!(zip("02139"), Generalised::Replace("021".into()));
        assert_eq!(zip("02139-4307"), Generalised::Replace("021".into()));
        assert_eq!(zip("03601"), Generalised::Replace("000".into()));
        assert_eq!(zip("12"), Generalised::Drop);
    }

    #[test]
    fn years_that_reveal_an_age_over_89_are_one_group() {
        assert_eq!(year_only(1990, 2026), Year::Exact(1990));
        assert_eq!(year_only(1937, 2026), Year::Exact(1937));
        assert_eq!(year_only(1936, 2026), Year::OrEarlier(1936));
        assert_eq!(year_only(1900, 2026).to_string(), "1936 or earlier");
    }
}
