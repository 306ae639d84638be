//! Two-factor sign-in: setting up an authenticator app, signing in with its codes and with
//! recovery codes, replays and wrong codes, administrators who must use it, studies that require
//! it, and an administrator's reset. The codes are computed here from RFC 6238 and RFC 4648
//! (HMAC-SHA-1 of the time step over the base32 secret), not by the crate the server uses.

use hmac::{Hmac, Mac};

use crate::helpers::*;

/// RFC 4648 base32 (upper case, no padding) to bytes.
fn base32_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut value, mut out) = (0u32, 0u64, Vec::new());
    for c in s.trim_end_matches('=').bytes() {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base32 letter") as u64;
        value = (value << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((value >> bits) as u8);
            value &= (1 << bits) - 1;
        }
    }
    out
}

/// RFC 6238 with RFC 4226's dynamic truncation: the 6-digit code of time step `step`.
pub fn code_at(secret_b32: &str, step: u64) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&base32_decode(secret_b32)).unwrap();
    mac.update(&step.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let off = (h[19] & 0x0f) as usize;
    let bin = u32::from_be_bytes([h[off] & 0x7f, h[off + 1], h[off + 2], h[off + 3]]);
    format!("{:06}", bin % 1_000_000)
}

pub fn step_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() / 30
}

#[test]
fn the_independent_code_matches_rfc_6238_appendix_b() {
    let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"; // "12345678901234567890"
    assert_eq!(code_at(secret, 59 / 30), "287082");
    assert_eq!(code_at(secret, 1_111_111_109 / 30), "081804");
    assert_eq!(code_at(secret, 20_000_000_000 / 30), "353130");
}

/// Sets up two-factor sign-in for the signed-in `c`; returns the secret, the recovery codes
/// and the step whose code was used.
async fn set_up(c: &Client) -> (String, Vec<String>, u64) {
    let r = c.post("/account/mfa/start", &[]).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("<svg") && page.contains("Set up two-factor sign-in"), "{page}");
    let secret = page.split(r#"id="totp-secret">"#).nth(1).unwrap().split('<').next().unwrap().to_string();
    let step = step_now();
    let r = c.post("/account/mfa/confirm", &[("code", &code_at(&secret, step))]).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    let codes: Vec<String> = page
        .split(r#"id="recovery-codes">"#)
        .nth(1)
        .unwrap()
        .split("</pre>")
        .next()
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    (secret, codes, step)
}

/// Signs in with the password, then `code`; returns the answer to the code.
async fn sign_in_with(app: &TestApp, username: &str, code: &str) -> (Client, reqwest::Response) {
    let mut c = app.client();
    let r = c.try_login(username, PASSWORD).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/login/code?next=");
    let r = c.post("/login/code", &[("code", code), ("next", "")]).await;
    (c, r)
}

#[tokio::test]
async fn a_user_sets_up_an_authenticator_and_signs_in_with_its_codes_each_once() {
    // More sign-ins for one username than the throttle lets through in a minute.
    let app = spawn_app_with(|c| c.login_per_username_per_minute = 100);
    let c = app.login("manager").await;
    let other_session = app.login("manager").await;
    // A wrong first code turns nothing on.
    c.post("/account/mfa/start", &[]).await;
    let r = c.post("/account/mfa/confirm", &[("code", "000000")]).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("is not the current code of the new authenticator"));
    assert!(audit_events(&app, "enable_mfa").is_empty());

    let (secret, codes, step) = set_up(&c).await;
    assert_eq!(codes.len(), 10, "{codes:?}");
    let on = audit_events(&app, "enable_mfa");
    assert_eq!(on.len(), 1);
    assert!(on[0].new_value.as_deref().unwrap().contains(r#""sessions_ended":1"#), "{:?}", on[0].new_value);
    assert!(!on[0].new_value.as_deref().unwrap().contains(&secret), "the secret is not in the trail");
    // The session that set it up stays; the other one (password alone) ended.
    assert_eq!(c.get("/studies").await.status(), 200);
    assert_eq!(other_session.get("/studies").await.status(), 303);
    let (_, page) = c.get_text("/account").await;
    assert!(page.contains("On since") && page.contains("<strong>10</strong> recovery codes left"), "{page}");

    // The password alone no longer signs in: it waits for the code, and opens nothing meanwhile.
    let mut waiting = app.client();
    let r = waiting.try_login("manager", PASSWORD).await;
    assert_eq!(location(&r), "/login/code?next=");
    assert_eq!(waiting.get("/studies").await.status(), 303);
    let (status, page) = waiting.get_text("/login/code").await;
    assert_eq!(status, 200);
    assert!(page.contains("authenticator app"), "{page}");
    // The code used to set it up is spent; the next step's code works once.
    let r = waiting.post("/login/code", &[("code", &code_at(&secret, step)), ("next", "")]).await;
    assert_eq!(r.status(), 401);
    let next = code_at(&secret, step + 1);
    let r = waiting.post("/login/code", &[("code", &next), ("next", "/studies/LUNG-IO-01")]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/studies/LUNG-IO-01");
    assert_eq!(waiting.get("/studies").await.status(), 200);
    let logins = audit_events(&app, "login");
    assert!(logins.first().unwrap().new_value.as_deref().unwrap().contains(r#""second_factor":"totp""#));
    let (_, r) = sign_in_with(&app, "manager", &next).await;
    assert_eq!(r.status(), 401, "a code seen over a shoulder is spent");

    // A recovery code works once, in any case and spacing; the page says how many are left.
    let typed = codes[0].to_uppercase().replace('-', " ");
    let (rc, r) = sign_in_with(&app, "manager", &typed).await;
    assert_eq!(r.status(), 303);
    let (_, page) = rc.get_text(&location(&r)).await;
    assert!(page.contains("recovery code; 9 left"), "{page}");
    assert!(audit_events(&app, "login")
        .first()
        .unwrap()
        .new_value
        .as_deref()
        .unwrap()
        .contains(r#""recovery_codes_left":9"#));
    let (_, r) = sign_in_with(&app, "manager", &codes[0]).await;
    assert_eq!(r.status(), 401);

    // New recovery codes take a current code; the old ones stop working.
    let failures =
        || evidentia::auth::users::find_by_username(&mut app.conn(), "manager").unwrap().unwrap().failed_logins;
    let before = failures();
    let r = c.post("/account/mfa/recovery-codes", &[("code", "123")]).await;
    assert_eq!(r.status(), 422);
    // A wrong code here counts like one at sign-in (a stolen session cannot guess on).
    assert_eq!(failures(), before + 1);
    // (A minute later: the codes of the steps so far are spent.)
    app.config.clock.advance(std::time::Duration::from_secs(60));
    let r = c.post("/account/mfa/recovery-codes", &[("code", &code_at(&secret, step + 2))]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(audit_events(&app, "new_recovery_codes").len(), 1);
    let (_, r) = sign_in_with(&app, "manager", &codes[1]).await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn wrong_codes_lock_the_account_like_wrong_passwords() {
    let app = spawn_app();
    let c = app.login("statistician").await;
    let (secret, _, step) = set_up(&c).await;
    let mut waiting = app.client();
    waiting.try_login("statistician", PASSWORD).await;
    for i in 0..4 {
        let r = waiting.post("/login/code", &[("code", &format!("{:06}", 100_000 + i)), ("next", "")]).await;
        assert_eq!(r.status(), 401, "attempt {i}");
    }
    // The right password again does not reset the count of wrong codes.
    waiting.try_login("statistician", PASSWORD).await;
    let r = waiting.post("/login/code", &[("code", "999999"), ("next", "")]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/login");
    assert_eq!(audit_events(&app, "lock").len(), 1);
    // Locked: the right password and the right code do not sign in now.
    let mut after = app.client();
    assert_eq!(after.try_login("statistician", PASSWORD).await.status(), 401);
    let r = after.post("/login/code", &[("code", &code_at(&secret, step + 1)), ("next", "")]).await;
    assert_eq!(location(&r), "/login", "no sign-in waits for a code");
}

#[tokio::test]
async fn administrators_must_set_it_up_first_and_may_reset_someone_elses() {
    let app = spawn_app_with(|c| c.admin_mfa = true);
    let admin = app.login("admin").await;
    for page in ["/studies", "/admin/users", "/studies/LUNG-IO-01"] {
        let r = admin.get(page).await;
        assert_eq!(r.status(), 303, "{page}");
        assert_eq!(location(&r), "/account");
    }
    let (_, page) = admin.get_text("/account").await;
    assert!(page.contains("Administrators must turn it on"), "{page}");
    let (secret, _, step) = set_up(&admin).await;
    assert_eq!(admin.get("/admin/users").await.status(), 200);
    // It cannot be turned off where it is required.
    let r = admin.post("/account/mfa/disable", &[("code", &code_at(&secret, step + 1))]).await;
    assert_eq!(r.status(), 409);
    // Others are not administrators: the password alone still signs them in.
    let m = app.login("manager").await;
    let (msecret, _, _) = set_up(&m).await;
    assert!(!msecret.is_empty());
    let uid = evidentia::auth::users::find_by_username(&mut app.conn(), "manager").unwrap().unwrap().id;
    // A reset takes a reason; it ends the user's sessions and is audited.
    let r = admin.post(&format!("/admin/users/{uid}/reset-mfa"), &[("reason", " ")]).await;
    let (_, page) = admin.get_text(&location(&r)).await;
    assert!(page.contains("Nothing was reset: reason: required"), "{page}");
    assert_eq!(m.post(&format!("/admin/users/{uid}/reset-mfa"), &[("reason", "lost phone")]).await.status(), 403);
    let r = admin
        .post(&format!("/admin/users/{uid}/reset-mfa"), &[("reason", "lost phone; identity checked by call")])
        .await;
    assert_eq!(r.status(), 303);
    let ev = audit_events(&app, "reset_mfa");
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (ev[0].entity_id.as_str(), ev[0].reason.as_deref()),
        ("manager", Some("lost phone; identity checked by call"))
    );
    assert_eq!(m.get("/studies").await.status(), 303, "the user's sessions ended");
    assert_eq!(app.client().try_login("manager", PASSWORD).await.status(), 303);
    assert_eq!(location(&app.client().try_login("manager", PASSWORD).await), "/studies");

    // The CLI resets too (the way back in for the last administrator).
    let out = app.cli(&["user", "reset-mfa", "admin", "--reason", "phone lost"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(audit_events(&app, "reset_mfa").len(), 2);
    let out = app.cli(&["user", "reset-mfa", "admin", "--reason", "again"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no two-factor sign-in to reset"));
}

#[tokio::test]
async fn a_study_that_requires_it_keeps_out_members_without_it() {
    let app = spawn_app();
    let s = "/studies/LUNG-IO-01";
    let manager = app.login("manager").await;
    let a1 = app.login("annotator1").await;
    assert_eq!(a1.post(&format!("{s}/members/require-mfa"), &[("require_mfa", "on")]).await.status(), 403);
    assert_eq!(manager.post(&format!("{s}/members/require-mfa"), &[("require_mfa", "maybe")]).await.status(), 422);
    assert!(audit_events(&app, "update").iter().all(|e| !e.new_value.as_deref().unwrap_or("").contains("require_mfa")));
    // The manager sets it up, then requires it.
    set_up(&manager).await;
    let r = manager.post(&format!("{s}/members/require-mfa"), &[("require_mfa", "on")]).await;
    assert_eq!(r.status(), 303);
    let ev: Vec<_> = audit_events(&app, "update")
        .into_iter()
        .filter(|e| e.new_value.as_deref().unwrap_or("").contains(r#""require_mfa":true"#))
        .collect();
    assert_eq!(ev.len(), 1);
    assert_eq!(manager.get(s).await.status(), 200);
    // A member without it: kept out, told why; by an API token too. Other studies stay 404.
    let (status, page) = a1.get_text(s).await;
    assert_eq!(status, 403);
    assert!(page.contains("sign in with two factors"), "{page}");
    let r = a1.post("/account/tokens", &[("name", "script")]).await;
    let token = r.text().await.unwrap().split(r#"id="secret">"#).nth(1).unwrap().split('<').next().unwrap().to_string();
    let api = app.client().http.get(app.client().url("/api/v1/studies/LUNG-IO-01")).bearer_auth(&token);
    assert_eq!(status_of(api).await, 403);
    assert_eq!(a1.get(&format!("/studies/{OTHER_STUDY}")).await.status(), 404);
    // Once set up, the member is in; the token made with the password alone was revoked.
    set_up(&a1).await;
    assert_eq!(a1.get(s).await.status(), 200);
    let api = app.client().http.get(app.client().url("/api/v1/studies/LUNG-IO-01")).bearer_auth(&token);
    assert_eq!(status_of(api).await, 401);
    assert!(audit_events(&app, "enable_mfa")[0].new_value.as_deref().unwrap().contains(r#""tokens_revoked":1"#));
    let (_, page) = manager.get_text(&format!("{s}/members")).await;
    assert!(page.contains("only when they sign in with two factors"), "{page}");
}
