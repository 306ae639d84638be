//! RFC 8785 (JSON Canonicalization Scheme) for the audit hash chain, written straight from
//! `serde_json` values: object keys sorted, no whitespace, numbers in ECMAScript form
//! (RFC 8785 §3.2.2.3, via `ryu-js`), strings escaped as §3.2.2.2. Checked against the
//! `serde_json_canonicalizer` crate in the tests; this writer avoids its per-object buffering,
//! which dominated large imports.

use serde_json::Value;

/// Appends the canonical form of `v` to `out`.
pub fn write(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                write_f64_or_int(out, i as f64, Some(i.to_string()));
            } else if let Some(u) = n.as_u64() {
                write_f64_or_int(out, u as f64, Some(u.to_string()));
            } else {
                write_f64_or_int(out, n.as_f64().unwrap_or(0.0), None);
            }
        }
        Value::String(s) => write_str(out, s),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(out, x);
            }
            out.push(']');
        }
        Value::Object(m) => {
            // RFC 8785 §3.2.3 sorts keys by UTF-16 code units; `serde_json::Map` (a BTreeMap)
            // iterates by UTF-8 bytes, which is the same order unless keys mix characters above
            // U+FFFF with ones in U+E000..U+FFFF: sort those few explicitly.
            let mut keys: Vec<&String> = m.keys().collect();
            if keys.iter().any(|k| k.chars().any(|c| c as u32 >= 0xE000)) {
                keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            }
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(out, k);
                out.push(':');
                write(out, &m[k]);
            }
            out.push('}');
        }
    }
}

/// ECMAScript number serialisation: integers that are exactly representable print as integers
/// (i64 values beyond 2^53 are printed by ryu-js like any double, as JavaScript would).
fn write_f64_or_int(out: &mut String, f: f64, exact: Option<String>) {
    match exact {
        Some(s) if f.abs() < 9_007_199_254_740_992.0 => out.push_str(&s),
        _ => {
            let mut buf = ryu_js::Buffer::new();
            out.push_str(buf.format(f));
        }
    }
}

/// RFC 8785 §3.2.2.2: `"` and `\` escaped, control characters as \b \t \n \f \r or \u00xx
/// (lower-case hex), everything else as is.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

pub fn to_string(v: &Value) -> String {
    let mut s = String::new();
    write(&mut s, v);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use serde_json::json;

    fn random_value(rng: &mut rand_chacha::ChaCha12Rng, depth: u32) -> Value {
        match rng.gen_range(0..if depth > 3 { 5 } else { 7 }) {
            0 => Value::Null,
            1 => json!(rng.gen_bool(0.5)),
            2 => json!(rng.gen_range(-1_000_000_i64..1_000_000)),
            3 => {
                let f: f64 = match rng.gen_range(0..4) {
                    0 => rng.gen_range(-1e3..1e3),
                    1 => rng.gen_range(0.0..1.0) * 1e-9,
                    2 => rng.gen_range(1e20..1e22),
                    _ => (rng.gen_range(0..1000) as f64) / 10.0,
                };
                json!(f)
            }
            4 => {
                let pool = ["a", "é", "김민지", "\"q\"", "back\\slash", "\u{1}\u{1f}\n\t", "€", "😀", "\u{e000}"];
                json!((0..rng.gen_range(0..4)).map(|_| pool[rng.gen_range(0..pool.len())]).collect::<String>())
            }
            5 => Value::Array((0..rng.gen_range(0..4)).map(|_| random_value(rng, depth + 1)).collect()),
            _ => {
                let keys = ["b", "a", "aa", "é", "😀", "\u{e000}", "Z", "10", "9"];
                let mut m = serde_json::Map::new();
                for _ in 0..rng.gen_range(0..5) {
                    m.insert(keys[rng.gen_range(0..keys.len())].to_string(), random_value(rng, depth + 1));
                }
                Value::Object(m)
            }
        }
    }

    #[test]
    fn matches_the_reference_canonicalizer() {
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(8785);
        for _ in 0..5000 {
            let v = random_value(&mut rng, 0);
            let reference = serde_json_canonicalizer::to_string(&v).unwrap();
            assert_eq!(to_string(&v), reference, "{v}");
        }
    }

    #[test]
    fn rfc8785_examples() {
        // RFC 8785 §3.2.2.3 number examples.
        for (f, s) in [(1e21, "1e+21"), (1e-7, "1e-7"), (123456789.0, "123456789"), (0.000001, "0.000001"), (-0.0, "0")]
        {
            assert_eq!(to_string(&json!(f)), s);
        }
        assert_eq!(to_string(&json!({"b": [1, "x\u{f}"], "a": null})), r#"{"a":null,"b":[1,"x\u000f"]}"#);
    }
}
