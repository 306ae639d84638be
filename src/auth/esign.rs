//! Electronic signatures (21 CFR Part 11 §11.50, §11.200), shared by the analysis plan and the
//! study lock: only a signed-in user signs, as themselves; a signature carries one of the
//! meanings below; the password is re-entered for each signature.

use super::{passwords, users, Actor};
use crate::db::Conn;
use crate::error::{Error, Result};

/// Meanings a signer can give (§11.50(a)(3)).
pub const MEANINGS: &[&str] = &["authorship", "review", "approval", "responsibility"];

/// Refuses a meaning that is not one of `MEANINGS`, naming the field.
pub fn check_meaning(meaning: &str) -> Result<()> {
    if MEANINGS.contains(&meaning) {
        Ok(())
    } else {
        Err(Error::invalid("meaning", format!("'{meaning}': one of {}", MEANINGS.join(", "))))
    }
}

/// The account of the user behind `actor`, who is about to sign: never the CLI operator or the
/// system, never someone else's account.
pub fn signer(conn: &mut Conn, actor: &Actor) -> Result<users::User> {
    actor
        .user_id
        .and_then(|uid| users::find_by_username(conn, &actor.name).ok().flatten().filter(|u| u.id == uid))
        .ok_or_else(|| Error::forbidden("only a signed-in user signs, with their own password"))
}

/// Whether `password` is the signer's (re-entered for every signature).
pub fn password_ok(user: &users::User, password: &str) -> bool {
    passwords::verify(&user.password_hash, password)
}
