//! Electronic signatures (21 CFR Part 11 §11.50, §11.200), shared by the analysis plan and the
//! study lock: only a signed-in user signs, as themselves; a signature carries one of the
//! meanings below; the password is re-entered for each signature.

use super::{passwords, users, Actor};
use crate::db::Conn;
use crate::error::{Error, Result};

crate::db::text_enum! {
    /// The meaning a signer gives their signature (§11.50(a)(3)).
    pub enum Meaning {
        Authorship = "authorship",
        Review = "review",
        Approval = "approval",
        Responsibility = "responsibility",
    }
}

impl Meaning {
    /// The meaning typed or chosen; another is refused, naming the field.
    pub fn parse_input(meaning: &str) -> Result<Meaning> {
        Meaning::parse(meaning).ok_or_else(|| {
            let all: Vec<&str> = Meaning::ALL.iter().map(Meaning::as_str).collect();
            Error::invalid("meaning", format!("'{meaning}': one of {}", all.join(", ")))
        })
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
