//! How stored names read on pages and in reports.

/// A name as a label: underscores as spaces, the first letter capital ("scanner_model" →
/// "Scanner model").
pub fn label_of(name: &str) -> String {
    let spaced = name.replace('_', " ");
    let mut chars = spaced.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_read_as_labels() {
        assert_eq!(super::label_of("scanner_model"), "Scanner model");
        assert_eq!(super::label_of("ématome"), "Ématome");
        assert_eq!(super::label_of(""), "");
    }
}
