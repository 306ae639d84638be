//! Sign-in, sign-out, lockout, session expiry, CSRF, security headers, passwords, API tokens.

use std::time::Duration;

use crate::helpers::*;

#[tokio::test]
async fn login_then_logout_ends_the_session() {
    let app = spawn_app();
    let c = app.login("manager").await;
    let (status, body) = c.get_text("/studies").await;
    assert_eq!(status, 200);
    assert!(body.contains("LUNG-IO-01"));
    let r = c.post("/logout", &[]).await;
    assert_eq!(r.status(), 303);
    let r = c.get("/studies").await;
    assert_eq!(r.status(), 303);
    assert!(location(&r).starts_with("/login"), "{}", location(&r));
    assert_eq!(audit_events(&app, "login").len(), 1);
}

#[tokio::test]
async fn wrong_password_and_unknown_user_look_the_same() {
    let app = spawn_app();
    let mut c = app.client();
    let wrong = c.try_login("manager", "not-the-password").await;
    assert_eq!(wrong.status(), 401);
    let wrong_body = wrong.text().await.unwrap();
    let unknown = c.try_login("nobody-here", "not-the-password").await;
    assert_eq!(unknown.status(), 401);
    let unknown_body = unknown.text().await.unwrap();
    let msg = "Wrong username or password";
    assert!(wrong_body.contains(msg) && unknown_body.contains(msg));
    // Still not signed in.
    assert_eq!(c.get("/studies").await.status(), 303);
}

#[tokio::test]
async fn five_failures_lock_the_account_until_an_admin_unlocks_it() {
    let app = spawn_app();
    let mut c = app.client();
    for _ in 0..5 {
        assert_eq!(c.try_login("annotator1", "wrong-password").await.status(), 401);
    }
    // Locked: even the right password fails now.
    assert_eq!(c.try_login("annotator1", PASSWORD).await.status(), 401);
    let lock = audit_events(&app, "lock");
    assert_eq!(lock.len(), 1);
    assert_eq!(lock[0].entity_id, "annotator1");

    let admin = app.login("admin").await;
    let (_, page) = admin.get_text("/admin/users?q=annotator1").await;
    assert!(page.contains("locked"), "users page shows the lock");
    let uid = evidentia::auth::users::find_by_username(&mut app.conn(), "annotator1").unwrap().unwrap().id;
    let r = admin.post(&format!("/admin/users/{uid}/unlock"), &[]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(audit_events(&app, "unlock").len(), 1);
    assert_eq!(c.try_login("annotator1", PASSWORD).await.status(), 303);
}

#[tokio::test]
async fn an_idle_session_expires() {
    let app = spawn_app_with(|cfg| cfg.session_idle = Duration::from_secs(2));
    let c = app.login("monitor").await;
    assert_eq!(c.get("/studies").await.status(), 200);
    app.config.clock.advance(Duration::from_millis(1500));
    assert_eq!(c.get("/studies").await.status(), 200, "not before the idle time-out");
    app.config.clock.advance(Duration::from_millis(3200));
    let r = c.get("/studies").await;
    assert_eq!(r.status(), 303, "idle session must expire");
    assert!(location(&r).starts_with("/login?next="));
}

#[tokio::test]
async fn a_busy_session_still_ends_at_the_absolute_timeout() {
    let app = spawn_app_with(|cfg| cfg.session_absolute = Duration::from_secs(3));
    let c = app.login("monitor").await;
    let mut expired_after = None;
    for i in 0..12 {
        app.config.clock.advance(Duration::from_millis(500));
        if c.get("/studies").await.status() != 200 {
            expired_after = Some(i);
            break;
        }
    }
    let i = expired_after.expect("the session must end at the absolute timeout");
    assert!(i >= 4, "not before the absolute timeout (ended after {i} half-seconds)");
}

#[tokio::test]
async fn a_post_without_the_csrf_token_is_rejected_and_changes_nothing() {
    let app = spawn_app();
    let c = app.login("admin").await;
    let r = c.post_without_csrf("/studies", &[("code", "CSRF-01"), ("title", "Forged")]).await;
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("content-security-policy").is_some(), "the rejection carries the security headers");
    assert!(r.text().await.unwrap().contains("CSRF"));
    let r = c
        .http
        .post(c.url("/studies"))
        .form(&[("code", "CSRF-02"), ("title", "Forged"), ("csrf_token", &"0".repeat(64))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(evidentia::studies::get_by_code(&mut app.conn(), "CSRF-01").is_err());
    assert!(evidentia::studies::get_by_code(&mut app.conn(), "CSRF-02").is_err());
    // The same form with the token works.
    let r = c.post("/studies", &[("code", "CSRF-03"), ("title", "Real")]).await;
    assert_eq!(r.status(), 303);
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app();
    let c = app.client();
    for path in ["/login", "/healthz", "/no-such-page", "/static/css/app.css", "/studies", "/api/v1/studies"] {
        let r = c.get(path).await;
        let h = r.headers();
        let csp = h.get("content-security-policy").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff", "{path}");
        assert!(h.get("referrer-policy").is_some(), "{path}");
        assert!(h.get("strict-transport-security").is_none(), "{path}: no HSTS without an https public URL");
    }
    // Cookies are HttpOnly and SameSite=Strict.
    let r = c.get("/login").await;
    let set = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect::<Vec<_>>();
    assert!(set.iter().all(|s| s.contains("HttpOnly") && s.contains("SameSite=Strict")), "{set:?}");
}

#[tokio::test]
async fn secure_cookies_and_hsts_behind_an_https_public_url() {
    // What `EVIDENTIA_PUBLIC_URL=https://…` sets (the derivation is unit-tested in config.rs).
    let app = spawn_app_with(|cfg| {
        cfg.public_url = Some("https://evidentia.hospital.example".into());
        cfg.secure_cookies = true;
    });
    let mut c = app.client();
    let r = c.try_login("manager", PASSWORD).await;
    let set: Vec<String> = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    assert!(set.iter().any(|s| s.starts_with("ev_session=") && s.contains("Secure")), "{set:?}");
    assert!(set.iter().any(|s| s.starts_with("ev_csrf=") && s.contains("Secure")), "{set:?}");
    for path in ["/login", "/healthz", "/static/css/app.css", "/studies", "/no-such-page"] {
        let r = c.get(path).await;
        assert_eq!(r.headers().get("strict-transport-security").unwrap(), "max-age=31536000", "{path}");
    }
}

/// A token for `username` made through the account page; returns it.
async fn token_of(c: &Client, scope: &str, days: &str) -> String {
    let r = c.post("/account/tokens", &[("name", "script"), ("scope", scope), ("days", days)]).await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    let start = body.find("evt_").unwrap();
    body[start..start + 68].to_string()
}

async fn api_status(app: &TestApp, path: &str, token: &str) -> u16 {
    status_of(reqwest::Client::new().get(format!("{}{}", app.base, path)).bearer_auth(token)).await
}

async fn change_password(c: &Client, current: &str, new: &str) -> reqwest::Response {
    c.post("/account/password", &[("current_password", current), ("new_password", new), ("confirm_password", new)])
        .await
}

#[tokio::test]
async fn changing_the_own_password() {
    let app = spawn_app();
    let c = app.login("statistician").await;
    // Another session of the same person (a second browser), and a script's token.
    let elsewhere = app.login("statistician").await;
    let token = token_of(&c, "read", "").await;
    assert_eq!(api_status(&app, "/api/v1/me", &token).await, 200);
    let r = change_password(&c, "wrong", "a-new-password").await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("is not your current password"));
    assert_eq!(change_password(&c, PASSWORD, "short").await.status(), 422);
    // A common password (from the shipped list) is refused, whatever its case.
    let r = change_password(&c, PASSWORD, "Password123").await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("one of the most common passwords"));
    let r = change_password(&c, PASSWORD, "a-new-password").await;
    assert_eq!(r.status(), 303);
    let ev = audit_events(&app, "change_password");
    assert_eq!(ev.len(), 1);
    let effect: serde_json::Value = serde_json::from_str(ev[0].new_value.as_deref().unwrap()).unwrap();
    assert_eq!(effect, serde_json::json!({"sessions_ended": 1, "tokens_revoked": 1}), "audited with what it ended");
    // This session goes on; the other one and the token end.
    assert_eq!(c.get("/account").await.status(), 200);
    assert_eq!(elsewhere.get("/account").await.status(), 303, "the other session ended");
    assert_eq!(api_status(&app, "/api/v1/me", &token).await, 401, "the token was revoked");
    // The wrong current password tried above counted as a failed sign-in.
    let u = evidentia::auth::users::find_by_username(&mut app.conn(), "statistician").unwrap().unwrap();
    assert_eq!(u.failed_logins, 1, "the wrong current password counts like a failed sign-in");
    let mut other = app.client();
    assert_eq!(other.try_login("statistician", PASSWORD).await.status(), 401);
    assert_eq!(other.try_login("statistician", "a-new-password").await.status(), 303);
}

#[tokio::test]
async fn admin_creates_deactivates_and_resets_users() {
    let app = spawn_app();
    let admin = app.login("admin").await;
    let r = admin.post("/admin/users", &[("username", "Bad Name!"), ("full_name", "")]).await;
    assert_eq!(r.status(), 422);
    let body = r.text().await.unwrap();
    assert!(body.contains("lower-case letters") && body.contains("printed on signatures"));

    let r = admin.post("/admin/users", &[("username", "kim"), ("full_name", "Kim Minji")]).await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    let start = body.find("id=\"secret\">").unwrap() + "id=\"secret\">".len();
    let password = body[start..start + 20].to_string();
    let mut kim = app.client();
    assert_eq!(kim.try_login("kim", &password).await.status(), 303);
    kim.refresh_csrf().await;

    let id = evidentia::auth::users::find_by_username(&mut app.conn(), "kim").unwrap().unwrap().id;
    assert_eq!(admin.post(&format!("/admin/users/{id}/deactivate"), &[]).await.status(), 303);
    // The deactivated user's session ends at once, and they cannot sign in.
    assert_eq!(kim.get("/studies").await.status(), 303);
    assert_eq!(app.client().try_login("kim", &password).await.status(), 401);
    assert_eq!(admin.post(&format!("/admin/users/{id}/reactivate"), &[]).await.status(), 303);
    let r = admin.post(&format!("/admin/users/{id}/reset-password"), &[]).await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    let start = body.find("id=\"secret\">").unwrap() + "id=\"secret\">".len();
    let new_password = &body[start..start + 20];
    assert_eq!(app.client().try_login("kim", new_password).await.status(), 303);
    for action in ["create", "deactivate", "reactivate", "reset_password"] {
        assert!(audit_events(&app, action).iter().any(|e| e.entity_id == "kim"), "{action} audited");
    }
    // Non-admins cannot reach account administration.
    let manager = app.login("manager").await;
    assert_eq!(manager.get("/admin/users").await.status(), 403);
    assert_eq!(manager.post(&format!("/admin/users/{id}/deactivate"), &[]).await.status(), 403);
}

#[tokio::test]
async fn api_tokens_are_shown_once_work_as_bearer_and_can_be_revoked() {
    let app = spawn_app();
    let c = app.login("monitor").await;
    let r = c.post("/account/tokens", &[("name", "nightly")]).await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    let start = body.find("evt_").unwrap();
    let token = body[start..start + 68].to_string();
    let api = reqwest::Client::new();
    let r = api.get(c.url("/api/v1/studies")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["items"][0]["code"], "LUNG-IO-01");
    // The account page lists only the prefix, never the token.
    let (_, page) = c.get_text("/account").await;
    assert!(!page.contains(&token));
    let tid = {
        let uid = evidentia::auth::users::find_by_username(&mut app.conn(), "monitor").unwrap().unwrap().id;
        evidentia::auth::tokens::list_for_user(&mut app.conn(), uid).unwrap()[0].id
    };
    assert_eq!(c.post(&format!("/account/tokens/{tid}/revoke"), &[]).await.status(), 303);
    let r = api.get(c.url("/api/v1/studies")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(!audit_events(&app, "revoke").is_empty());
    // Bearer requests need no CSRF token, but a bad token gets nothing.
    let r = api.get(c.url("/api/v1/me")).bearer_auth("evt_0000").send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn tokens_work_on_the_api_only_expire_and_never_carry_administrator_rights() {
    let app = spawn_app();
    let admin = app.login("admin").await;
    let token = token_of(&admin, "read", "30").await;
    let bare = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let me: serde_json::Value =
        bare.get(format!("{}/api/v1/me", app.base)).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["is_admin"], false, "a token acts with study roles only: {me}");
    // Pages and administration ignore a bearer token: it is as if nobody had signed in.
    for path in ["/admin/users", "/studies", "/account"] {
        let r = bare.get(format!("{}{}", app.base, path)).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 303, "{path} by token");
        assert!(location(&r).starts_with("/login"), "{path}");
    }
    // A token with a self-chosen CSRF cookie and header still cannot post a form.
    let r = bare
        .post(format!("{}/admin/users", app.base))
        .bearer_auth(&token)
        .header("cookie", format!("ev_csrf={}", "a".repeat(64)))
        .header("x-csrf-token", "a".repeat(64))
        .form(&[("username", "mallory"), ("full_name", "M")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "sent to sign in, nothing created");
    assert!(evidentia::auth::users::find_by_username(&mut app.conn(), "mallory").unwrap().is_none());

    // The page shows scope and expiry; bad choices are explained and create nothing.
    let (_, page) = admin.get_text("/account").await;
    assert!(page.contains("read only") && page.contains("Expires"), "{page}");
    let created = || audit_events(&app, "create").into_iter().filter(|e| e.entity.as_str() == "api_token").count();
    let before = created();
    for (scope, days, field_msg) in [
        ("admin", "30", "choose read only or read and write"),
        ("read", "0", "from 1 to 365 days"),
        ("read", "x", "whole number"),
    ] {
        let r = admin.post("/account/tokens", &[("name", "bad"), ("scope", scope), ("days", days)]).await;
        assert_eq!(r.status(), 422, "{scope} {days}");
        assert!(r.text().await.unwrap().contains(field_msg), "{field_msg}");
    }
    assert_eq!(created(), before, "no token made");
    let ev = audit_events(&app, "create").into_iter().rev().find(|e| e.entity.as_str() == "api_token").unwrap();
    let after: serde_json::Value = serde_json::from_str(ev.new_value.as_deref().unwrap()).unwrap();
    assert_eq!(after["scope"], "read");
    assert!(after["expires_at"].is_string());

    // An expired token gets nothing.
    assert_eq!(api_status(&app, "/api/v1/studies", &token).await, 200);
    diesel::RunQueryDsl::execute(
        diesel::sql_query("UPDATE api_tokens SET expires_at = '2000-01-01 00:00:00'"),
        &mut *app.conn(),
    )
    .unwrap();
    assert_eq!(api_status(&app, "/api/v1/studies", &token).await, 401);
    let (_, page) = admin.get_text("/account").await;
    assert!(page.contains("expired"));

    // An administrator's reset of someone's password revokes that person's tokens.
    let monitor = app.login("monitor").await;
    let theirs = token_of(&monitor, "read_write", "").await;
    assert_eq!(api_status(&app, "/api/v1/me", &theirs).await, 200);
    let uid = evidentia::auth::users::find_by_username(&mut app.conn(), "monitor").unwrap().unwrap().id;
    assert_eq!(admin.post(&format!("/admin/users/{uid}/reset-password"), &[]).await.status(), 200);
    assert_eq!(api_status(&app, "/api/v1/me", &theirs).await, 401);
    assert_eq!(monitor.get("/account").await.status(), 303, "their session ended too");
}

#[tokio::test]
async fn sign_in_is_throttled_per_client_and_per_username_before_any_password_check() {
    let app = spawn_app_with(|cfg| {
        cfg.login_per_client_per_minute = 5;
        cfg.login_per_username_per_minute = 3;
    });
    let mut c = app.client();
    for _ in 0..3 {
        assert_eq!(c.try_login("manager", "wrong-password").await.status(), 401);
    }
    // The username's budget is spent: refused at once, even with the right password.
    let r = c.try_login("manager", PASSWORD).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(r.text().await.unwrap().contains("Too many sign-in attempts"));
    let u = evidentia::auth::users::find_by_username(&mut app.conn(), "manager").unwrap().unwrap();
    assert_eq!(u.failed_logins, 3, "the throttled attempt was not even checked");
    // Another username from this client: its fifth attempt passes, the sixth does not.
    assert_eq!(c.try_login("statistician", PASSWORD).await.status(), 303);
    assert_eq!(c.try_login("monitor", PASSWORD).await.status(), 429, "the client's budget is spent");
    assert_eq!(app.client().get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn monitors_see_that_analyses_were_saved_but_not_their_values() {
    use evidentia::audit::{self, Action, Chain, Change, Entity};
    let app = spawn_app();
    let study = evidentia::studies::get_by_code(&mut app.conn(), "LUNG-IO-01").unwrap();
    audit::record(
        &mut app.conn(),
        Change::new(
            Chain::Study { id: study.id, code: &study.code },
            "statistician",
            Action::SaveAnalysis,
            Entity::SavedAnalysis,
            1,
        )
        .after(serde_json::json!({"title": "Primary endpoint", "result": {"kappa": 0.6177}})),
    )
    .unwrap();
    let monitor = app.login("monitor").await;
    let manager = app.login("manager").await;
    for path in ["/studies/LUNG-IO-01/audit", "/studies/LUNG-IO-01/audit.csv"] {
        let (s, theirs) = monitor.get_text(path).await;
        assert_eq!(s, 200);
        assert!(theirs.contains("save_analysis") || theirs.contains("Save analysis"), "the event is listed: {path}");
        assert!(!theirs.contains("0.6177") && !theirs.contains("Primary endpoint"), "{path} withholds the values");
        assert!(theirs.contains("withheld"), "{path}");
        let (_, mine) = manager.get_text(path).await;
        assert!(mine.contains("0.6177"), "managers read the values: {path}");
    }
    // The chain itself is unchanged and verifies.
    let out = app.cli(&["audit", "verify"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn metrics_need_their_token_and_bound_their_labels() {
    let off = spawn_app();
    assert_eq!(off.client().get("/metrics").await.status(), 404, "off without EVIDENTIA_METRICS_TOKEN");
    let app = spawn_app_with(|cfg| cfg.metrics_token = Some("scrape-secret".into()));
    let c = app.client();
    assert_eq!(c.get("/metrics").await.status(), 401);
    let wrong = c.http.get(c.url("/metrics")).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    for m in ["FOO", "BAR", "GET2"] {
        let method = reqwest::Method::from_bytes(m.as_bytes()).unwrap();
        let _ = c.http.request(method, c.url("/healthz")).send().await.unwrap();
    }
    let _ = c.get("/login").await;
    let r = c.http.get(c.url("/metrics")).bearer_auth("scrape-secret").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let metrics = r.text().await.unwrap();
    assert!(metrics.contains("method=\"OTHER\""), "{metrics}");
    assert!(!metrics.contains("FOO") && !metrics.contains("GET2"), "no series per made-up method");
    assert!(
        metrics.contains("evidentia_http_requests_total{method=\"GET\",route=\"/login\",status=\"200\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn health_metrics_and_openapi() {
    let app = spawn_app_with(|cfg| cfg.metrics_token = Some("scrape-secret".into()));
    let c = app.client();
    let (s, body) = c.get_text("/healthz").await;
    assert_eq!(s, 200);
    assert!(body.contains("\"database\":\"ok\""));
    let _ = c.get("/login").await;
    let r = c.http.get(c.url("/metrics")).bearer_auth("scrape-secret").send().await.unwrap();
    let s = r.status().as_u16();
    let metrics = r.text().await.unwrap();
    assert_eq!(s, 200);
    assert!(
        metrics.contains("evidentia_http_requests_total{method=\"GET\",route=\"/login\",status=\"200\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("evidentia_http_request_duration_seconds_bucket"));
    assert!(metrics.contains("evidentia_db_pool_connections{state=\"idle\"}"));
    let (s, spec) = c.get_text("/api/v1/openapi.json").await;
    assert_eq!(s, 200);
    let v: serde_json::Value = serde_json::from_str(&spec).unwrap();
    assert_eq!(v["openapi"], "3.0.3");
    assert!(v["paths"]["/studies/{code}"].is_object());
}

#[tokio::test]
async fn form_text_that_is_not_utf8_is_refused_naming_the_field() {
    let app = spawn_app();
    let m = app.login("manager").await;
    let body = format!("csrf_token={}&code=AMC&name=Asan+caf%E9", m.csrf);
    let r = m
        .http
        .post(m.url("/studies/LUNG-IO-01/sites"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let page = r.text().await.unwrap();
    assert!(page.contains("The form field name holds text that is not valid UTF-8"), "{page}");
    assert!(audit_events(&app, "create").iter().all(|e| e.entity_id != "AMC"), "nothing was saved");
    // The same form in UTF-8 is saved.
    let r = m.post("/studies/LUNG-IO-01/sites", &[("code", "AMC"), ("name", "Asan café")]).await;
    assert_eq!(r.status(), 303);
    assert!(audit_events(&app, "create").iter().any(|e| e.entity_id == "AMC"));
}

/// Signs in as `username` from the client address `from` (as the trusted proxy forwards it).
async fn login_from(app: &TestApp, from: &str, username: &str, password: &str) -> u16 {
    let c = app.client();
    let (_, page) = c.get_text("/login").await;
    let csrf = csrf_from(&page).unwrap();
    let form = [("csrf_token", csrf.as_str()), ("username", username), ("password", password), ("next", "")];
    status_of(c.http.post(c.url("/login")).header("x-forwarded-for", from).form(&form)).await
}

#[tokio::test]
async fn failures_from_one_client_lock_the_account_for_that_client_only() {
    let app = spawn_app_with(|cfg| cfg.trust_forwarded_for = true);
    // Someone guesses the administrator's password from one address: locked out there...
    for _ in 0..5 {
        assert_eq!(login_from(&app, "203.0.113.9", "admin", "a-wrong-guess").await, 401);
    }
    assert_eq!(login_from(&app, "203.0.113.9", "admin", PASSWORD).await, 401, "locked for that client");
    let lock = audit_events(&app, "lock");
    assert_eq!(lock.len(), 1);
    assert!(lock[0].new_value.as_deref().unwrap().contains("\"client\":\"203.0.113.9\""), "{lock:?}");
    // ...while the administrator, elsewhere, still signs in; the lock on the guesser stays.
    assert_eq!(login_from(&app, "198.51.100.7", "admin", PASSWORD).await, 303);
    assert_eq!(login_from(&app, "203.0.113.9", "admin", PASSWORD).await, 401, "still locked there");
    let admin = evidentia::auth::users::find_by_username(&mut app.conn(), "admin").unwrap().unwrap();
    assert!(admin.is_locked(evidentia::db::now()), "administrators see the lock");
}

/// Two guessers from two addresses: each is locked out where it guesses, and the second lock
/// does not lift the first (one lock per address); the owner elsewhere signs in; an
/// administrator's unlock lifts both.
#[tokio::test]
async fn each_guessing_client_keeps_its_own_lock() {
    let app = spawn_app_with(|cfg| {
        cfg.trust_forwarded_for = true;
        cfg.login_per_username_per_minute = 100;
    });
    for guesser in ["203.0.113.9", "192.0.2.44"] {
        for _ in 0..5 {
            assert_eq!(login_from(&app, guesser, "monitor", "a-wrong-guess").await, 401);
        }
    }
    assert_eq!(audit_events(&app, "lock").len(), 2);
    for guesser in ["203.0.113.9", "192.0.2.44"] {
        assert_eq!(login_from(&app, guesser, "monitor", PASSWORD).await, 401, "still locked for {guesser}");
    }
    assert_eq!(login_from(&app, "198.51.100.7", "monitor", PASSWORD).await, 303, "the owner elsewhere");
    let uid = evidentia::auth::users::find_by_username(&mut app.conn(), "monitor").unwrap().unwrap().id;
    let admin = app.login("admin").await;
    assert_eq!(admin.post(&format!("/admin/users/{uid}/unlock"), &[]).await.status(), 303);
    for guesser in ["203.0.113.9", "192.0.2.44"] {
        assert_eq!(login_from(&app, guesser, "monitor", PASSWORD).await, 303, "unlocked for {guesser}");
    }
}

#[tokio::test]
async fn a_forwarded_address_is_ignored_unless_the_proxy_is_trusted() {
    let app = spawn_app();
    // Without EVIDENTIA_TRUST_FORWARDED_FOR a guesser cannot dodge the lock by claiming addresses.
    for i in 0..5 {
        assert_eq!(login_from(&app, &format!("203.0.113.{i}"), "monitor", "a-wrong-guess").await, 401);
    }
    assert_eq!(login_from(&app, "198.51.100.7", "monitor", PASSWORD).await, 401, "locked for the real address");
}

/// Every route the server declares (read from `src/web/handlers/mod.rs`, so a new route is
/// covered without touching this test), asked for as a signed-in administrator and anonymously,
/// GET or POST without a CSRF token: each answer carries the security headers, and any cookie
/// it sets is HttpOnly and SameSite=Strict.
#[tokio::test]
async fn every_route_answers_with_the_security_headers() {
    let routes = include_str!("../../src/web/handlers/mod.rs");
    let re = regex::Regex::new(r#"\.route\(\s*"([^"]+)",\s*web::(get|post|put|delete)\(\)"#).unwrap();
    let fill = [
        ("{path:.*}", "css/app.css"),
        ("{code}", "LUNG-IO-01"),
        ("{display_id}", "SNUBH-0001"),
        ("{action}", "unlock"),
        ("{id}", "1"),
        ("{label}", "no-such-slide"),
        ("{level}", "0"),
        ("{col}", "0"),
        ("{row}", "0"),
        ("{key}", "x"),
        ("{name}", "x"),
        ("{token}", "x"),
        ("{rule}", "R1"),
        ("{step}", "close"),
        ("{file}", "events.csv"),
    ];
    let app = spawn_app();
    let admin = app.login("admin").await;
    let anonymous = app.client();
    let mut checked = 0;
    for m in re.captures_iter(routes) {
        let (mut path, method) = (m[1].to_string(), &m[2]);
        for (from, to) in fill {
            path = path.replace(from, to);
        }
        assert!(!path.contains('{'), "a placeholder this test does not fill: {path}");
        for c in [&admin, &anonymous] {
            let url = c.url(&path);
            let request = match method {
                "get" => c.http.get(&url),
                "post" => c.http.post(&url).form(&[("x", "1")]),
                "put" => c.http.put(&url),
                _ => c.http.delete(&url),
            };
            let r = request.send().await.unwrap();
            let h = r.headers();
            let csp = h.get("content-security-policy").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
            assert!(csp.contains("frame-ancestors 'none'"), "{method} {path}: {csp:?}");
            assert_eq!(
                h.get("x-content-type-options").map(|v| v.to_str().unwrap()),
                Some("nosniff"),
                "{method} {path}"
            );
            assert_eq!(h.get("x-frame-options").map(|v| v.to_str().unwrap()), Some("DENY"), "{method} {path}");
            assert!(h.get("referrer-policy").is_some(), "{method} {path}");
            for cookie in h.get_all("set-cookie") {
                let cookie = cookie.to_str().unwrap();
                assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{method} {path}: {cookie}");
            }
            checked += 1;
        }
    }
    assert!(checked > 250, "only {checked} answers checked: did the routes file change shape?");
}
