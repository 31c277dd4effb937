// @azure/msal-node, unmodified, against the pbi-bridge sandbox over HTTPS (trust its CA with NODE_EXTRA_CA_CERTS).
// Confidential client: client credentials, authorization code with PKCE (sign-in and consent completed with
// plain form posts), then a silent refresh. Prints one JSON object; exits 1 on any failure.
import * as msal from "@azure/msal-node";

const env = process.env;
const base = env.SANDBOX_URL;
const pbi = "https://analysis.windows.net/powerbi/api";
const authority = `${base}/${env.SANDBOX_TENANT}`;
const knownAuthorities = [new URL(base).host];
const result = {};

function fail(message) {
  console.log(JSON.stringify({ ...result, error: String(message) }));
  process.exit(1);
}

async function apiGet(token, path) {
  const response = await fetch(`${base}/v1.0/myorg${path}`, { headers: { Authorization: `Bearer ${token}` } });
  if (!response.ok) fail(`${path}: HTTP ${response.status}`);
  return response.json();
}

try {
  // 1. Client credentials as the demo service principal.
  const sp = new msal.ConfidentialClientApplication({ auth: { clientId: env.SP_CLIENT_ID, clientSecret: env.SP_SECRET, authority, knownAuthorities } });
  const appToken = await sp.acquireTokenByClientCredential({ scopes: [`${pbi}/.default`] });
  result.sp_groups = (await apiGet(appToken.accessToken, "/groups")).value.map((g) => g.name);

  // 2. Authorization code with PKCE for a demo user.
  const app = new msal.ConfidentialClientApplication({ auth: { clientId: env.CLIENT_ID, clientSecret: env.CLIENT_SECRET, authority, knownAuthorities } });
  const scopes = [`${pbi}/Dashboard.Read.All`, `${pbi}/Workspace.Read.All`];
  const { verifier, challenge } = await new msal.CryptoProvider().generatePkceCodes();
  const authUrl = await app.getAuthCodeUrl({ scopes, redirectUri: env.REDIRECT_URI, codeChallenge: challenge, codeChallengeMethod: "S256", loginHint: env.USER, state: "node-state" });
  const page = await (await fetch(authUrl, { redirect: "manual" })).text();
  const ctx = /name="ctx" value="([^"]+)"/.exec(page);
  if (!ctx) fail(`no sign-in form: ${page.slice(0, 300)}`);
  let answer = await fetch(`${base}/${env.SANDBOX_TENANT}/login`, { method: "POST", redirect: "manual", body: new URLSearchParams({ ctx: ctx[1], login: env.USER, passwd: env.PASSWORD }) });
  const cookie = (answer.headers.get("set-cookie") || "").split(";")[0];
  if (answer.status === 200) {
    const consent = await answer.text();
    const consentCtx = /name="ctx" value="([^"]+)"/.exec(consent);
    if (!consentCtx) fail(`neither a redirect nor a consent page: ${consent.slice(0, 300)}`);
    answer = await fetch(`${base}/${env.SANDBOX_TENANT}/consent`, { method: "POST", redirect: "manual", headers: { cookie }, body: new URLSearchParams({ ctx: consentCtx[1], decision: "accept" }) });
  }
  if (answer.status !== 302) fail(`sign-in did not redirect: ${answer.status}`);
  const back = new URL(answer.headers.get("location"));
  result.state = back.searchParams.get("state");
  const tokens = await app.acquireTokenByCode({ code: back.searchParams.get("code"), scopes, redirectUri: env.REDIRECT_URI, codeVerifier: verifier });
  result.username = tokens.account.username;
  result.user_groups = (await apiGet(tokens.accessToken, "/groups")).value.map((g) => g.name);

  // 3. Silent refresh with the cached refresh token.
  const refreshed = await app.acquireTokenSilent({ account: tokens.account, scopes, forceRefresh: true });
  result.refreshed = refreshed.accessToken !== tokens.accessToken;
  result.from_cache = refreshed.fromCache;
  console.log(JSON.stringify(result));
} catch (error) {
  fail(error && error.stack ? error.stack : error);
}
