//! Randomised reading order: each reader gets the campaign's slides in their own order, derived
//! from the campaign's recorded seed and the reader's username only, so anyone can reproduce it.
//!
//! Algorithm (stable by design, unlike `rand`'s generators, which may change between versions):
//! the reader's stream seed is `seed XOR FNV-1a-64(username)`; numbers come from SplitMix64
//! (Steele, Lea & Flood 2014, the reference constants of `java.util.SplittableRandom`); the
//! slides, sorted by label, are shuffled by Fisher–Yates (Knuth TAOCP vol. 2, Algorithm P)
//! drawing `j = next() mod (i + 1)` for i from n−1 down to 1.

/// SplitMix64: a tiny generator whose outputs are fixed by its published constants.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// FNV-1a, 64-bit (Fowler, Noll & Vo; offset basis and prime from the IETF draft).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The reader's order of `labels` (sorted first, so the input order does not matter).
pub fn reading_order(seed: i64, username: &str, labels: &[String]) -> Vec<String> {
    let mut out = labels.to_vec();
    out.sort();
    let mut rng = SplitMix64(seed as u64 ^ fnv1a(username.as_bytes()));
    for i in (1..out.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        out.swap(i, j);
    }
    out
}

/// A fresh seed for a new campaign (recorded with it).
pub fn new_seed() -> i64 {
    // Kept positive and below 2^53 so it reads the same in JSON, spreadsheets and JavaScript.
    (rand::random::<u64>() >> 11) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_reference_sequence() {
        // First outputs of SplitMix64 seeded with 0 (as in the reference C implementation by
        // Vigna, https://prng.di.unimi.it/splitmix64.c).
        let mut r = SplitMix64(0);
        assert_eq!(r.next(), 0xe220a8397b1dcdaf);
        assert_eq!(r.next(), 0x6e789e6aa1b965f4);
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn order_is_a_reproducible_permutation_per_reader() {
        let labels: Vec<String> = (1..=20).map(|i| format!("S-{i:02}")).collect();
        let a = reading_order(42, "dr_kim", &labels);
        let mut reversed = labels.clone();
        reversed.reverse();
        assert_eq!(a, reading_order(42, "dr_kim", &reversed), "input order must not matter");
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, labels, "a permutation");
        assert_ne!(a, labels, "shuffled");
        assert_ne!(a, reading_order(42, "dr_lee", &labels), "each reader has their own order");
        assert_ne!(a, reading_order(43, "dr_kim", &labels), "the seed decides");
    }
}
