//! Single sign-on against a real OpenID Provider: the certified `oidc-provider` package (npm),
//! started here with tools/oidc/provider.mjs (tools/test installs it), spoken to through its own
//! development sign-in and consent pages. Sign-in of a matched account, refusals, provisioning,
//! accounts without a local password, and re-authentication for an e-signature.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};

use evidentia::auth::sso::SsoSettings;

use crate::helpers::*;

struct Provider {
    child: Child,
    issuer: String,
    script: std::path::PathBuf,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.script);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts the provider for an Evidentia listening on `app_port`.
fn start_provider(app_port: u16) -> Provider {
    let dir =
        std::env::var("EVIDENTIA_OIDC_NODE_DIR").expect("EVIDENTIA_OIDC_NODE_DIR: tools/test installs oidc-provider");
    let port = free_port();
    // ES modules resolve packages next to the script: it runs from the folder that has them.
    let script = std::path::Path::new(&dir).join(format!("evidentia-oidc-{}-{port}.mjs", std::process::id()));
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/oidc/provider.mjs"), &script).unwrap();
    let mut child = Command::new("node")
        .arg(&script)
        .env("OIDC_PORT", port.to_string())
        .env("OIDC_REDIRECT_URI", format!("http://127.0.0.1:{app_port}/login/sso/callback"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node (tools/test installs it)");
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 && !line.starts_with("listening ") {
        line.clear();
    }
    let issuer = line.trim().strip_prefix("listening ").expect("the provider did not start").to_string();
    // It logs notices on stdout as it runs: keep reading (a closed pipe would stop it).
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    Provider { child, issuer, script }
}

/// An Evidentia on a known port with single sign-on to `provider`.
fn spawn_with_sso(provision: bool) -> (TestApp, Provider) {
    let port = free_port();
    let provider = start_provider(port);
    let issuer = provider.issuer.clone();
    let app = spawn_app_with(move |c| {
        c.bind = format!("127.0.0.1:{port}");
        c.sso = Some(SsoSettings {
            issuer,
            client_id: "evidentia".into(),
            client_secret: Some("evidentia-test-secret".into()),
            username_claim: "preferred_username".into(),
            username_domain: None,
            provision,
            label: "Hospital SSO".into(),
            redirect_uri: format!("http://127.0.0.1:{port}/login/sso/callback"),
        });
    });
    (app, provider)
}

/// From Evidentia's `start` (a path) through the provider's sign-in (as `login`) and consent
/// pages, back to Evidentia's callback; returns the callback's answer.
async fn through_provider(c: &Client, start: &str, login: &str) -> reqwest::Response {
    let r = c.get(start).await;
    assert_eq!(r.status(), 303, "{start}");
    // Locations may be relative: each is resolved against the address that answered.
    let mut url = reqwest::Url::parse(&location(&r)).unwrap();
    for _ in 0..12 {
        if url.path() == "/login/sso/callback" {
            return c.http.get(url).send().await.unwrap();
        }
        let r = c.http.get(url.clone()).send().await.unwrap();
        if r.status() == 303 || r.status() == 302 {
            url = url.join(&location(&r)).unwrap();
            continue;
        }
        let page = r.text().await.unwrap();
        let action = page.split(r#"action=""#).nth(1).unwrap_or_else(|| panic!("{page}")).split('"').next().unwrap();
        // Its hidden fields (a prompt, or a logout confirmation when another person was signed
        // in there), and the login on its sign-in form (any password).
        let mut form: Vec<(String, String)> = page
            .split("<input type=\"hidden\" ")
            .skip(1)
            .map(|i| {
                let attr = |a: &str| i.split(&format!("{a}=\"")).nth(1).unwrap().split('"').next().unwrap().to_string();
                (attr("name"), attr("value"))
            })
            .collect();
        if page.contains(r#"name="login""#) {
            form.extend([("login".to_string(), login.to_string()), ("password".to_string(), "any".to_string())]);
        }
        let target = url.join(action).unwrap();
        let r = c.http.post(target.clone()).form(&form).send().await.unwrap();
        url = target.join(&location(&r)).unwrap();
    }
    panic!("the provider never sent the browser back");
}

/// Follows the page that moves on by itself (a meta refresh) and returns where it goes.
async fn continue_target(r: reqwest::Response) -> String {
    assert_eq!(r.status(), 200, "refused: {:?}", r.headers().get_all("set-cookie").iter().collect::<Vec<_>>());
    let page = r.text().await.unwrap();
    page.split(r#"url="#).nth(1).unwrap_or_else(|| panic!("{page}")).split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn a_matched_account_signs_in_by_single_sign_on_and_nobody_else_does() {
    let (app, _provider) = spawn_with_sso(false);
    let c = app.client();
    let (_, page) = c.get_text("/login").await;
    assert!(page.contains("Sign in with Hospital SSO"), "{page}");

    // The provider's username claim alone never opens an existing account (it is not unique:
    // anyone naming themselves `manager` there would get in).
    let r = through_provider(&c, "/login/sso?next=", "manager").await;
    assert_eq!(r.status(), 303);
    let (_, page) = c.get_text(&location(&r)).await;
    assert!(page.contains("not linked to single sign-on yet"), "{page}");
    assert_eq!(c.get("/studies").await.status(), 303);
    // Its owner, signed in with the password, links it under My account.
    let owner = app.login("manager").await;
    let (_, page) = owner.get_text("/account").await;
    assert!(page.contains("Link Hospital SSO"), "{page}");
    let to = continue_target(through_provider(&owner, "/login/sso?link=1&next=/account", "manager").await).await;
    assert_eq!(to, "/account");
    let (_, page) = owner.get_text(&to).await;
    assert!(page.contains("Single sign-on is linked") && page.contains("Your account is linked"), "{page}");
    let linked = audit_events(&app, "update");
    assert!(linked.iter().any(|e| e.entity_id == "manager"
        && e.actor == "manager"
        && e.new_value.as_deref().unwrap().contains(r#""single_sign_on":"linked""#)));
    let bound = evidentia::auth::users::find_by_username(&mut app.conn(), "manager").unwrap().unwrap();
    assert!(bound.sso_subject.as_deref().unwrap().ends_with("|manager"), "{:?}", bound.sso_subject);
    // That identity is taken: another account cannot link it.
    let other_owner = app.login("monitor").await;
    let r = through_provider(&other_owner, "/login/sso?link=1&next=/account", "manager").await;
    let (_, page) = other_owner.get_text(&location(&r)).await;
    assert!(page.contains("linked to another account"), "{page}");
    // Now single sign-on opens it.
    let r = through_provider(&c, "/login/sso?next=", "manager").await;
    let to = continue_target(r).await;
    assert_eq!(to, "/studies");
    let (status, page) = c.get_text(&to).await;
    assert_eq!(status, 200);
    assert!(page.contains("LUNG-IO-01"), "{page}");
    assert!(audit_events(&app, "login")[0].new_value.as_deref().unwrap().contains(r#""method":"single_sign_on""#));

    // No such account (and no provisioning): refused, nothing created.
    let other = app.client();
    let r = through_provider(&other, "/login/sso", "nobody").await;
    assert_eq!(r.status(), 303);
    let (_, page) = other.get_text(&location(&r)).await;
    assert!(page.contains("no such Evidentia account"), "{page}");
    assert!(evidentia::auth::users::find_by_username(&mut app.conn(), "nobody").unwrap().is_none());
    assert_eq!(other.get("/studies").await.status(), 303);

    // An answer that is not this browser's sign-in (another state) signs no one in.
    let third = app.client();
    let r = third.get("/login/sso").await;
    let auth = location(&r);
    assert!(auth.contains("code_challenge=") && auth.contains("code_challenge_method=S256"), "PKCE: {auth}");
    let r = third.get("/login/sso/callback?code=forged&state=forged").await;
    let (_, page) = third.get_text(&location(&r)).await;
    assert!(page.contains("does not belong to this sign-in"), "{page}");
    assert_eq!(third.get("/studies").await.status(), 303);
}

#[tokio::test]
async fn provisioned_accounts_have_no_role_and_no_password_and_re_authenticate_to_sign() {
    let (app, _provider) = spawn_with_sso(true);
    // A new person: an account without any study and without a local password.
    let newcomer = app.client();
    let r = through_provider(&newcomer, "/login/sso", "park.jiwoo").await;
    let to = continue_target(r).await;
    let (status, page) = newcomer.get_text(&to).await;
    assert_eq!(status, 200);
    assert!(!page.contains("LUNG-IO-01"), "no study role: {page}");
    let u = evidentia::auth::users::find_by_username(&mut app.conn(), "park.jiwoo").unwrap().unwrap();
    assert!(!u.password_login && u.full_name == "SSO park.jiwoo" && !u.is_admin);

    // The statistician links SSO, then an administrator turns the password off.
    let stat = app.login("statistician").await;
    let to = continue_target(through_provider(&stat, "/login/sso?link=1&next=/account", "statistician").await).await;
    assert_eq!(stat.get(&to).await.status(), 200);
    let admin = app.login("admin").await;
    let sid = evidentia::auth::users::find_by_username(&mut app.conn(), "statistician").unwrap().unwrap().id;
    let mid = evidentia::auth::users::find_by_username(&mut app.conn(), "monitor").unwrap().unwrap().id;
    let r = admin.post(&format!("/admin/users/{mid}/password-login"), &[("on", "0")]).await;
    let (_, page) = admin.get_text(&location(&r)).await;
    assert!(page.contains("has not linked single sign-on yet"), "{page}");
    assert_eq!(app.login("monitor").await.get("/studies").await.status(), 200, "the monitor keeps the password");
    assert_eq!(
        app.login("annotator1")
            .await
            .post(&format!("/admin/users/{sid}/password-login"), &[("on", "0")])
            .await
            .status(),
        403
    );
    admin.post(&format!("/admin/users/{sid}/password-login"), &[("on", "0")]).await;
    assert!(audit_events(&app, "update")
        .iter()
        .any(|e| e.entity_id == "statistician" && e.new_value.as_deref() == Some(r#"{"password_login":false}"#)));
    assert_eq!(app.client().try_login("statistician", PASSWORD).await.status(), 401, "the password no longer signs in");

    // An e-signature: the password is no way; the person re-authenticates at the provider.
    let s = "/studies/LUNG-IO-01";
    admin.post(&format!("{s}/status"), &[("to", "locked"), ("reason", "test: checklist waived")]).await;
    let mut stat = stat;
    stat.refresh_csrf().await;
    let (_, page) = stat.get_text(s).await;
    assert!(
        page.contains("Confirm your identity with single sign-on") && !page.contains(r#"name="password""#),
        "{page}"
    );
    let r = stat
        .post(&format!("{s}/sign"), &[("username", "statistician"), ("password", PASSWORD), ("meaning", "approval")])
        .await;
    let (_, page) = stat.get_text(&location(&r)).await;
    assert!(page.contains("confirm your identity with single sign-on first"), "{page}");
    assert!(audit_events(&app, "sign").is_empty());
    // Someone else at the provider confirms nothing.
    let r = through_provider(&stat, &format!("/login/sso?reauth=1&next={s}"), "manager").await;
    assert_eq!(r.status(), 303);
    let (_, page) = stat.get_text(s).await;
    assert!(!page.contains("sso-confirmed"), "{page}");
    // The statistician, just now: the signature goes through without a password.
    let to =
        continue_target(through_provider(&stat, &format!("/login/sso?reauth=1&next={s}"), "statistician").await).await;
    assert_eq!(to, s);
    let (_, page) = stat.get_text(s).await;
    assert!(page.contains("Identity confirmed"), "{page}");
    let r = stat.post(&format!("{s}/sign"), &[("username", "statistician"), ("meaning", "approval")]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(audit_events(&app, "sign").len(), 1);
}
