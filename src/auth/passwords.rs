//! argon2id password hashing at (at least) the OWASP parameters, and the password policy.
//! Both are slow on purpose: call them off the async threads (`web::block`).

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::Rng;

use crate::error::{Error, Result};

pub const MIN_LENGTH: usize = 10;

/// OWASP Password Storage Cheat Sheet: argon2id, m = 19456 KiB, t = 2, p = 1.
fn argon2() -> Argon2<'static> {
    // The parameters are constants within argon2's documented ranges, so `new` cannot fail.
    let params = Params::new(19_456, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The password policy (21 CFR 11.300, NIST SP 800-63B §5.1.1.2): at least [`MIN_LENGTH`]
/// characters, at most 1024 bytes, not one of the common passwords shipped with the product
/// (`common-passwords.txt`), not a run of one character or of consecutive characters
/// ("aaaaaaaaaa", "0123456789", "abcdefghij"), and not containing the username. No composition
/// rules and no forced periodic change: NIST advises against both.
pub fn check_policy(field: &str, password: &str, username: &str) -> Result<()> {
    if password.chars().count() < MIN_LENGTH {
        return Err(Error::invalid(field, format!("must be at least {MIN_LENGTH} characters")));
    }
    if password.len() > 1024 {
        return Err(Error::invalid(field, "must be at most 1024 bytes"));
    }
    let lower = password.to_lowercase();
    if common_passwords().contains(lower.as_str()) {
        return Err(Error::invalid(
            field,
            "is one of the most common passwords (found in leaked password lists): choose another",
        ));
    }
    let chars: Vec<u32> = lower.chars().map(u32::from).collect();
    let step = |a: u32, b: u32| i64::from(b) - i64::from(a);
    let steps: Vec<i64> = chars.windows(2).map(|w| step(w[0], w[1])).collect();
    if steps.iter().all(|&d| d == 0) || steps.iter().all(|&d| d == 1) || steps.iter().all(|&d| d == -1) {
        return Err(Error::invalid(
            field,
            "is one character repeated or a run of consecutive characters: choose another",
        ));
    }
    let user = username.trim().to_lowercase();
    if user.chars().count() >= 3 && lower.contains(&user) {
        return Err(Error::invalid(field, "contains the username: choose another"));
    }
    Ok(())
}

/// The shipped list, lower case, read once.
fn common_passwords() -> &'static std::collections::HashSet<&'static str> {
    static LIST: OnceLock<std::collections::HashSet<&'static str>> = OnceLock::new();
    LIST.get_or_init(|| {
        include_str!("common-passwords.txt").lines().filter(|l| !l.starts_with('#') && !l.is_empty()).collect()
    })
}

pub fn hash(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing password: {e}").into())
}

pub fn verify(stored: &str, password: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => argon2().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Spends the same time as a real verification, for unknown usernames, so that neither the
/// timing nor the message tells whether an account exists.
pub fn dummy_verify(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let h = DUMMY.get_or_init(|| hash("evidentia-dummy-password").unwrap_or_default());
    let _ = verify(h, password);
}

/// A random password for first start and admin resets: 20 characters, no look-alikes.
pub fn generate() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..20).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verifies_and_uses_owasp_parameters() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify(&h, "correct horse battery"));
        assert!(!verify(&h, "wrong"));
        assert!(!verify("not a hash", "x"));
    }

    #[test]
    fn policy_rejects_short_passwords() {
        assert!(check_policy("password", "short", "kim").is_err());
        assert!(check_policy("password", "long enough pw", "kim").is_ok());
        for (weak, why) in [
            ("qwertyuiop", "most common"),
            ("Password123", "most common"),
            ("aaaaaaaaaaaa", "repeated"),
            ("0123456789", "consecutive"),
            ("zyxwvutsrq", "consecutive"),
            ("kimminji-2026", "username"),
        ] {
            let e = check_policy("password", weak, "KimMinji").unwrap_err().to_string();
            assert!(e.contains(why), "{weak}: {e}");
        }
    }
}
