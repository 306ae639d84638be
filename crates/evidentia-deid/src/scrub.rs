//! Scrubbing PHI out of free text: identifiers named by HIPAA Safe Harbor plus Korean formats
//! (resident registration numbers, Korean phone and date forms) are found and each is replaced by
//! `[REDACTED:KIND]`. Pure code: no database, no I/O.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv6Addr;

use regex::{Regex, RegexBuilder};

/// A kind of identifier found in free text; `as_str()` gives the tag used in `[REDACTED:KIND]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PhiKind {
    Name,
    Email,
    Phone,
    Rrn,
    Ssn,
    Mrn,
    Date,
    Url,
    Ip,
}

impl PhiKind {
    /// The de-identification report's rule: `scrub:{as_str}`.
    pub fn rule(&self) -> &'static str {
        match self {
            PhiKind::Name => "scrub:NAME",
            PhiKind::Email => "scrub:EMAIL",
            PhiKind::Phone => "scrub:PHONE",
            PhiKind::Rrn => "scrub:RRN",
            PhiKind::Ssn => "scrub:SSN",
            PhiKind::Mrn => "scrub:MRN",
            PhiKind::Date => "scrub:DATE",
            PhiKind::Url => "scrub:URL",
            PhiKind::Ip => "scrub:IP",
        }
    }

    /// The tag written into the text: `[REDACTED:{as_str}]`.
    pub fn as_str(&self) -> &'static str {
        match self {
            PhiKind::Name => "NAME",
            PhiKind::Email => "EMAIL",
            PhiKind::Phone => "PHONE",
            PhiKind::Rrn => "RRN",
            PhiKind::Ssn => "SSN",
            PhiKind::Mrn => "MRN",
            PhiKind::Date => "DATE",
            PhiKind::Url => "URL",
            PhiKind::Ip => "IP",
        }
    }
}

/// Decides whether a regex candidate `text[start..end]` is a real identifier (boundaries, value
/// checks) and returns the span to redact, possibly trimmed.
type Check = fn(&str, usize, usize) -> Option<(usize, usize)>;

/// One detector: candidates come from the regex, `check` accepts or rejects them.
#[derive(Debug, Clone)]
struct Rule {
    kind: PhiKind,
    re: Regex,
    /// Index of a capture group named `id`: when present only that group is redacted.
    group: Option<usize>,
    check: Check,
}

/// Removes PHI from free text. Build once per import (regexes are compiled in [`Scrubber::new`]),
/// then call [`Scrubber::scrub`] on every free-text cell.
///
/// What is detected follows the Safe Harbor list of 45 CFR §164.514(b)(2)(i): names (from the
/// identifier columns), dates (all elements except the year), phone and fax numbers, e-mail
/// addresses, SSNs, medical record / accession numbers, URLs and IP addresses; plus the Korean
/// resident registration number (주민등록번호), a unique identifier under the Korean Personal
/// Information Protection Act (PIPA, art. 24-2). Geographic subdivisions, ages over 89 and
/// free-form identifiers without a recognisable shape are not detected: that is what the
/// identifier-column handling and human review are for.
#[derive(Debug, Clone)]
pub struct Scrubber {
    /// Detectors in priority order: the first to claim a span wins.
    rules: Vec<Rule>,
    /// Every detector's pattern in one set: a single pass over a text says which detectors can
    /// match at all, and only those run. `None` (the set exceeds the size limit that each
    /// pattern alone meets): every detector runs.
    any: Option<regex::RegexSet>,
    /// Names from identifier columns, matched last.
    names: Option<NameMatcher>,
    /// Text that is already a redaction tag; protected from every detector.
    redacted: Regex,
}

/// Every name and name part from the identifier columns, matched ASCII case-insensitively.
/// Terms that begin and end with an ASCII letter or digit (Latin names, record numbers: nearly
/// all of a large file's) are looked up in a hash set at ASCII word boundaries — a set of
/// 100,000s of terms builds in milliseconds, where an automaton over them took most of an
/// import's de-identification time. The others (Hangul names, which Korean particles follow
/// without a space, or terms ending in punctuation) go into a small Aho-Corasick automaton.
#[derive(Debug, Clone)]
struct NameMatcher {
    /// ASCII-lower-cased bounded terms.
    words: HashSet<Box<[u8]>>,
    /// The longest bounded term, in bytes.
    longest: usize,
    /// A bit per pair of (ASCII-lower-cased) first two bytes of a bounded term: most words of
    /// a text start no name and are passed over without hashing.
    starts: Vec<u64>,
    /// The other terms, leftmost-longest.
    others: Option<aho_corasick::AhoCorasick>,
    /// Per pattern of `others`: whether it must start / end at an ASCII word boundary.
    bounded: Vec<(bool, bool)>,
}

/// Regex size limit for MRN patterns and the built-in detectors.
const SIZE_LIMIT: usize = 256 * 1024 * 1024;

// Built-in candidate patterns. All are plain literals, checked by the unit tests; boundaries
// are checked in code (ASCII only, so Korean particles such as 는/로 may follow an identifier).
const URL_RE: &str = r"(?i)(?:https?|ftp)://[A-Za-z0-9_\-.~:/?#@!$&*+,;=%()]+|www\.[a-z0-9-]+(?:\.[a-z0-9-]+)+(?:[/?#][A-Za-z0-9_\-.~:/?#@!$&*+,;=%()]*)?";
const EMAIL_RE: &str = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}";
/// YYMMDD-SNNNNNN (hyphenated; the back part may be masked with `*`) or 13 bare digits whose
/// 7th digit is a valid sex/century digit.
const RRN_RE: &str = r"\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?:-[0-9*]{7}|[1-8]\d{6})";
const SSN_RE: &str = r"\d{3}-\d{2}-\d{4}";
const IPV4_RE: &str = r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)";
/// Loose IPv6 candidate; the standard library's parser decides.
const IPV6_RE: &str = r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:(?:\.\d{1,3}){3})?";
const MONTH: &str = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)";

/// Date candidates, most specific first, each with its validator.
fn date_patterns() -> Vec<(String, Check)> {
    vec![
        // 2024-03-15, 2024/03/15, 2024.03.15, 2024. 3. 15
        (r"\d{4}(?:[-/]|\.[ ]?)\d{1,2}(?:[-/]|\.[ ]?)\d{1,2}".to_string(), check_date_ymd),
        // 15/03/2024, 03/15/2024, 15.03.2024, 15-03-2024
        (r"\d{1,2}[-/.]\d{1,2}[-/.]\d{4}".to_string(), check_date_dmy4),
        // 15-Mar-2024, 15 March 2024, 15th of March, 2024
        (format!(r"(?i)\d{{1,2}}(?:st|nd|rd|th)?[\s-]+(?:of\s+)?{MONTH}\.?,?[\s-]+\d{{4}}"), check_date_named),
        // March 15, 2024, Mar. 15th 2024, Mar-15-2024
        (format!(r"(?i){MONTH}\.?[\s-]+\d{{1,2}}(?:st|nd|rd|th)?,?[\s-]+\d{{4}}"), check_date_named),
        // 2024년 3월 15일, 24년 3월 15일
        (r"(?:\d{4}|\d{2})[ ]*년[ ]*\d{1,2}[ ]*월[ ]*\d{1,2}[ ]*일".to_string(), check_date_korean),
        // 2024년 3월
        (r"\d{4}[ ]*년[ ]*\d{1,2}[ ]*월".to_string(), check_date_korean),
        // 3월 15일
        (r"\d{1,2}[ ]*월[ ]*\d{1,2}[ ]*일".to_string(), check_date_korean),
        // March 2024, Mar. 2024
        (format!(r"(?i){MONTH}\.?,?[\s-]+\d{{4}}"), check_date_named),
        // 20240315
        (r"\d{8}".to_string(), check_date_compact),
        // 3/15/24, 24.03.15, 15-03-24
        (r"\d{1,2}[-/.]\d{1,2}[-/.]\d{2}".to_string(), check_date_short),
        // 03/2024, 2024-03, 2024/03
        (r"\d{1,2}/\d{4}|\d{4}[-/]\d{2}".to_string(), check_date_month_year),
    ]
}

/// Phone and fax candidates, most specific first.
fn phone_patterns() -> Vec<(&'static str, Check)> {
    vec![
        // +82 10-1234-5678, +1 (555) 123-4567, +82-2-123-4567
        (r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)|\d{1,4})[ .-]?\d{3,4}[ .-]?\d{4}", check_phone_intl),
        // other international layouts: +33 1 23 45 67 89
        (r"\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,6}", check_phone_intl),
        // (555) 123-4567, (02) 123-4567, 02)123-4567
        (r"\(?\d{2,4}\)[ ]?\d{3,4}[ .-]?\d{4}", check_phone_paren),
        // 555-123-4567, 010-1234-5678, 010 1234 5678, 02-123-4567, 031.123.4567
        (r"\d{2,4}[ .-]\d{3,4}[ .-]\d{4}", check_phone_grouped),
        // 01012345678 (Korean mobile without separators)
        (r"01[016789]\d{7,8}", check_standalone),
    ]
}

fn compile(pattern: &str, what: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern).size_limit(SIZE_LIMIT).build().map_err(|e| format!("invalid {what} `{pattern}`: {e}"))
}

impl Scrubber {
    /// `names`: strings seen in identifier columns of the same file (patient names etc.). Each is
    /// removed wherever it appears, case-insensitively, longest first: the whole name (with any
    /// run of whitespace between its words) and, for multi-word names, each part of 3+
    /// characters. Names shorter than 2 characters are ignored, and so are entries without a
    /// letter shorter than 4 characters (an age of "45" would otherwise erase every 45).
    /// Names starting/ending in an ASCII letter or digit only match at ASCII word boundaries
    /// ("Ann" does not hit "Annual", but "Kim은" loses "Kim"); Hangul names match anywhere,
    /// since Korean particles attach to them ("환자 김민지는" -> "환자 [REDACTED:NAME]는").
    ///
    /// `mrn_patterns`: regexes for medical-record / accession numbers (see
    /// [`Scrubber::default_mrn_patterns`], used when the slice is empty). If a pattern has a
    /// capture group named `id`, only that group is redacted (the label stays); otherwise the
    /// whole match is. `\b` in these patterns is an ASCII word boundary, so `S24-012345는` still
    /// matches `\bS\d{2}-\d{4,6}\b`. An invalid pattern gives `Err` naming it.
    pub fn new(names: &[&str], mrn_patterns: &[String]) -> Result<Scrubber, String> {
        let mut rules = Vec::new();
        let mut push = |kind: PhiKind, pattern: &str, check: Check| -> Result<(), String> {
            let re = compile(pattern, "built-in pattern")?;
            rules.push(Rule { kind, re, group: None, check });
            Ok(())
        };
        push(PhiKind::Url, URL_RE, check_url)?;
        push(PhiKind::Email, EMAIL_RE, check_any)?;
        push(PhiKind::Rrn, RRN_RE, check_standalone)?;
        push(PhiKind::Ssn, SSN_RE, check_standalone)?;

        let defaults;
        let mrn_patterns = if mrn_patterns.is_empty() {
            defaults = Scrubber::default_mrn_patterns();
            &defaults[..]
        } else {
            mrn_patterns
        };
        for pattern in mrn_patterns {
            // Validate the pattern as written (so errors quote it), then compile it with ASCII
            // word boundaries. `\b` is invalid inside a character class, so in a valid pattern
            // every `\b` is an assertion and the rewrite keeps its meaning.
            compile(pattern, "MRN pattern")?;
            let re = compile(&ascii_word_boundaries(pattern), "MRN pattern")?;
            let group = re.capture_names().position(|n| n == Some("id"));
            rules.push(Rule { kind: PhiKind::Mrn, re, group, check: check_any });
        }

        let mut push = |kind: PhiKind, pattern: &str, check: Check| -> Result<(), String> {
            let re = compile(pattern, "built-in pattern")?;
            rules.push(Rule { kind, re, group: None, check });
            Ok(())
        };
        push(PhiKind::Ip, IPV4_RE, check_ipv4)?;
        push(PhiKind::Ip, IPV6_RE, check_ipv6)?;
        for (pattern, check) in date_patterns() {
            push(PhiKind::Date, &pattern, check)?;
        }
        for (pattern, check) in phone_patterns() {
            push(PhiKind::Phone, pattern, check)?;
        }
        let any = regex::RegexSetBuilder::new(rules.iter().map(|r| r.re.as_str())).size_limit(SIZE_LIMIT).build().ok();
        let names = name_matcher(names)?;
        let redacted = compile(r"\[REDACTED:[A-Z]+\]", "built-in pattern")?;
        Ok(Scrubber { rules, any, names, redacted })
    }

    /// The default MRN / accession-number patterns, used by [`Scrubber::new`] when no patterns
    /// are configured. Labelled numbers keep their label (`MRN: [REDACTED:MRN]`):
    /// 1. English labels: `MRN`, `MR#`, `MR No.`, `Medical Record No./Number`, `Hospital No.`,
    ///    `Hosp No`, `Chart No.`, `Patient ID/No.`, `Pt ID`, `Unit No.` (any case), then an
    ///    optional `:`/`#`, then an ID of 4+ digits (optionally with a 1–3 letter prefix).
    /// 2. Korean labels: `병록번호`, `등록번호`, `환자번호`, `차트번호`, `진료번호`, `병리번호`,
    ///    `환자ID`, then the same kind of ID.
    /// 3. Accession numbers `S24-012345`, `SP24-001234`, `S-24-012345`: 1–3 capitals, a 2-digit
    ///    year, a hyphen and 4–7 digits.
    /// 4. Accession numbers `SP-2024-001234`, `S2024-12345`: 1–3 capitals, a 4-digit year, a
    ///    hyphen and 4–7 digits.
    pub fn default_mrn_patterns() -> Vec<String> {
        const ID: &str = r"(?P<id>[A-Za-z]{0,3}[\d-]{0,6}\d{4,12})\b";
        vec![
            format!(
                r"(?i)\b(?:MRN|MR\s*(?:No\.?|#)|Medical\s+Record\s+(?:No\.?|Number|#)|Hosp(?:ital)?\.?\s*(?:No\.?|Number|#)|Chart\s*(?:No\.?|Number|#)|Patient\s*(?:ID|No\.?|Number|#)|Pt\.?\s*(?:ID|No\.?|#)|Unit\s+No\.?)\s*[:#]?\s*{ID}"
            ),
            format!(r"(?:병록번호|등록번호|환자번호|차트번호|진료번호|병리번호|환자\s*ID)\s*[:：#]?\s*{ID}"),
            r"\b[A-Z]{1,3}-?\d{2}-\d{4,7}\b".to_string(),
            r"\b[A-Z]{1,3}-?\d{4}-\d{4,7}\b".to_string(),
        ]
    }

    /// Returns the scrubbed text and, per kind, how many replacements were made (counts only,
    /// never the matched text; kinds with no match are absent). Each match is replaced by
    /// `[REDACTED:KIND]`. Detectors run in priority order (URL, e-mail, RRN, SSN, MRN, IP, date,
    /// phone, name) over the original text; a span claimed by one is never re-matched by a
    /// later one, and existing `[REDACTED:…]` tags are left alone, so scrubbing is idempotent.
    /// Text with nothing to redact comes back byte-identical.
    pub fn scrub(&self, text: &str) -> (String, BTreeMap<PhiKind, usize>) {
        let mut claims = Claims::default();
        for m in self.redacted.find_iter(text) {
            claims.0.insert(m.start(), (m.end(), None));
        }
        let candidates = self.any.as_ref().map(|set| set.matches(text));
        for (i, rule) in self.rules.iter().enumerate() {
            if candidates.as_ref().is_none_or(|c| c.matched(i)) {
                apply(rule, text, &mut claims);
            }
        }
        if let Some(names) = &self.names {
            apply_names(names, text, &mut claims);
        }

        let mut counts = BTreeMap::new();
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for (&start, &(end, kind)) in &claims.0 {
            out.push_str(&text[last..start]);
            match kind {
                Some(kind) => {
                    out.push_str("[REDACTED:");
                    out.push_str(kind.as_str());
                    out.push(']');
                    *counts.entry(kind).or_insert(0) += 1;
                }
                None => out.push_str(&text[start..end]),
            }
            last = end;
        }
        out.push_str(&text[last..]);
        (out, counts)
    }
}

/// Disjoint claimed spans: start -> (end, kind); `None` marks a pre-existing redaction tag.
#[derive(Default)]
struct Claims(BTreeMap<usize, (usize, Option<PhiKind>)>);

impl Claims {
    /// Whether `[start, end)` overlaps no claimed span. Spans are disjoint, so only the last one
    /// starting before `end` can overlap without a later one overlapping too.
    fn is_free(&self, start: usize, end: usize) -> bool {
        self.0.range(..end).next_back().is_none_or(|(_, &(e, _))| e <= start)
    }

    /// The end of the claimed span containing `pos`, if any.
    fn covering_end(&self, pos: usize) -> Option<usize> {
        self.0.range(..=pos).next_back().and_then(|(_, &(e, _))| (e > pos).then_some(e))
    }
}

/// Runs one rule over the whole text, claiming every accepted, unclaimed span.
fn apply(rule: &Rule, text: &str, claims: &mut Claims) {
    let mut pos = 0;
    while pos < text.len() {
        let (match_start, match_end, start, end) = match rule.group {
            Some(group) => {
                let Some(caps) = rule.re.captures_at(text, pos) else { break };
                let Some(whole) = caps.get(0) else { break };
                let part = caps.get(group).unwrap_or(whole);
                (whole.start(), whole.end(), part.start(), part.end())
            }
            None => {
                let Some(m) = rule.re.find_at(text, pos) else { break };
                (m.start(), m.end(), m.start(), m.end())
            }
        };
        match (rule.check)(text, start, end) {
            Some((s, e)) if s < e && claims.is_free(s, e) => {
                claims.0.insert(s, (e, Some(rule.kind)));
                pos = match_end.max(e);
            }
            // Rejected: retry from the next character (or past a claimed span), so a shorter
            // or later candidate is still found.
            _ => pos = claims.covering_end(match_start).unwrap_or_else(|| next_boundary(text, match_start)),
        }
    }
}

/// The byte index of the character after the one at `i`.
fn next_boundary(text: &str, i: usize) -> usize {
    i + text[i..].chars().next().map_or(1, char::len_utf8)
}

/// Rewrites each `\b` assertion to an ASCII word boundary `(?-u:\b)` (a Hangul letter is a
/// Unicode word character, so a Unicode `\b` fails between "S24-012345" and "는").
/// `\b{start}` and friends are left as they are.
fn ascii_word_boundaries(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('b') if chars.peek() != Some(&'{') => out.push_str(r"(?-u:\b)"),
            Some(n) => {
                out.push('\\');
                out.push(n);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Every name (spaces normalised) and, for names of several parts, each part: names of two
/// characters or more, parts of three or more, digit-only terms of four or more.
fn name_terms(names: &[&str]) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    let mut add = |term: &str, min_chars: usize| {
        let chars = term.chars().count();
        let has_letter = term.chars().any(char::is_alphabetic);
        if chars >= min_chars && (has_letter || chars >= 4) {
            terms.push(term.to_string());
        }
    };
    for name in names {
        let whole = name.split_whitespace().collect::<Vec<_>>().join(" ");
        add(&whole, 2);
        let parts: Vec<&str> = whole
            .split(|c: char| c.is_whitespace() || c == ',')
            .map(|p| p.trim_matches(|c: char| !c.is_alphanumeric()))
            .filter(|p| !p.is_empty())
            .collect();
        if parts.len() > 1 {
            for part in parts {
                add(part, 3);
            }
        }
    }
    terms
}

/// The names matcher over every name and name part (see [`NameMatcher`]).
fn name_matcher(names: &[&str]) -> Result<Option<NameMatcher>, String> {
    let terms = name_terms(names);
    if terms.is_empty() {
        return Ok(None);
    }
    let ascii_word = |c: Option<char>| c.is_some_and(is_ascii_word);
    let mut words: HashSet<Box<[u8]>> = HashSet::with_capacity(terms.len());
    let mut longest = 0;
    let mut starts = vec![0u64; 1024];
    // Non-ASCII letters are not folded by either matcher: the lower-case form is added too.
    let mut patterns: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    let mut place = |v: String| {
        if ascii_word(v.chars().next()) && ascii_word(v.chars().next_back()) {
            longest = longest.max(v.len());
            let key = v.to_ascii_lowercase().into_bytes();
            let pair = start_pair(&key);
            starts[pair / 64] |= 1 << (pair % 64);
            words.insert(key.into_boxed_slice());
        } else if seen.insert(v.to_ascii_lowercase()) {
            patterns.push(v);
        }
    };
    for t in terms {
        if !t.is_ascii() {
            let lower = t.to_lowercase();
            if lower != t {
                place(lower);
            }
        }
        place(t);
    }
    let bounded = patterns.iter().map(|t| (ascii_word(t.chars().next()), ascii_word(t.chars().next_back()))).collect();
    let others = if patterns.is_empty() {
        None
    } else {
        Some(
            aho_corasick::AhoCorasick::builder()
                // Every occurrence, overlapping ones too (the claims below choose among them).
                .match_kind(aho_corasick::MatchKind::Standard)
                // Built once per file and searched over short notes: the non-contiguous NFA
                // skips the costly conversion to faster-to-search forms.
                .kind(Some(aho_corasick::AhoCorasickKind::NoncontiguousNFA))
                .ascii_case_insensitive(true)
                .build(&patterns)
                .map_err(|e| format!("names list cannot be compiled: {e}"))?,
        )
    };
    Ok(Some(NameMatcher { words, longest, starts, others, bounded }))
}

/// The index of a term's first two bytes (ASCII-lower-cased) in [`NameMatcher::starts`]; a
/// one-byte term (none reach the set: names have two characters or more) pairs with 0.
fn start_pair(lower: &[u8]) -> usize {
    usize::from(lower.first().copied().unwrap_or(0)) << 8 | usize::from(lower.get(1).copied().unwrap_or(0))
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Claims name occurrences, leftmost first and the longest at each start, where still
/// unclaimed; when the longest is not free a shorter one at the same start is tried.
fn apply_names(names: &NameMatcher, text: &str, claims: &mut Claims) {
    let mut candidates: Vec<(usize, usize)> = Vec::new();
    // Bounded terms: every span from an ASCII word start to an ASCII word end, up to the
    // longest term's length.
    let b = text.as_bytes();
    let mut key: Vec<u8> = Vec::with_capacity(names.longest);
    for s in 0..b.len() {
        if !is_word_byte(b[s]) || (s > 0 && is_word_byte(b[s - 1])) {
            continue;
        }
        let pair = start_pair(&[b[s].to_ascii_lowercase(), b.get(s + 1).map_or(0, u8::to_ascii_lowercase)]);
        if names.starts[pair / 64] & (1 << (pair % 64)) == 0 {
            continue;
        }
        let stop = b.len().min(s + names.longest);
        for e in s + 1..=stop {
            if is_word_byte(b[e - 1]) && (e == b.len() || !is_word_byte(b[e])) {
                key.clear();
                key.extend(b[s..e].iter().map(u8::to_ascii_lowercase));
                if names.words.contains(key.as_slice()) {
                    candidates.push((s, e));
                }
            }
        }
    }
    // The other terms: every occurrence on its boundaries, overlapping ones included, so a
    // name inside or across another that loses its claim is still found.
    if let Some(ac) = &names.others {
        for m in ac.find_overlapping_iter(text) {
            let (lead, trail) = names.bounded[m.pattern().as_usize()];
            let ok_start = !lead || !char_before(text, m.start()).is_some_and(is_ascii_word);
            let ok_end = !trail || !char_after(text, m.end()).is_some_and(is_ascii_word);
            if ok_start && ok_end {
                candidates.push((m.start(), m.end()));
            }
        }
    }
    candidates.sort_by_key(|&(s, e)| (s, std::cmp::Reverse(e)));
    for (s, e) in candidates {
        if claims.is_free(s, e) {
            claims.0.insert(s, (e, Some(PhiKind::Name)));
        }
    }
}

fn is_ascii_word(c: char) -> bool {
    c.is_ascii() && is_word_byte(c as u8)
}

fn char_before(text: &str, i: usize) -> Option<char> {
    text[..i].chars().next_back()
}

fn char_after(text: &str, i: usize) -> Option<char> {
    text[i..].chars().next()
}

/// No ASCII letter, digit or underscore directly before or after the span.
fn standalone(text: &str, start: usize, end: usize) -> bool {
    !char_before(text, start).is_some_and(is_ascii_word) && !char_after(text, end).is_some_and(is_ascii_word)
}

fn check_any(_text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    Some((start, end))
}

fn check_standalone(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    standalone(text, start, end).then_some((start, end))
}

/// URLs: drops trailing sentence punctuation and unbalanced closing brackets; a bare `www.`
/// must not be the middle of an e-mail domain or a longer host.
fn check_url(text: &str, start: usize, mut end: usize) -> Option<(usize, usize)> {
    if char_before(text, start).is_some_and(|c| is_ascii_word(c) || matches!(c, '@' | '.' | '/' | '-')) {
        return None;
    }
    loop {
        let url = &text[start..end];
        let last = url.chars().next_back()?;
        let unbalanced = last == ')' && url.matches('(').count() < url.matches(')').count();
        if matches!(last, '.' | ',' | ';' | ':' | '!' | '?') || unbalanced {
            end -= last.len_utf8();
        } else {
            break;
        }
    }
    (end > start).then_some((start, end))
}

/// Whether the span is glued to a dotted number (`1.2.3.4.5`, version strings).
fn dotted_neighbour(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().rev().take(2).collect::<Vec<_>>();
    let after = text[end..].chars().take(2).collect::<Vec<_>>();
    matches!(before.as_slice(), ['.', d, ..] if d.is_ascii_digit())
        || matches!(after.as_slice(), ['.', d, ..] if d.is_ascii_digit())
}

fn check_ipv4(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    (standalone(text, start, end) && !dotted_neighbour(text, start, end)).then_some((start, end))
}

/// IPv6: the candidate (minus one stray trailing colon) must parse and have 2+ non-empty
/// groups, so words like "Add::" and the loopback `::1` are left alone.
fn check_ipv6(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    if char_before(text, start).is_some_and(|c| is_ascii_word(c) || c == '.') {
        return None;
    }
    let mut end = end;
    let candidate = &text[start..end];
    if candidate.parse::<Ipv6Addr>().is_err() {
        if candidate.ends_with(':') && !candidate.ends_with("::") {
            end -= 1;
        }
        text[start..end].parse::<Ipv6Addr>().ok()?;
    }
    if char_after(text, end).is_some_and(is_ascii_word) {
        return None;
    }
    let groups = text[start..end].split(':').filter(|g| !g.is_empty()).count();
    (groups >= 2).then_some((start, end))
}

/// International numbers: 8–15 digits in all (E.164 allows at most 15).
fn check_phone_intl(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let digits = text[start..end].chars().filter(char::is_ascii_digit).count();
    (standalone(text, start, end) && (8..=15).contains(&digits)).then_some((start, end))
}

/// The leading group of a domestic number: a Korean area/mobile prefix (starts with 0) or a
/// 3-digit North American area code.
fn plausible_prefix(group: &str) -> bool {
    group.starts_with('0') || group.len() == 3
}

fn check_phone_paren(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let groups = digit_groups(&text[start..end]);
    (standalone(text, start, end) && groups.first().is_some_and(|g| plausible_prefix(g))).then_some((start, end))
}

fn check_phone_grouped(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let candidate = &text[start..end];
    let groups = digit_groups(candidate);
    let seps = separators(candidate);
    let ok = standalone(text, start, end)
        && groups.first().is_some_and(|g| plausible_prefix(g))
        && seps.windows(2).all(|w| w[0] == w[1]);
    ok.then_some((start, end))
}

// Dates --------------------------------------------------------------------------------------

/// Dates may be followed directly by an ISO time (`2024-03-15T10:30`).
fn date_standalone(text: &str, start: usize, end: usize) -> bool {
    let after = text[end..].chars().take(2).collect::<Vec<_>>();
    let iso_time = matches!(after.as_slice(), ['T', d] if d.is_ascii_digit());
    !char_before(text, start).is_some_and(is_ascii_word)
        && (iso_time || !char_after(text, end).is_some_and(is_ascii_word))
}

fn digit_groups(s: &str) -> Vec<&str> {
    s.split(|c: char| !c.is_ascii_digit()).filter(|g| !g.is_empty()).collect()
}

/// The non-digit pieces between digit groups, trimmed of spaces.
fn separators(s: &str) -> Vec<&str> {
    let inner = s.trim_matches(|c: char| !c.is_ascii_digit());
    inner.split(|c: char| c.is_ascii_digit()).filter(|p| !p.is_empty()).map(str::trim).collect()
}

fn numbers(s: &str) -> Vec<u32> {
    digit_groups(s).iter().filter_map(|g| g.parse().ok()).collect()
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        // Gregorian leap years: divisible by 400, or by 4 but not by 100.
        2 => match (year % 4, year % 100, year % 400) {
            (_, _, 0) | (0, 1.., _) => 29,
            _ => 28,
        },
        _ => 0,
    }
}

fn valid_date(year: u32, month: u32, day: u32) -> bool {
    (1900..=2100).contains(&year) && (1..=days_in_month(year, month)).contains(&day)
}

/// A two-digit year, taken in the 2000s for leap years (a 29 Feb is accepted either way).
fn full_year(year: u32, digits: usize) -> u32 {
    if digits <= 2 {
        2000 + year
    } else {
        year
    }
}

fn accept_date(text: &str, start: usize, end: usize, valid: bool) -> Option<(usize, usize)> {
    (valid && date_standalone(text, start, end)).then_some((start, end))
}

/// Whether the span continues a longer numeric run through a separator (`2023-02` in
/// `2023-02-29`): partial forms must not slice a fuller (rejected) date.
fn glued(text: &str, start: usize, end: usize) -> bool {
    let is_sep = |c: &char| matches!(c, '-' | '/' | '.');
    let before = text[..start].chars().rev().take(2).collect::<Vec<_>>();
    let after = text[end..].chars().take(2).collect::<Vec<_>>();
    matches!(before.as_slice(), [s, d] if is_sep(s) && d.is_ascii_digit())
        || matches!(after.as_slice(), [s, d] if is_sep(s) && d.is_ascii_digit())
}

fn same_separators(s: &str) -> bool {
    separators(s).windows(2).all(|w| w[0] == w[1])
}

fn check_date_ymd(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let s = &text[start..end];
    let valid = same_separators(s) && matches!(numbers(s).as_slice(), &[y, m, d] if valid_date(y, m, d));
    accept_date(text, start, end, valid)
}

/// Day-month-year or month-day-year with a 4-digit year: either reading will do.
fn check_date_dmy4(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let s = &text[start..end];
    let valid =
        same_separators(s) && matches!(numbers(s).as_slice(), &[a, b, y] if valid_date(y, b, a) || valid_date(y, a, b));
    accept_date(text, start, end, valid)
}

/// Two-digit years: `3/15/24` (slashes, 1–2 digit parts) or `24.03.15` / `15-03-24` (dots and
/// hyphens need zero-padded 2-digit parts, to spare version numbers such as 3.11.12).
fn check_date_short(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let s = &text[start..end];
    let groups = digit_groups(s);
    let slash = s.contains('/');
    let shape_ok = same_separators(s) && (slash || groups.iter().all(|g| g.len() == 2));
    let valid = shape_ok
        && !glued(text, start, end)
        && matches!(numbers(s).as_slice(), &[a, b, c]
            if valid_date(2000 + c, b, a) || valid_date(2000 + c, a, b) || valid_date(2000 + a, b, c));
    accept_date(text, start, end, valid)
}

/// `03/2024`, `2024-03`, `2024/03`: a month with its year.
fn check_date_month_year(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let s = &text[start..end];
    let valid = match digit_groups(s).as_slice() {
        [m, y] if y.len() == 4 => matches!((m.parse(), y.parse()), (Ok(m), Ok(y)) if valid_date(y, m, 1)),
        [y, m] if y.len() == 4 => matches!((m.parse(), y.parse()), (Ok(m), Ok(y)) if valid_date(y, m, 1)),
        _ => false,
    };
    accept_date(text, start, end, valid && !glued(text, start, end))
}

fn check_date_compact(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let s = &text[start..end];
    let part = |r: std::ops::Range<usize>| s.get(r).and_then(|p| p.parse::<u32>().ok());
    let valid = matches!((part(0..4), part(4..6), part(6..8)), (Some(y), Some(m), Some(d)) if valid_date(y, m, d));
    accept_date(text, start, end, valid)
}

fn month_from_name(s: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    s.split(|c: char| !c.is_ascii_alphabetic()).filter(|w| w.len() >= 3).find_map(|w| {
        let prefix = w.get(..3)?.to_ascii_lowercase();
        MONTHS.iter().position(|m| *m == prefix).and_then(|i| u32::try_from(i + 1).ok())
    })
}

/// Dates with an English month name: the day (if any) must exist in that month.
fn check_date_named(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let s = &text[start..end];
    let month = month_from_name(s)?;
    let valid = match *numbers(s).as_slice() {
        [day, year] => valid_date(year, month, day),
        [year] => valid_date(year, month, 1),
        _ => false,
    };
    accept_date(text, start, end, valid)
}

/// `2024년 3월 15일`, `24년 3월 15일`, `2024년 3월`, `3월 15일`.
fn check_date_korean(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let s = &text[start..end];
    let groups = digit_groups(s);
    let nums = numbers(s);
    let year_digits = groups.first().map_or(0, |g| g.len());
    let valid = match (nums.as_slice(), s.contains('년'), s.contains('일')) {
        (&[y, m, d], true, true) => valid_date(full_year(y, year_digits), m, d),
        (&[y, m], true, false) => valid_date(y, m, 1),
        // No year: any leap year will do for 2월 29일.
        (&[m, d], false, true) => valid_date(2000, m, d),
        _ => false,
    };
    accept_date(text, start, end, valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrubber_with(names: &[&str]) -> Scrubber {
        Scrubber::new(names, &Scrubber::default_mrn_patterns()).expect("default scrubber builds")
    }

    fn scrubber() -> Scrubber {
        scrubber_with(&[])
    }

    /// Plants `value` in a sentence and checks it is gone, tagged `kind`, counted once.
    fn assert_redacted(s: &Scrubber, value: &str, kind: PhiKind) {
        for text in [format!("Contact {value} before the visit."), format!("보호자 연락처 {value}로 연락함.")]
        {
            let (out, counts) = s.scrub(&text);
            assert!(!out.contains(value), "{value:?} survived in {out:?}");
            let tag = format!("[REDACTED:{}]", kind.as_str());
            assert!(out.contains(&tag), "{value:?} not tagged {tag} in {out:?}");
            assert_eq!(counts.get(&kind), Some(&1), "{value:?}: counts {counts:?} for {out:?}");
            assert_eq!(counts.values().sum::<usize>(), 1, "{value:?}: counts {counts:?} for {out:?}");
        }
    }

    fn assert_unchanged(s: &Scrubber, text: &str) {
        let (out, counts) = s.scrub(text);
        assert_eq!(out, text);
        assert!(counts.is_empty(), "{text:?}: {counts:?}");
    }

    #[test]
    fn tags_and_serialization() {
        let kinds = [
            (PhiKind::Name, "NAME"),
            (PhiKind::Email, "EMAIL"),
            (PhiKind::Phone, "PHONE"),
            (PhiKind::Rrn, "RRN"),
            (PhiKind::Ssn, "SSN"),
            (PhiKind::Mrn, "MRN"),
            (PhiKind::Date, "DATE"),
            (PhiKind::Url, "URL"),
            (PhiKind::Ip, "IP"),
        ];
        for (kind, tag) in kinds {
            assert_eq!(kind.as_str(), tag);
            assert_eq!(kind.rule(), format!("scrub:{tag}"));
            assert_eq!(serde_json::to_value(kind).unwrap(), serde_json::json!(tag));
        }
        let (_, counts) = scrubber().scrub("call 010-1234-5678 or 02-123-4567, seen 2024-03-15");
        assert_eq!(serde_json::to_value(&counts).unwrap(), serde_json::json!({"PHONE": 2, "DATE": 1}));
    }

    #[test]
    fn emails() {
        let s = scrubber();
        for v in ["kim.minji@snubh.org", "a_b+c@x.co.kr", "Dr.Lee@Hospital.COM"] {
            assert_redacted(&s, v, PhiKind::Email);
        }
    }

    #[test]
    fn phones_international() {
        let s = scrubber();
        for v in ["+82 10-1234-5678", "+1 (555) 123-4567", "+82-2-123-4567", "+821012345678", "+33 1 23 45 67 89"] {
            assert_redacted(&s, v, PhiKind::Phone);
        }
    }

    #[test]
    fn phones_us() {
        let s = scrubber();
        for v in ["555-123-4567", "(555) 123-4567", "555.123.4567", "555 123 4567"] {
            assert_redacted(&s, v, PhiKind::Phone);
        }
    }

    #[test]
    fn phones_korean_mobile_landline_and_fax() {
        let s = scrubber();
        for v in ["010-1234-5678", "01012345678", "010 1234 5678", "02-123-4567", "031-123-4567", "(02) 1234-5678"] {
            assert_redacted(&s, v, PhiKind::Phone);
        }
        let (out, counts) = s.scrub("Tel 02-2072-1234 / Fax: 02-2072-5678, 팩스 031-787-0000");
        assert_eq!(out, "Tel [REDACTED:PHONE] / Fax: [REDACTED:PHONE], 팩스 [REDACTED:PHONE]");
        assert_eq!(counts.get(&PhiKind::Phone), Some(&3));
    }

    #[test]
    fn resident_registration_numbers_before_phones() {
        let s = scrubber();
        for v in ["850315-1234567", "8503151234567", "990101-2******", "020229-4123456"] {
            assert_redacted(&s, v, PhiKind::Rrn);
        }
        let (out, counts) = s.scrub("주민등록번호: 850315-1234567");
        assert_eq!(out, "주민등록번호: [REDACTED:RRN]");
        assert_eq!(counts.len(), 1);
        // Not a valid birth date: not an RRN (and not anything else either).
        assert_unchanged(&s, "lot 851315-1234567 and 12345678901234");
    }

    #[test]
    fn social_security_numbers() {
        let s = scrubber();
        assert_redacted(&s, "123-45-6789", PhiKind::Ssn);
        let (out, counts) = s.scrub("SSN 123-45-6789; alt 987-65-4321.");
        assert_eq!(out, "SSN [REDACTED:SSN]; alt [REDACTED:SSN].");
        assert_eq!(counts.get(&PhiKind::Ssn), Some(&2));
    }

    #[test]
    fn default_mrn_and_accession_patterns() {
        let s = scrubber();
        let cases = [
            ("MRN: 12345678", "12345678"),
            ("MRN#00123456", "00123456"),
            ("MR# 7654321", "7654321"),
            ("Hospital No. 20231234", "20231234"),
            ("hosp no: 998877", "998877"),
            ("Patient ID: AB123456", "AB123456"),
            ("병록번호: 12345678", "12345678"),
            ("등록번호 87654321", "87654321"),
            ("병리번호 S24-012345", "S24-012345"),
        ];
        for (text, id) in cases {
            let (out, counts) = s.scrub(&format!("{text}은 확인됨"));
            assert!(!out.contains(id), "{id} survived in {out:?}");
            assert!(out.contains("[REDACTED:MRN]"), "{out:?}");
            assert_eq!(counts.get(&PhiKind::Mrn), Some(&1), "{out:?}");
            assert_eq!(counts.len(), 1, "{out:?}");
        }
        // The label stays; only the number goes.
        assert_eq!(s.scrub("MRN: 12345678.").0, "MRN: [REDACTED:MRN].");
        for v in ["S24-012345", "SP-2024-001234", "SP24-001234", "S2024-12345"] {
            assert_redacted(&s, v, PhiKind::Mrn);
        }
    }

    #[test]
    fn configured_mrn_patterns_and_errors() {
        let patterns = vec![r"\bMRN[:#]?\s*\d{6,10}\b".to_string(), r"\bS\d{2}-\d{4,6}\b".to_string()];
        let s = Scrubber::new(&[], &patterns).unwrap();
        let (out, counts) = s.scrub("MRN:1234567 검체 S24-012345는 재검 예정");
        assert_eq!(out, "[REDACTED:MRN] 검체 [REDACTED:MRN]는 재검 예정");
        assert_eq!(counts.get(&PhiKind::Mrn), Some(&2));
        // Only the configured patterns: the default Korean label is not used.
        assert_eq!(s.scrub("병록번호 12345678").0, "병록번호 12345678");
        // An empty list falls back to the defaults.
        let s = Scrubber::new(&[], &[]).unwrap();
        assert_eq!(s.scrub("병록번호 12345678").0, "병록번호 [REDACTED:MRN]");

        let bad = vec![r"\bMRN(\d+".to_string()];
        let err = Scrubber::new(&[], &bad).unwrap_err();
        assert!(err.contains(r"\bMRN(\d+"), "{err}");
        let err = Scrubber::new(&[], &[r"[\b]x".to_string()]).unwrap_err();
        assert!(err.contains(r"[\b]x"), "{err}");
        assert_eq!(ascii_word_boundaries(r"\bA\\b\d\b{start}"), r"(?-u:\b)A\\b\d\b{start}");
    }

    #[test]
    fn numeric_dates() {
        let s = scrubber();
        for v in [
            "2024-03-15",
            "2024/03/15",
            "2024.03.15",
            "2024. 3. 15",
            "15/03/2024",
            "03/15/2024",
            "15.03.2024",
            "3/15/24",
            "24.03.15",
            "20240315",
            "19991231",
            "03/2024",
            "2024-03",
        ] {
            assert_redacted(&s, v, PhiKind::Date);
        }
        let (out, _) = s.scrub("biopsy 2024-03-15T10:30 done");
        assert_eq!(out, "biopsy [REDACTED:DATE]T10:30 done");
    }

    #[test]
    fn leap_years_and_partial_dates() {
        let s = scrubber();
        for v in ["2024-02-29", "2000-02-29", "29/02/2024", "2월 29일"] {
            assert_redacted(&s, v, PhiKind::Date);
        }
        // Impossible dates are left whole, never sliced into a "year-month" and a stray day.
        assert_unchanged(&s, "typo 2023-02-29, 1900-02-29, 2024-04-31, 31/04/2024");
        let (out, _) = s.scrub("from 2023-02 to 2024/11, and 05/2022");
        assert_eq!(out, "from [REDACTED:DATE] to [REDACTED:DATE], and [REDACTED:DATE]");
        assert_eq!(days_in_month(1900, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(2023, 2), 28);
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2024, 13), 0);
    }

    #[test]
    fn named_month_dates() {
        let s = scrubber();
        for v in
            ["15-Mar-2024", "March 15, 2024", "15 March 2024", "Mar. 15th, 2024", "15th of March 2024", "March 2024"]
        {
            assert_redacted(&s, v, PhiKind::Date);
        }
        assert_unchanged(&s, "February 30, 2024 is not a date; may 2 patients");
    }

    #[test]
    fn korean_and_compact_dates() {
        let s = scrubber();
        for v in ["2024년 3월 15일", "2024년3월15일", "24년 3월 15일", "2024년 3월", "3월 15일"] {
            assert_redacted(&s, v, PhiKind::Date);
        }
        let (out, counts) = s.scrub("2024년 3월 15일에 수술, 20240320 퇴원");
        assert_eq!(out, "[REDACTED:DATE]에 수술, [REDACTED:DATE] 퇴원");
        assert_eq!(counts.get(&PhiKind::Date), Some(&2));
    }

    #[test]
    fn plain_numbers_are_not_dates() {
        let s = scrubber();
        for text in [
            "TPS 50",
            "3 cm",
            "1234",
            "12345678",
            "20241315",
            "21010101 and 18991231",
            "Ki-67 30%, 1:100 dilution, BP 120/80 mmHg",
            "2024년 추적, 3개월 후, 1일 2회",
            "Python 3.11.12, version 1.2.3",
            "pT2N1M0, HER2 3+, PD-L1 22C3",
            "13/13/2024 and 2024-13-01",
        ] {
            assert_unchanged(&s, text);
        }
    }

    #[test]
    fn urls() {
        let s = scrubber();
        for v in ["http://example.com", "https://pacs.snubh.org/viewer?study=123&id=9", "www.example.com/path"] {
            assert_redacted(&s, v, PhiKind::Url);
        }
        let (out, _) = s.scrub("See (https://example.org/a_(b)), then www.x.kr.");
        assert_eq!(out, "See ([REDACTED:URL]), then [REDACTED:URL].");
        // A www host inside an e-mail address is part of the address.
        let (out, counts) = s.scrub("mail kim@www.snubh.org");
        assert_eq!(out, "mail [REDACTED:EMAIL]");
        assert_eq!(counts.len(), 1);
    }

    #[test]
    fn ip_addresses() {
        let s = scrubber();
        for v in [
            "192.168.10.23",
            "10.0.0.1",
            "2001:db8::1",
            "fe80::1ff:fe23:4567:890a",
            "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        ] {
            assert_redacted(&s, v, PhiKind::Ip);
        }
        let (out, _) = s.scrub("host IP:2001:db8::1: unreachable");
        assert_eq!(out, "host IP:[REDACTED:IP]: unreachable");
        assert_unchanged(&s, "at 10:30:45, 256.1.1.1, 1.2.3.4.5, Add:: note, std::vec");
    }

    #[test]
    fn names_latin() {
        let s = scrubber_with(&["Minji Kim", "Ann Lee", "J", "Ng"]);
        let (out, counts) =
            s.scrub("Seen by MINJI KIM; minji  kim agreed. Kim called. Annual review, Ann signed; Ng, J.");
        for v in ["Minji", "MINJI", "minji", " Kim", "Ng,"] {
            assert!(!out.contains(v), "{v:?} survived in {out:?}");
        }
        assert!(out.contains("Annual review"), "{out:?}");
        assert!(out.contains(", J."), "{out:?}");
        // "minji  kim" (two spaces) goes as its two parts: 6 replacements in all.
        assert_eq!(counts.get(&PhiKind::Name), Some(&6));
        // Latin names followed by a Korean particle.
        let (out, _) = s.scrub("Kim은 Ann에게 설명함");
        assert_eq!(out, "[REDACTED:NAME]은 [REDACTED:NAME]에게 설명함");
    }

    #[test]
    fn names_hangul() {
        let s = scrubber_with(&["김민지", "이 서준"]);
        let (out, counts) = s.scrub("환자 김민지는 보호자 이 서준과 내원함. 김민지(F/45)");
        assert_eq!(out, "환자 [REDACTED:NAME]는 보호자 [REDACTED:NAME]과 내원함. [REDACTED:NAME](F/45)");
        assert_eq!(counts.get(&PhiKind::Name), Some(&3));
        // Numeric entries need 4+ characters: a "45" in an identifier column erases nothing.
        let s = scrubber_with(&["45", "00123456"]);
        let (out, _) = s.scrub("age 45, id 00123456");
        assert_eq!(out, "age 45, id [REDACTED:NAME]");
    }

    #[test]
    fn large_names_list() {
        let names: Vec<String> =
            (0..1500).flat_map(|i| [format!("Patient{i} Surname{i}"), format!("환자{i}호")]).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let s = Scrubber::new(&names, &[]).unwrap();
        let (out, counts) = s.scrub("Surname1499 and patient7 surname7 met 환자42호, not Patient15000.");
        assert_eq!(out, "[REDACTED:NAME] and [REDACTED:NAME] met [REDACTED:NAME], not Patient15000.");
        assert_eq!(counts.get(&PhiKind::Name), Some(&3));
    }

    /// The single Aho-Corasick automaton (leftmost-longest, ASCII case-insensitive, boundary
    /// checked, retried one character on) that matched names before the hash set: the reference
    /// the present matcher must redact at least as much as.
    fn reference_name_spans(names: &[&str], text: &str) -> Vec<(usize, usize)> {
        let mut seen = HashSet::new();
        let terms: Vec<String> = name_terms(names).into_iter().filter(|t| seen.insert(t.to_lowercase())).collect();
        let mut patterns = Vec::new();
        for t in terms {
            let lower = t.to_lowercase();
            if !t.is_ascii() && lower != t {
                patterns.push(lower);
            }
            patterns.push(t);
        }
        if patterns.is_empty() {
            return Vec::new();
        }
        let word = |c: Option<char>| c.is_some_and(is_ascii_word);
        let bounded: Vec<(bool, bool)> =
            patterns.iter().map(|t| (word(t.chars().next()), word(t.chars().next_back()))).collect();
        let ac = aho_corasick::AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostLongest)
            .ascii_case_insensitive(true)
            .build(&patterns)
            .unwrap();
        let (mut spans, mut pos) = (Vec::new(), 0);
        while pos < text.len() {
            let Some(m) = ac.find(aho_corasick::Input::new(text).span(pos..text.len())) else { break };
            let (lead, trail) = bounded[m.pattern().as_usize()];
            let ok = (!lead || !word(char_before(text, m.start()))) && (!trail || !word(char_after(text, m.end())));
            if ok {
                spans.push((m.start(), m.end()));
                pos = m.end();
            } else {
                pos = next_boundary(text, m.start());
            }
        }
        spans
    }

    /// On random mixes of Latin and Hangul names, parts, punctuation and particles, every byte
    /// the reference matcher redacted is redacted by the present one.
    #[test]
    fn names_redact_at_least_what_the_reference_matcher_did() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(11);
        let parts =
            ["Kim", "Lee", "Minji", "Anne", "Marie", "Zoé", "JOSÉ", "José", "O'Neil", "Ng", "김민지", "박서연", "민지"];
        let glue = [" ", "  ", ", ", "-", "은 ", "는", "(", ") ", ".", "_", "x"];
        for _ in 0..400 {
            let names: Vec<String> = (0..rng.gen_range(1..5))
                .map(|_| {
                    (0..rng.gen_range(1..3)).map(|_| parts[rng.gen_range(0..parts.len())]).collect::<Vec<_>>().join(" ")
                })
                .collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let matcher = name_matcher(&names).unwrap().unwrap();
            let mut text = String::new();
            for _ in 0..rng.gen_range(2..10) {
                let p = parts[rng.gen_range(0..parts.len())];
                let p = if rng.gen_bool(0.3) { p.to_uppercase() } else { p.to_string() };
                text.push_str(&p);
                text.push_str(glue[rng.gen_range(0..glue.len())]);
            }
            let mut claims = Claims::default();
            apply_names(&matcher, &text, &mut claims);
            let covered = |i: usize| claims.0.range(..=i).next_back().is_some_and(|(_, &(e, _))| i < e);
            for (a, b) in reference_name_spans(&names, &text) {
                assert!((a..b).all(covered), "{:?} of {text:?} (names {names:?}) is no longer redacted", &text[a..b]);
            }
        }
    }

    /// Whatever mix of names and text: no listed name survives on its word boundaries, in any
    /// ASCII case, and no text outside the names is touched.
    #[test]
    fn every_listed_name_is_redacted() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(7);
        let parts = ["Kim", "Lee", "Park", "Min", "Minji", "Jo", "An", "Ann", "Anna", "O'Neil", "김민지", "민지"];
        let words = ["seen", "by", "and", "kimchi", "Annals", "(", ")", ",", "은", "는", "-", "anna."];
        for _ in 0..80 {
            let names: Vec<String> = (0..rng.gen_range(1..4))
                .map(|_| {
                    let n = rng.gen_range(1..3);
                    (0..n).map(|_| parts[rng.gen_range(0..parts.len())]).collect::<Vec<_>>().join(" ")
                })
                .collect();
            let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let s = Scrubber::new(&name_refs, &[]).unwrap();
            let text: Vec<String> = (0..rng.gen_range(3..12))
                .map(|_| match rng.gen_range(0..3) {
                    0 => names[rng.gen_range(0..names.len())].to_uppercase(),
                    1 => parts[rng.gen_range(0..parts.len())].to_string(),
                    _ => words[rng.gen_range(0..words.len())].to_string(),
                })
                .collect();
            let text = text.join(" ");
            let (out, _) = s.scrub(&text);
            for name in &names {
                let whole = name.to_ascii_lowercase();
                let lower = out.to_ascii_lowercase();
                let mut from = 0;
                while let Some(i) = lower[from..].find(&whole) {
                    let (a, b) = (from + i, from + i + whole.len());
                    let bounded_start = !whole.starts_with(|c: char| c.is_ascii_alphanumeric())
                        || !char_before(&lower, a).is_some_and(is_ascii_word);
                    let bounded_end = !whole.ends_with(|c: char| c.is_ascii_alphanumeric())
                        || !char_after(&lower, b).is_some_and(is_ascii_word);
                    assert!(!(bounded_start && bounded_end), "{name:?} survived in {out:?} (from {text:?})");
                    from = b;
                }
            }
            for w in ["seen", "kimchi", "annals"] {
                assert_eq!(text.to_lowercase().matches(w).count(), out.to_lowercase().matches(w).count(), "{text:?}");
            }
        }
    }

    /// A name that loses its claim to an overlapping one does not hide the names inside or
    /// after it (Hangul and Latin names, from either matcher).
    #[test]
    fn overlapping_names_are_all_found() {
        let s = scrubber_with(&["Anne Marie", "Marie Zoé"]);
        assert_eq!(s.scrub("Anne Marie Zoé").0, "[REDACTED:NAME] [REDACTED:NAME]");
        let s = scrubber_with(&["Kim Minji", "Minji 박서연", "박서연"]);
        assert_eq!(s.scrub("Kim Minji 박서연 왔음").0, "[REDACTED:NAME] [REDACTED:NAME] 왔음");
        let s = scrubber_with(&["김민지", "민지박"]);
        assert_eq!(s.scrub("김민지박").0, "[REDACTED:NAME]박");
        let (out, _) = s.scrub("민지박 김민지");
        assert_eq!(out, "[REDACTED:NAME] [REDACTED:NAME]");
    }

    #[test]
    fn clinical_text_is_unchanged() {
        let s = scrubber_with(&["Minji Kim", "김민지"]);
        for text in [
            "Adenocarcinoma, TPS 60%, 3.2 cm mass in RUL; EGFR wild-type.",
            "폐선암, PD-L1 TPS 60%, 우상엽 3.2 cm 종괴. EGFR 변이 없음.",
            "Invasive ductal carcinoma, grade 2/3, ER 90%, HER2 1+, Ki-67 15%.",
            "",
        ] {
            assert_unchanged(&s, text);
        }
    }

    #[test]
    fn many_kinds_in_one_string() {
        let s = scrubber_with(&["Minji Kim", "김민지"]);
        let planted = [
            "Minji Kim",
            "김민지",
            "kim.minji@snubh.org",
            "010-1234-5678",
            "850315-1234567",
            "123-45-6789",
            "12345678",
            "S24-012345",
            "2024-03-15",
            "March 16, 2024",
            "https://pacs.snubh.org/v?id=1",
            "192.168.10.23",
            "fe80::1ff:fe23:4567:890a",
        ];
        let text = format!(
            "Patient {} ({}) e-mail {}, mobile {}, RRN {}, SSN {}, MRN: {}, specimen {} taken {} and {}; \
             images at {} from {} / {}.",
            planted[0],
            planted[1],
            planted[2],
            planted[3],
            planted[4],
            planted[5],
            planted[6],
            planted[7],
            planted[8],
            planted[9],
            planted[10],
            planted[11],
            planted[12]
        );
        let (out, counts) = s.scrub(&text);
        for v in planted {
            assert!(!out.contains(v), "{v:?} survived in {out:?}");
        }
        for part in ["Minji", "Kim", "1234", "5678", "2024"] {
            assert!(!out.contains(part), "{part:?} survived in {out:?}");
        }
        let expected: BTreeMap<PhiKind, usize> = [
            (PhiKind::Name, 2),
            (PhiKind::Email, 1),
            (PhiKind::Phone, 1),
            (PhiKind::Rrn, 1),
            (PhiKind::Ssn, 1),
            (PhiKind::Mrn, 2),
            (PhiKind::Date, 2),
            (PhiKind::Url, 1),
            (PhiKind::Ip, 2),
        ]
        .into_iter()
        .collect();
        assert_eq!(counts, expected, "{out}");
        assert_eq!(out.matches("[REDACTED:").count(), 13);
    }

    #[test]
    fn redaction_tags_are_not_rematched() {
        // "Name" and "Date" are names here, yet the tags they appear in stay intact.
        let s = scrubber_with(&["Redacted Name", "Date"]);
        let (once, counts) = s.scrub("Redacted Name phoned 010-1234-5678 on 2024-03-15 (Date).");
        assert_eq!(once, "[REDACTED:NAME] phoned [REDACTED:PHONE] on [REDACTED:DATE] ([REDACTED:NAME]).");
        assert_eq!(counts.values().sum::<usize>(), 4);
        let (twice, counts) = s.scrub(&once);
        assert_eq!(twice, once);
        assert!(counts.is_empty());
    }

    #[test]
    fn every_builtin_pattern_compiles() {
        for p in [URL_RE, EMAIL_RE, RRN_RE, SSN_RE, IPV4_RE, IPV6_RE] {
            assert!(Regex::new(p).is_ok(), "{p}");
        }
        for (p, _) in date_patterns() {
            assert!(Regex::new(&p).is_ok(), "{p}");
        }
        for (p, _) in phone_patterns() {
            assert!(Regex::new(p).is_ok(), "{p}");
        }
        for p in Scrubber::default_mrn_patterns() {
            assert!(Regex::new(&ascii_word_boundaries(&p)).is_ok(), "{p}");
        }
    }
}
