//! Two-factor sign-in (NIST SP 800-63B §5.1.4–5.1.5, multi-factor OTP): the password plus a
//! time-based one-time code (RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps, one step of clock
//! drift either way) from an authenticator app, or one of ten single-use recovery codes for a
//! lost phone. A code is accepted once: a step at or before the last accepted one is refused
//! (RFC 6238 §5.2). Setting up, turning off, new recovery codes and an administrator's reset are
//! audited on the system chain; a wrong code counts like a wrong password (the account lockout).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use rand::Rng;
use serde_json::json;
use totp_rs::{Algorithm, Secret, TOTP};

use super::users::{self, User};
use super::{constant_time_eq, sessions, token_hash, Actor};
use crate::audit::{self, Action, Chain, Change, Entity};
use crate::db::schema::{recovery_codes, users as users_t};
use crate::db::{now, write_tx, Conn};
use crate::error::{Error, Result};

/// The name authenticator apps show above the code.
pub const ISSUER: &str = "Evidentia";
const STEP_SECS: u64 = 30;
const DIGITS: usize = 6;
/// Recovery codes made at a time.
pub const RECOVERY_CODES: usize = 10;
/// Sixteen characters from 32 (no i, l, o, 1): 80 bits each, so their SHA-256 is enough.
const RECOVERY_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz023456789";

/// What completed a sign-in after the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactor {
    Totp,
    /// A recovery code, with how many are left unused.
    RecoveryCode {
        left: i64,
    },
}

impl SecondFactor {
    /// As the login audit event records it.
    pub fn audit_json(&self) -> serde_json::Value {
        match self {
            SecondFactor::Totp => json!({"second_factor": "totp"}),
            SecondFactor::RecoveryCode { left } => {
                json!({"second_factor": "recovery_code", "recovery_codes_left": left})
            }
        }
    }
}

/// A new random secret (160 bits, the length RFC 4226 §4 recommends), base32 as apps take it.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 20];
    rand::rngs::OsRng.fill(&mut bytes);
    Secret::Raw(bytes.to_vec()).to_encoded().to_string()
}

fn totp(secret_b32: &str) -> Result<TOTP> {
    let bytes = Secret::Encoded(secret_b32.to_string())
        .to_bytes()
        .map_err(|e| Error::Internal(anyhow::anyhow!("stored TOTP secret is not base32: {e:?}")))?;
    Ok(TOTP::new_unchecked(Algorithm::SHA1, DIGITS, 1, STEP_SECS, bytes))
}

/// The time step (RFC 6238's T) whose code `code` is, within one step of `unix_secs`.
pub fn matching_step(secret_b32: &str, code: &str, unix_secs: u64) -> Result<Option<u64>> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let t = totp(secret_b32)?;
    let now = unix_secs / STEP_SECS;
    Ok([now.saturating_sub(1), now, now + 1]
        .into_iter()
        .find(|step| constant_time_eq(t.generate(step * STEP_SECS).as_bytes(), code.as_bytes())))
}

/// The `otpauth://` URI an app scans (Google Authenticator's Key Uri Format).
pub fn otpauth_uri(username: &str, secret_b32: &str) -> String {
    let label = crate::web::extract::urlencode(&format!("{ISSUER}:{username}"));
    format!(
        "otpauth://totp/{label}?secret={secret_b32}&issuer={ISSUER}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}"
    )
}

/// The URI as a QR code, an SVG drawn here (no image leaves the server, no script draws it).
pub fn qr_svg(uri: &str) -> Result<String> {
    let code = qrcode::QrCode::new(uri.as_bytes()).map_err(|e| Error::Internal(anyhow::anyhow!("QR code: {e}")))?;
    Ok(code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(220, 220).quiet_zone(true).build())
}

fn new_recovery_code() -> String {
    let mut rng = rand::rngs::OsRng;
    let chars: Vec<char> =
        (0..16).map(|_| RECOVERY_ALPHABET[rng.gen_range(0..RECOVERY_ALPHABET.len())] as char).collect();
    chars.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

/// A recovery code as typed (any case, with or without dashes and spaces) in its stored form.
fn recovery_hash(typed: &str) -> String {
    let plain: String = typed.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_lowercase();
    token_hash(&plain)
}

fn unix_secs(t: NaiveDateTime) -> u64 {
    u64::try_from(t.and_utc().timestamp()).unwrap_or(0)
}

/// Unused recovery codes of a user.
pub fn recovery_codes_left(conn: &mut Conn, user_id: i32) -> Result<i64> {
    Ok(recovery_codes::table
        .filter(recovery_codes::user_id.eq(user_id))
        .filter(recovery_codes::used_at.is_null())
        .count()
        .get_result(conn)?)
}

/// Retires the unused codes and stores `RECOVERY_CODES` new ones; returns them (shown once).
fn replace_recovery_codes(conn: &mut Conn, user_id: i32) -> Result<Vec<String>> {
    let t = now();
    diesel::update(
        recovery_codes::table.filter(recovery_codes::user_id.eq(user_id)).filter(recovery_codes::used_at.is_null()),
    )
    .set(recovery_codes::used_at.eq(Some(t)))
    .execute(conn)?;
    let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
    for c in &codes {
        diesel::insert_into(recovery_codes::table)
            .values((
                recovery_codes::user_id.eq(user_id),
                recovery_codes::code_hash.eq(recovery_hash(c)),
                recovery_codes::created_at.eq(t),
            ))
            .execute(conn)?;
    }
    Ok(codes)
}

fn own(actor: &Actor, user: &User) -> Result<()> {
    if actor.user_id == Some(user.id) {
        Ok(())
    } else {
        Err(Error::forbidden("you can only set up two-factor sign-in for your own account"))
    }
}

/// Starts setting up two-factor sign-in: a new secret waits for its first code (an earlier one
/// that was never confirmed is replaced). Returns the secret for the QR code.
pub fn start_enrolment(conn: &mut Conn, actor: &Actor, user: &User) -> Result<String> {
    own(actor, user)?;
    if user.has_mfa() {
        return Err(Error::Conflict(
            "two-factor sign-in is already set up: turn it off first to move it to another app".into(),
        ));
    }
    let secret = new_secret();
    diesel::update(users_t::table.find(user.id)).set(users_t::totp_pending_secret.eq(Some(&secret))).execute(conn)?;
    Ok(secret)
}

/// Confirms the set-up with a code from the app: two-factor sign-in is on, every other session
/// of the user ends (they were signed in with the password alone), and the recovery codes are
/// returned (to show once). Audited.
pub fn confirm_enrolment(
    conn: &mut Conn,
    actor: &Actor,
    user_id: i32,
    code: &str,
    at: NaiveDateTime,
    keep_session: Option<&str>,
) -> Result<Vec<String>> {
    write_tx(conn, |conn| {
        let user = users::get(conn, user_id)?;
        own(actor, &user)?;
        if user.has_mfa() {
            return Err(Error::Conflict("two-factor sign-in is already set up".into()));
        }
        let Some(secret) = user.totp_pending_secret.clone() else {
            return Err(Error::Conflict("start the set-up again: no new authenticator is waiting for its code".into()));
        };
        let Some(step) = matching_step(&secret, code, unix_secs(at))? else {
            return Err(Error::invalid(
                "code",
                "is not the current code of the new authenticator: scan the QR code again, check the phone's clock and type the 6 digits it shows",
            ));
        };
        diesel::update(users_t::table.find(user.id))
            .set((
                users_t::totp_secret.eq(Some(&secret)),
                users_t::totp_pending_secret.eq(None::<String>),
                users_t::totp_enabled_at.eq(Some(at)),
                users_t::totp_last_step.eq(Some(i64::try_from(step).unwrap_or(i64::MAX))),
                users_t::updated_at.eq(now()),
            ))
            .execute(conn)?;
        let codes = replace_recovery_codes(conn, user.id)?;
        // What was opened with the password alone closes: other sessions and API tokens.
        let ended = sessions::end_all_for_user(conn, user.id, keep_session)?;
        let revoked = super::tokens::revoke_all_for_user(conn, user.id)?;
        audit::record(
            conn,
            Change::new(Chain::System, &actor.name, Action::EnableMfa, Entity::User, &user.username).after(json!({
                "method": "totp", "recovery_codes": codes.len(), "sessions_ended": ended, "tokens_revoked": revoked
            })),
        )?;
        Ok(codes)
    })
}

/// Checks a second factor typed at sign-in: a code of the app (once per time step) or an unused
/// recovery code (then used up). `None`: neither; the caller counts it as a failed attempt.
pub fn check_second_factor(
    conn: &mut Conn,
    user_id: i32,
    typed: &str,
    at: NaiveDateTime,
) -> Result<Option<SecondFactor>> {
    write_tx(conn, |conn| use_second_factor(conn, user_id, typed, at))
}

/// [`check_second_factor`] inside the caller's transaction.
fn use_second_factor(conn: &mut Conn, user_id: i32, typed: &str, at: NaiveDateTime) -> Result<Option<SecondFactor>> {
    {
        let user = users::get(conn, user_id)?;
        let Some(secret) = user.totp_secret.as_deref().filter(|_| user.has_mfa()) else { return Ok(None) };
        if let Some(step) = matching_step(secret, typed, unix_secs(at))? {
            let step = i64::try_from(step).unwrap_or(i64::MAX);
            if user.totp_last_step.is_some_and(|last| step <= last) {
                // Already used (or an older one): a code seen over someone's shoulder is spent.
                return Ok(None);
            }
            diesel::update(users_t::table.find(user.id)).set(users_t::totp_last_step.eq(Some(step))).execute(conn)?;
            return Ok(Some(SecondFactor::Totp));
        }
        let used = diesel::update(
            recovery_codes::table
                .filter(recovery_codes::user_id.eq(user.id))
                .filter(recovery_codes::code_hash.eq(recovery_hash(typed)))
                .filter(recovery_codes::used_at.is_null()),
        )
        .set(recovery_codes::used_at.eq(Some(now())))
        .execute(conn)?;
        if used == 0 {
            return Ok(None);
        }
        Ok(Some(SecondFactor::RecoveryCode { left: recovery_codes_left(conn, user.id)? }))
    }
}

/// New recovery codes (the old unused ones stop working), asked for with a current code of the
/// app. Audited.
pub fn renew_recovery_codes(
    conn: &mut Conn,
    actor: &Actor,
    user_id: i32,
    code: &str,
    at: NaiveDateTime,
) -> Result<Vec<String>> {
    write_tx(conn, |conn| {
        let user = users::get(conn, user_id)?;
        own(actor, &user)?;
        require_current_code(conn, &user, code, at)?;
        let codes = replace_recovery_codes(conn, user.id)?;
        audit::record(
            conn,
            Change::new(Chain::System, &actor.name, Action::NewRecoveryCodes, Entity::User, &user.username)
                .after(json!({"recovery_codes": codes.len()})),
        )?;
        Ok(codes)
    })
}

/// A code of the user's app, accepted once (as at sign-in); otherwise a field error.
fn require_current_code(conn: &mut Conn, user: &User, code: &str, at: NaiveDateTime) -> Result<()> {
    match use_second_factor(conn, user.id, code, at)? {
        Some(SecondFactor::Totp) => Ok(()),
        _ => Err(Error::invalid("code", "is not the current code of your authenticator app")),
    }
}

/// Turns two-factor sign-in off for one's own account, with a current code of the app; refused
/// where it is required (`required`: an administrator on a server that requires it for them).
/// Audited.
pub fn disable(
    conn: &mut Conn,
    actor: &Actor,
    user_id: i32,
    code: &str,
    at: NaiveDateTime,
    required: bool,
) -> Result<()> {
    write_tx(conn, |conn| {
        let user = users::get(conn, user_id)?;
        own(actor, &user)?;
        if required {
            return Err(Error::Conflict(
                "administrators must sign in with two factors on this server: to move to a new phone, ask another administrator to reset it".into(),
            ));
        }
        if !user.has_mfa() {
            return Err(Error::Conflict("two-factor sign-in is not set up".into()));
        }
        require_current_code(conn, &user, code, at)?;
        clear(conn, user.id)?;
        audit::record(conn, Change::new(Chain::System, &actor.name, Action::DisableMfa, Entity::User, &user.username))?;
        Ok(())
    })
}

/// An administrator's reset of someone's two-factor sign-in (a lost phone and no recovery code
/// left): it is off, the recovery codes are retired and every session of the user ends; the user
/// sets it up again at the next sign-in where it is required. Audited with the reason.
pub fn reset(conn: &mut Conn, actor: &Actor, user_id: i32, reason: &str) -> Result<User> {
    if !actor.is_admin {
        return Err(Error::forbidden("only administrators reset two-factor sign-in"));
    }
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(Error::invalid("reason", "required: say why (e.g. the phone was lost; identity checked by phone)"));
    }
    write_tx(conn, |conn| {
        let user = users::get(conn, user_id)?;
        if !user.has_mfa() && user.totp_pending_secret.is_none() {
            return Err(Error::Conflict(format!("'{}' has no two-factor sign-in to reset", user.username)));
        }
        clear(conn, user.id)?;
        let ended = sessions::end_all_for_user(conn, user.id, None)?;
        audit::record(
            conn,
            Change::new(Chain::System, &actor.name, Action::ResetMfa, Entity::User, &user.username)
                .after(json!({"sessions_ended": ended}))
                .because(reason),
        )?;
        users::get(conn, user.id)
    })
}

fn clear(conn: &mut Conn, user_id: i32) -> Result<()> {
    diesel::update(users_t::table.find(user_id))
        .set((
            users_t::totp_secret.eq(None::<String>),
            users_t::totp_pending_secret.eq(None::<String>),
            users_t::totp_enabled_at.eq(None::<NaiveDateTime>),
            users_t::totp_last_step.eq(None::<i64>),
            users_t::updated_at.eq(now()),
        ))
        .execute(conn)?;
    diesel::update(
        recovery_codes::table.filter(recovery_codes::user_id.eq(user_id)).filter(recovery_codes::used_at.is_null()),
    )
    .set(recovery_codes::used_at.eq(Some(now())))
    .execute(conn)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 rows (the seed "12345678901234567890"), last 6 digits.
    #[test]
    fn codes_match_the_rfc_6238_test_vectors() {
        let secret = Secret::Raw(b"12345678901234567890".to_vec()).to_encoded().to_string();
        for (t, code) in [
            (59u64, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ] {
            assert_eq!(matching_step(&secret, code, t).unwrap(), Some(t / 30), "T = {t}");
        }
        // One step of drift either way, not two.
        assert_eq!(matching_step(&secret, "287082", 59 + 30).unwrap(), Some(1));
        assert_eq!(matching_step(&secret, "287082", 59 + 60).unwrap(), None);
        assert_eq!(matching_step(&secret, "28708", 59).unwrap(), None);
        assert_eq!(matching_step(&secret, "abcdef", 59).unwrap(), None);
    }

    #[test]
    fn recovery_codes_are_long_distinct_and_typed_loosely() {
        let a = new_recovery_code();
        assert_eq!(a.len(), 19, "{a}");
        assert_ne!(a, new_recovery_code());
        assert_eq!(recovery_hash(&a), recovery_hash(&a.to_uppercase().replace('-', " ")));
    }

    #[test]
    fn the_qr_code_is_an_svg_of_the_uri() {
        let uri = otpauth_uri("kim.minji", "JBSWY3DPEHPK3PXP");
        assert!(
            uri.starts_with("otpauth://totp/Evidentia%3Akim.minji?secret=JBSWY3DPEHPK3PXP&issuer=Evidentia"),
            "{uri}"
        );
        let svg = qr_svg(&uri).unwrap();
        assert!(svg.contains("<svg") && svg.contains("</svg>"), "{svg}");
    }
}
