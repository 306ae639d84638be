// A real OpenID Provider for the tests: the certified `oidc-provider` package (npm), with one
// client (Evidentia) and accounts that exist for any login typed into its development sign-in
// page. Started by tests/it/sso.rs; never part of the product.
//
//   OIDC_PORT=…  OIDC_REDIRECT_URI=http://127.0.0.1:…/login/sso/callback  node provider.mjs
//
// Prints "listening <issuer>" when ready. Accounts: the login typed is the `sub`, and
// `preferred_username`; `name` is "SSO <login>".
import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT || 0);
const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [{
    client_id: 'evidentia',
    client_secret: 'evidentia-test-secret',
    redirect_uris: [process.env.OIDC_REDIRECT_URI],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  pkce: { required: () => true },
  claims: { openid: ['sub'], profile: ['preferred_username', 'name'] },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, name: `SSO ${id}` };
      },
    };
  },
});
provider.proxy = false;
// The development interactions refuse plain http issuers only in production mode.
const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
