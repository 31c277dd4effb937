"""MSAL for Python, unmodified, against the pbi-bridge sandbox over HTTPS.

Confidential client: client credentials, authorization code with PKCE (the sign-in and consent pages are
completed with plain form posts), then a silent refresh. Prints one JSON object; exits 1 on any failure.
Settings come from the environment (see crates/pbi-sandbox/tests/it/msal.rs).
"""
import json
import os
import re
import sys
import urllib.parse

import msal
import requests

env = os.environ
base, tenant, ca = env["SANDBOX_URL"], env["SANDBOX_TENANT"], env["SANDBOX_CA"]
pbi = "https://analysis.windows.net/powerbi/api"
result = {"msal": msal.__version__}


def api_get(token, path):
    r = requests.get(f"{base}/v1.0/myorg{path}", headers={"Authorization": f"Bearer {token}"}, verify=ca)
    r.raise_for_status()
    return r.json()


def fail(message):
    print(json.dumps({**result, "error": message}))
    sys.exit(1)


# 1. Client credentials as the demo service principal.
sp = msal.ConfidentialClientApplication(env["SP_CLIENT_ID"], client_credential=env["SP_SECRET"], authority=f"{base}/{tenant}", instance_discovery=False, verify=ca)
app_token = sp.acquire_token_for_client(scopes=[f"{pbi}/.default"])
if "access_token" not in app_token:
    fail(f"client credentials: {app_token}")
result["sp_groups"] = [g["name"] for g in api_get(app_token["access_token"], "/groups")["value"]]

# 2. Authorization code with PKCE for a demo user.
app = msal.ConfidentialClientApplication(env["CLIENT_ID"], client_credential=env["CLIENT_SECRET"], authority=f"{base}/{tenant}", instance_discovery=False, verify=ca)
scopes = [f"{pbi}/Dashboard.Read.All", f"{pbi}/Workspace.Read.All"]
flow = app.initiate_auth_code_flow(scopes, redirect_uri=env["REDIRECT_URI"], login_hint=env["USER"])
result["pkce_method"] = urllib.parse.parse_qs(urllib.parse.urlparse(flow["auth_uri"]).query).get("code_challenge_method", [""])[0]

browser = requests.Session()
browser.verify = ca
page = browser.get(flow["auth_uri"], allow_redirects=False)
ctx = re.search(r'name="ctx" value="([^"]+)"', page.text)
if not ctx:
    fail(f"no sign-in form: {page.status_code} {page.text[:300]}")
answer = browser.post(f"{base}/{tenant}/login", data={"ctx": ctx.group(1), "login": env["USER"], "passwd": env["PASSWORD"]}, allow_redirects=False)
if answer.status_code == 200 and "Permissions requested" in answer.text:
    ctx = re.search(r'name="ctx" value="([^"]+)"', answer.text)
    answer = browser.post(f"{base}/{tenant}/consent", data={"ctx": ctx.group(1), "decision": "accept"}, allow_redirects=False)
if answer.status_code != 302:
    fail(f"sign-in did not redirect: {answer.status_code} {answer.text[:300]}")
auth_response = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(answer.headers["Location"]).query))
tokens = app.acquire_token_by_auth_code_flow(flow, auth_response)
if "access_token" not in tokens:
    fail(f"code redemption: {tokens}")
result["id_token_upn"] = tokens.get("id_token_claims", {}).get("preferred_username")
result["user_groups"] = [g["name"] for g in api_get(tokens["access_token"], "/groups")["value"]]

# 3. Silent refresh with the cached refresh token.
accounts = app.get_accounts()
if not accounts:
    fail("MSAL cached no account (client_info missing?)")
refreshed = app.acquire_token_silent(scopes, account=accounts[0], force_refresh=True)
if not refreshed or "access_token" not in refreshed:
    fail(f"silent refresh: {refreshed}")
result["refreshed"] = refreshed["access_token"] != tokens["access_token"]
result["token_source"] = refreshed.get("token_source")
print(json.dumps(result))
