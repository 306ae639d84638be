//! Accounts and access: password hashing, users, sessions, API tokens, study roles, CSRF.

pub mod csrf;
pub mod esign;
pub mod mfa;
pub mod passwords;
pub mod permissions;
pub mod sessions;
pub mod sso;
pub mod throttle;
pub mod tokens;
pub mod users;

use rand::RngCore;
use sha2::{Digest, Sha256};

/// Who is acting: a signed-in user, an API token's owner, or the local CLI operator.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Actor {
    pub user_id: Option<i32>,
    /// As written to the audit trail: the username, or `cli:<OS user>`.
    pub name: String,
    pub full_name: String,
    pub is_admin: bool,
}

impl Actor {
    pub fn from_user(u: &users::User) -> Self {
        Actor { user_id: Some(u.id), name: u.username.clone(), full_name: u.full_name.clone(), is_admin: u.is_admin }
    }
    /// The operator at the server's terminal: whoever runs the binary already holds the database.
    pub fn cli_operator() -> Self {
        let os_user = os_username();
        Actor {
            user_id: None,
            name: format!("cli:{os_user}"),
            full_name: format!("CLI operator {os_user}"),
            is_admin: true,
        }
    }
    /// The server itself (first-start admin, job workers).
    pub fn system() -> Self {
        Actor { user_id: None, name: "system".into(), full_name: "Evidentia".into(), is_admin: true }
    }
}

/// The OS account running this process: `$USER`, else the passwd entry of our uid.
fn os_username() -> String {
    if let Some(u) = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).ok().filter(|u| !u.is_empty()) {
        return u;
    }
    let uid = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        s.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
    });
    let from_passwd = uid.and_then(|uid| {
        std::fs::read_to_string("/etc/passwd").ok().and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == uid).then(|| f[0].to_string())
            })
        })
    });
    from_passwd.unwrap_or_else(|| "unknown".into())
}

/// 32 random bytes as hex: session tokens, API tokens, CSRF tokens.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// What is stored instead of a token: its SHA-256 (tokens are random, so no salt is needed).
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares secrets without an early exit.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
