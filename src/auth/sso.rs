//! Single sign-on with OpenID Connect (Core 1.0, authorization code flow with PKCE, RFC 7636),
//! through the `openidconnect` crate: discovery, the ID token's signature (the provider's JWKS),
//! issuer, audience, expiry and nonce are checked there. Evidentia keeps the roles: the provider
//! says who someone is (`issuer|sub`), and an account signs in by single sign-on only once it is
//! bound to that subject: by its owner, signed in with the password (and second factor), who
//! links it under My account; or at provisioning, where allowed, of a new account (named by a
//! configured claim) without any study role. A provider's username claim is never trusted to
//! pick an existing account (OIDC Core §5.7: it is not unique and often chosen by the user).
//! Accounts may sign in by single sign-on only (no local password); they then re-authenticate at
//! the provider (`prompt=login`, `max_age=0`) for each e-signature.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use openidconnect::core::{
    CoreAuthPrompt, CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde_json::json;

use super::users::{self, User, Username};
use super::Actor;
use crate::audit::{self, Action, Chain, Change, Entity};
use crate::db::schema::users as users_t;
use crate::db::{now, write_tx, Conn};
use crate::error::{Error, Result};

/// A re-authentication at the provider counts for an e-signature this long.
pub const REAUTH_VALID: Duration = Duration::from_secs(5 * 60);

/// [`REAUTH_VALID`] as a span of time stamps.
pub fn reauth_window() -> chrono::Duration {
    chrono::Duration::from_std(REAUTH_VALID).unwrap_or_default()
}
/// The provider's metadata and keys are fetched again after this long (key rotation).
const METADATA_TTL: Duration = Duration::from_secs(3600);

/// The settings (`EVIDENTIA_OIDC_*`).
#[derive(Debug, Clone)]
pub struct SsoSettings {
    /// The provider's issuer URL (discovery at `/.well-known/openid-configuration`).
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    /// `preferred_username` (the default) or `sub`: the claim matched to the username.
    pub username_claim: String,
    /// Removed from the end of the claim (`@hospital.org`: UPNs become usernames); a claim
    /// with another domain signs no one in.
    pub username_domain: Option<String>,
    /// Unknown users get an account (no study role, no local password).
    pub provision: bool,
    /// The provider's name on the sign-in page.
    pub label: String,
    /// Where the provider sends the browser back: `<public URL>/login/sso/callback`.
    pub redirect_uri: String,
}

impl SsoSettings {
    /// From the environment, when `EVIDENTIA_OIDC_ISSUER` and `EVIDENTIA_OIDC_CLIENT_ID` are set.
    pub fn from_env(public_url: Option<&str>, bind: &str) -> Option<SsoSettings> {
        let var = |n: &str| std::env::var(n).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let base = public_url.map(|u| u.trim_end_matches('/').to_string()).unwrap_or_else(|| format!("http://{bind}"));
        Some(SsoSettings {
            issuer: var("EVIDENTIA_OIDC_ISSUER")?,
            client_id: var("EVIDENTIA_OIDC_CLIENT_ID")?,
            client_secret: var("EVIDENTIA_OIDC_CLIENT_SECRET"),
            username_claim: var("EVIDENTIA_OIDC_USERNAME_CLAIM").unwrap_or_else(|| "preferred_username".into()),
            username_domain: var("EVIDENTIA_OIDC_USERNAME_DOMAIN"),
            provision: matches!(var("EVIDENTIA_OIDC_PROVISION").as_deref(), Some("1" | "true" | "yes")),
            label: var("EVIDENTIA_OIDC_LABEL").unwrap_or_else(|| "single sign-on".into()),
            redirect_uri: format!("{base}/login/sso/callback"),
        })
    }
}

/// What the browser carries through the provider (an HttpOnly cookie, 10 minutes): the values
/// the answer is checked against.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Flow {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    /// Where to go afterwards.
    pub next: String,
    /// The session re-authenticating for an e-signature, or linking its account (`None`: a
    /// sign-in).
    pub reauth_session: Option<i32>,
    /// With `reauth_session`: link the session's account to the identity instead.
    #[serde(default)]
    pub link: bool,
}

/// Who the provider says signed in.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `issuer|sub`: what an account is bound to.
    pub subject: String,
    /// The configured claim, as an Evidentia username.
    pub username: String,
    pub full_name: String,
    /// When the person authenticated at the provider (`auth_time`), if it said.
    pub auth_time: Option<chrono::NaiveDateTime>,
}

/// A client made from discovery: the authorization endpoint is known, the token and UserInfo
/// endpoints may be (the crate checks them when used).
type DiscoveredClient =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

pub struct Sso {
    pub settings: SsoSettings,
    http: openidconnect::reqwest::Client,
    metadata: tokio::sync::Mutex<Option<(Instant, CoreProviderMetadata)>>,
}

fn sso_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Conflict(format!("single sign-on failed: {what}: {e}"))
}

impl Sso {
    pub fn new(settings: SsoSettings) -> Result<Sso> {
        let http = openidconnect::reqwest::ClientBuilder::new()
            // Following redirects would open the server to SSRF (the crate's advice).
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| Error::Internal(anyhow::anyhow!("HTTP client: {e}")))?;
        Ok(Sso { settings, http, metadata: tokio::sync::Mutex::new(None) })
    }

    async fn provider(&self) -> Result<CoreProviderMetadata> {
        let mut cached = self.metadata.lock().await;
        if let Some((at, m)) = cached.as_ref() {
            if at.elapsed() < METADATA_TTL {
                return Ok(m.clone());
            }
        }
        let issuer = IssuerUrl::new(self.settings.issuer.clone()).map_err(|e| sso_error("issuer URL", e))?;
        let m = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| sso_error("the provider's discovery document", e))?;
        *cached = Some((Instant::now(), m.clone()));
        Ok(m)
    }

    /// The client of the provider's current metadata (its endpoints as discovered).
    async fn client(&self) -> Result<DiscoveredClient> {
        let s = &self.settings;
        let redirect = RedirectUrl::new(s.redirect_uri.clone()).map_err(|e| sso_error("redirect URI", e))?;
        Ok(CoreClient::from_provider_metadata(
            self.provider().await?,
            ClientId::new(s.client_id.clone()),
            s.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect))
    }

    /// The provider's address to send the browser to, and the flow to remember.
    pub async fn begin(&self, next: &str, reauth_session: Option<i32>, link: bool) -> Result<(String, Flow)> {
        let client = self.client().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge);
        if reauth_session.is_some() {
            // Re-authenticate now, whatever session the provider has (OIDC Core §3.1.2.1).
            request = request.add_prompt(CoreAuthPrompt::Login).set_max_age(Duration::ZERO);
        }
        let (url, state, nonce) = request.url();
        let flow = Flow {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
            next: next.to_string(),
            reauth_session,
            link,
        };
        Ok((url.to_string(), flow))
    }

    /// Exchanges the code (with the PKCE verifier) and checks the ID token.
    pub async fn finish(&self, code: &str, flow: &Flow) -> Result<Identity> {
        let s = &self.settings;
        let client = self.client().await?;
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| sso_error("the provider has no token endpoint", e))?
            .set_pkce_verifier(PkceCodeVerifier::new(flow.verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| sso_error("exchanging the code", e))?;
        let id_token = token.id_token().ok_or_else(|| sso_error("the answer", "no ID token"))?;
        let claims = id_token
            .claims(&client.id_token_verifier(), &Nonce::new(flow.nonce.clone()))
            .map_err(|e| sso_error("the ID token", e))?;
        let mut preferred = claims.preferred_username().map(|u| u.as_str().to_string());
        let mut name = claims.name().and_then(|n| n.get(None)).map(|n| n.as_str().to_string());
        if preferred.is_none() && s.username_claim != "sub" {
            // Providers may keep profile claims out of the ID token (OIDC Core §5.4): the
            // UserInfo endpoint has them, for the same subject (checked by the crate).
            let info: CoreUserInfoClaims = client
                .user_info(token.access_token().to_owned(), Some(claims.subject().clone()))
                .map_err(|e| sso_error("the provider has no UserInfo endpoint", e))?
                .request_async(&self.http)
                .await
                .map_err(|e| sso_error("the UserInfo answer", e))?;
            preferred = info.preferred_username().map(|u| u.as_str().to_string());
            name = name.or_else(|| info.name().and_then(|n| n.get(None)).map(|n| n.as_str().to_string()));
        }
        let raw = match s.username_claim.as_str() {
            "sub" => Some(claims.subject().as_str().to_string()),
            _ => preferred,
        }
        .ok_or_else(|| sso_error("the ID token and UserInfo", format!("no '{}' claim", s.username_claim)))?;
        let username = username_of(&raw, s.username_domain.as_deref())?;
        let full_name =
            name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).unwrap_or_else(|| username.clone());
        Ok(Identity {
            subject: format!("{}|{}", claims.issuer().as_str(), claims.subject().as_str()),
            username,
            full_name,
            auth_time: claims.auth_time().map(|t| t.naive_utc()),
        })
    }
}

/// The Evidentia username a claim names: lower case, the configured domain removed.
fn username_of(claim: &str, domain: Option<&str>) -> Result<String> {
    let claim = claim.trim().to_lowercase();
    let local = match domain.map(|d| d.trim_start_matches('@').to_lowercase()) {
        Some(d) => claim
            .strip_suffix(&format!("@{d}"))
            .map(str::to_string)
            .ok_or_else(|| sso_error("the username claim", format!("'{claim}' is not of the domain {d}")))?,
        None => claim,
    };
    Username::parse(&local)
        .map(|u| u.as_str().to_string())
        .map_err(|_| sso_error("the username claim", format!("'{local}' is not a valid Evidentia username")))
}

/// The account an identity signs in: the one bound to its subject; else the one of its username,
/// bound now (audited); else, where allowed, a new one without study roles or a local password
/// (audited). Deactivated accounts and accounts bound to another subject sign in nowhere.
pub fn resolve(conn: &mut Conn, settings: &SsoSettings, who: &Identity) -> Result<User> {
    let refused = |why: &str| Error::Conflict(format!("single sign-on of '{}' refused: {why}", who.username));
    let bound: Option<User> = users_t::table
        .filter(users_t::sso_subject.eq(&who.subject))
        .select(User::as_select())
        .first(conn)
        .optional()?;
    let user = match bound {
        Some(u) => u,
        None => match users::find_by_username(conn, &who.username)? {
            Some(_) => {
                return Err(refused(
                    "the account is not linked to single sign-on yet: sign in with your password once and link it under My account",
                ))
            }
            None if settings.provision => {
                let input = users::NewUserInput {
                    username: who.username.clone(),
                    full_name: who.full_name.chars().take(100).collect(),
                    is_admin: false,
                };
                // An unusable password: the account signs in by single sign-on only.
                let unusable = format!("sso-only:{}", super::random_token());
                let u = users::create(conn, &Actor::system(), &input, &unusable)?;
                let detail =
                    json!({"single_sign_on": "provisioned", "issuer": settings.issuer, "password_login": false});
                write_tx(conn, |conn| bind(conn, &u, "system", who, detail, false))?;
                users::get(conn, u.id)?
            }
            None => return Err(refused("no such Evidentia account; an administrator creates it first")),
        },
    };
    if !user.active {
        return Err(refused("the account is deactivated"));
    }
    Ok(user)
}

/// Links the signed-in `user` (who proved the account with its password and second factor) to
/// the identity the provider just vouched for; audited. Refused when that identity is another
/// account's, or the account is linked to another identity already.
pub fn link(conn: &mut Conn, settings: &SsoSettings, user_id: i32, who: &Identity) -> Result<User> {
    write_tx(conn, |conn| {
        let user = users::get(conn, user_id)?;
        let owner: Option<i32> =
            users_t::table.filter(users_t::sso_subject.eq(&who.subject)).select(users_t::id).first(conn).optional()?;
        match (owner, user.sso_subject.as_deref()) {
            (Some(o), _) if o == user.id => return Ok(user),
            (Some(_), _) => {
                return Err(Error::Conflict("that single sign-on identity is linked to another account".into()))
            }
            (None, Some(_)) => {
                return Err(Error::Conflict(
                    "this account is linked to another single sign-on identity: ask an administrator".into(),
                ))
            }
            (None, None) => {}
        }
        let detail = json!({"single_sign_on": "linked", "issuer": settings.issuer, "provider_username": who.username});
        bind(conn, &user, &user.username, who, detail, true)?;
        users::get(conn, user.id)
    })
}

/// Binds `user` to the identity's subject (and sets whether the password signs in), audited.
fn bind(
    conn: &mut Conn,
    user: &User,
    actor: &str,
    who: &Identity,
    detail: serde_json::Value,
    password_login: bool,
) -> Result<()> {
    diesel::update(users_t::table.find(user.id))
        .set((
            users_t::sso_subject.eq(Some(&who.subject)),
            users_t::password_login.eq(password_login && user.password_login),
            users_t::updated_at.eq(now()),
        ))
        .execute(conn)?;
    audit::record(conn, Change::new(Chain::System, actor, Action::Update, Entity::User, &user.username).after(detail))?;
    Ok(())
}

/// Turns an account's local password sign-in on or off (administrators; audited). Off only for an
/// account bound to a single sign-on identity, which would otherwise have no way in.
pub fn set_password_login(conn: &mut Conn, actor: &Actor, user_id: i32, on: bool) -> Result<User> {
    if !actor.is_admin {
        return Err(Error::forbidden("only administrators manage accounts"));
    }
    write_tx(conn, |conn| {
        let u = users::get(conn, user_id)?;
        if !on && u.sso_subject.is_none() {
            return Err(Error::Conflict(format!(
                "'{}' has not linked single sign-on yet: without a password they could not sign in at all",
                u.username
            )));
        }
        if u.password_login == on {
            return Ok(u);
        }
        diesel::update(users_t::table.find(u.id))
            .set((users_t::password_login.eq(on), users_t::updated_at.eq(now())))
            .execute(conn)?;
        audit::record(
            conn,
            Change::new(Chain::System, &actor.name, Action::Update, Entity::User, &u.username)
                .before(json!({"password_login": u.password_login}))
                .after(json!({"password_login": on})),
        )?;
        users::get(conn, u.id)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn claims_become_usernames_or_are_refused() {
        assert_eq!(super::username_of(" Kim.Minji ", None).unwrap(), "kim.minji");
        assert_eq!(super::username_of("KIM@Hospital.org", Some("hospital.org")).unwrap(), "kim");
        assert!(super::username_of("kim@elsewhere.org", Some("@hospital.org")).is_err());
        assert!(super::username_of("kim@hospital.org", None).is_err(), "'@' is not in usernames");
    }
}
