"""Okta's own Python SDK (PyPI `okta`, pinned in requirements.txt) driving okta-sim as a real
client would drive Okta. okta-sim/tests/okta_sdk.rs starts the simulator, seeds it and runs this
script; it reads the report this prints (one JSON object on stdout) and the simulator's call log.

Every check uses the SDK's public API, typed models and error type: what this finds is a difference
between okta-sim and Okta (or a quirk of the SDK, worked around here and said so). Besides, it calls
the simulator's control API (`/__sim`) to set up a rate limit, and resends by hand the client
assertions the SDK signed, to check that each one was used up as Okta uses them up.

Input, all in the environment: OKTA_SIM_URL, OKTA_SIM_API_TOKEN, OKTA_SIM_CLIENT_ID (an OAuth
service app without DPoP), OKTA_SIM_DPOP_CLIENT_ID (one that requires DPoP), OKTA_SIM_PRIVATE_KEY
(the PEM of both clients' RSA key), OKTA_SIM_APP_IDS (the seeded apps, comma-separated, in
creation order; the first two have two keys).
"""

import asyncio
import json
import os
import sys
import traceback
import urllib.error
import urllib.parse
import urllib.request

SIM = os.environ["OKTA_SIM_URL"]
TOKEN = os.environ["OKTA_SIM_API_TOKEN"]
APP_IDS = os.environ["OKTA_SIM_APP_IDS"].split(",")

# The SDK reads OKTA_* variables and okta.yaml files as configuration: only ours may count. It
# refuses plain-http org URLs unless its testing switch is on (the simulator serves plain http).
for name in [n for n in os.environ if n.startswith("OKTA_CLIENT_")]:
    del os.environ[name]
os.environ["OKTA_TESTING_TESTINGDISABLEHTTPSCHECK"] = "true"

from okta.client import Client  # noqa: E402  (after the environment is set)
from okta.errors.okta_api_error import OktaAPIError  # noqa: E402
from okta.oauth import OAuth  # noqa: E402
from okta.pagination import PaginationHelper  # noqa: E402
from okta.models import (  # noqa: E402
    JsonWebKey,
    SamlApplication,
    SamlApplicationSettings,
    SamlApplicationSettingsSignOn,
)

checks = []

# Every client assertion the SDK signs, in order: observed (the SDK's own method still signs them),
# so that the test can see which assertion went with which token request.
signed_assertions = []
_sign_assertion = OAuth.get_JWT


def _recording_get_jwt(self):
    assertion = _sign_assertion(self)
    signed_assertions.append(assertion)
    return assertion


OAuth.get_JWT = _recording_get_jwt


def check(name, ok, detail=None):
    checks.append({"name": name, "ok": bool(ok), "detail": detail})


def sim_control(method, path, body):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{SIM}/__sim{path}", method=method, data=data, headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read() or b"null")


def ssws_client():
    client = Client({"orgUrl": SIM, "token": TOKEN, "rateLimit": {"maxRetries": 2}})
    # SDK quirk (okta 3.4.6): its generated API methods build `Authorization` as
    # authorization_mode + token, "SSWS<token>" without the space Okta documents
    # (`Authorization: SSWS <token>`). okta-sim, like Okta's documentation, wants the space, so the
    # test sends the documented form.
    client.configuration.authorization_mode = "SSWS "
    return client


def oauth_client(client_id, dpop):
    with open(os.environ["OKTA_SIM_PRIVATE_KEY"]) as f:
        pem = f.read()
    return Client({
        "orgUrl": SIM,
        "authorizationMode": "PrivateKey",
        "clientId": client_id,
        "scopes": ["okta.apps.read", "okta.apps.manage"],
        "privateKey": pem,
        "dpopEnabled": dpop,
    })


def fails_with(result, code, status):
    """The SDK returns (data, response, error) or (response, error): error must be an
    OktaAPIError with that code and status."""
    error = result[-1]
    return isinstance(error, OktaAPIError) and error.error_code == code and error.status == status, repr(error)


async def list_with_pagination(client):
    # The SDK's way (3.x): the next page's `after` cursor from the `Link: <..>; rel="next"` header.
    ids, types, pages, after, error = [], set(), 0, None, None
    while pages < 10:
        apps, response, error = await client.list_applications(limit=2, after=after)
        if error:
            break
        pages += 1
        ids += [app.id for app in apps]
        types |= {type(app).__name__ for app in apps}
        after = PaginationHelper.extract_next_cursor(response.headers)
        if after is None:
            break
    check("list apps, two per page, following the Link header", error is None and ids == APP_IDS and pages == 3,
          {"ids": ids, "pages": pages, "error": repr(error)})
    check("listed apps are the SDK's SamlApplication", types == {"SamlApplication"}, sorted(types))


async def get_and_replace(client):
    app_id = APP_IDS[0]
    app, _, error = await client.get_application(app_id)
    check("get an app as the SDK's SamlApplication", error is None and isinstance(app, SamlApplication),
          repr(error) if error else type(app).__name__)
    if error:
        return
    before = app.to_dict()
    acs_url = app.settings.sign_on.sso_acs_url

    # Change what an admin would: the label, the visibility, the user name template; keep the rest.
    app.label = "Replaced by the SDK"
    app.visibility.auto_submit_toolbar = True
    app.visibility.hide.i_os = True
    app.credentials.user_name_template.template = "${source.email}"
    replaced, _, error = await client.replace_application(app_id, app)
    check("replace the app with the SDK's model", error is None, repr(error))
    if error:
        return
    got = replaced.to_dict()
    check("the replace answers with the new label", got.get("label") == "Replaced by the SDK", got.get("label"))
    check("the replace changes visibility", got["visibility"].get("autoSubmitToolbar") is True
          and got["visibility"]["hide"].get("iOS") is True, got.get("visibility"))
    check("the replace changes credentials.userNameTemplate",
          got["credentials"]["userNameTemplate"].get("template") == "${source.email}", got.get("credentials"))
    check("the replace keeps the signing key", got["credentials"].get("signing", {}).get("kid")
          == before["credentials"]["signing"]["kid"], got.get("credentials"))
    # The SDK leaves empty values (`""`, `[]`) out of the body: Okta keeps those settings.
    lost = sorted(set(before["settings"]["signOn"]) - set(got["settings"]["signOn"]))
    check("the replace keeps every setting the body left out", not lost, {"lost": lost})
    lost = sorted(set(before["settings"]) - set(got["settings"]))
    check("the replace keeps settings objects the body left out", not lost, {"lost": lost})

    # A model holding only what changes: Okta keeps everything else of the app.
    partial = SamlApplication(
        label="Replaced by the SDK",
        sign_on_mode="SAML_2_0",
        settings=SamlApplicationSettings(sign_on=SamlApplicationSettingsSignOn(audience="urn:sdk:audience")),
    )
    replaced, _, error = await client.replace_application(app_id, partial)
    ok = error is None
    got = replaced.to_dict() if ok else {}
    sign_on = got.get("settings", {}).get("signOn", {})
    check("a partial replace changes what it gives", ok and sign_on.get("audience") == "urn:sdk:audience",
          repr(error) if error else sign_on.get("audience"))
    check("a partial replace keeps the rest of the app", ok and sign_on.get("ssoAcsUrl") == acs_url
          and got["visibility"].get("autoSubmitToolbar") is True
          and got["credentials"]["userNameTemplate"].get("template") == "${source.email}"
          and got["credentials"].get("signing", {}).get("kid") == before["credentials"]["signing"]["kid"],
          {"signOn": sign_on, "visibility": got.get("visibility"), "credentials": got.get("credentials")})
    again, _, error = await client.get_application(app_id)
    check("a get after the replaces shows them", error is None and again.to_dict() == got,
          repr(error) if error else None)


async def keys(client):
    app_id, target = APP_IDS[0], APP_IDS[2]
    listed, _, error = await client.list_application_keys(app_id)
    ok = error is None and len(listed) == 2 and all(isinstance(k, JsonWebKey) for k in listed)
    check("list an app's keys as the SDK's JsonWebKey", ok, repr(error) if error else len(listed))
    if not ok:
        return
    kid = listed[0].kid
    key, _, error = await client.get_application_key(app_id, kid)
    check("get one key", error is None and key.kid == kid and key.x5c and key.expires_at is not None,
          repr(error) if error else key.to_dict())
    generated, _, error = await client.generate_application_key(app_id, validity_years=2)
    ok = error is None and isinstance(generated, JsonWebKey) and generated.kid not in {k.kid for k in listed}
    check("generate a key valid for two years", ok and generated.expires_at.year - generated.created.year == 2,
          repr(error) if error else generated.to_dict())
    cloned, _, error = await client.clone_application_key(app_id, kid, target_aid=target)
    check("clone a key to another app", error is None and cloned.kid == kid, repr(error))
    target_keys, _, error = await client.list_application_keys(target)
    check("the target app has the clone", error is None and kid in [k.kid for k in target_keys], repr(error))
    metadata, _, error = await client.preview_sam_lmetadata_for_application(app_id, kid)
    text = metadata if isinstance(metadata, str) else getattr(metadata, "data", metadata)
    text = text.decode() if isinstance(text, (bytes, bytearray)) else str(text)
    check("preview the SAML metadata of a key", error is None and "EntityDescriptor" in text
          and key.x5c[0][:40] in text.replace("\n", ""), repr(error) if error else text[:200])


async def errors(client):
    check("an unknown app is the SDK's OktaAPIError E0000007 (404)",
          *fails_with(await client.get_application("0oanosuchapp000000"), "E0000007", 404))
    check("an out-of-range validity is OktaAPIError E0000001 (400)",
          *fails_with(await client.generate_application_key(APP_IDS[0], validity_years=1), "E0000001", 400))
    check("an unknown key is OktaAPIError E0000007 (404)",
          *fails_with(await client.get_application_key(APP_IDS[0], "nosuchkid"), "E0000007", 404))


async def rate_limit_retry(client):
    # Two calls per two-second window on `/api/v1/apps/{id}`: the third waits for the reset that
    # the 429 announces (X-Rate-Limit-Reset against Date) and is retried by the SDK.
    limits = sim_control("GET", "/rate-limits", None)
    sim_control("PUT", "/rate-limits", {**limits, "app_instance": {"limit": 2, "window": 2000}})
    try:
        results = [await client.get_application(APP_IDS[1]) for _ in range(3)]
    finally:
        sim_control("PUT", "/rate-limits", limits)
    errors = [repr(r[-1]) for r in results if r[-1] is not None]
    check("a 429 is retried after X-Rate-Limit-Reset and succeeds", not errors, errors)


def token_request(assertion, dpop_proof):
    """A token request by hand, with an assertion and proof the SDK made: (status, body)."""
    form = urllib.parse.urlencode({
        "grant_type": "client_credentials",
        "scope": "okta.apps.read okta.apps.manage",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    if dpop_proof:
        headers["DPoP"] = dpop_proof
    request = urllib.request.Request(f"{SIM}/oauth2/v1/token", data=form, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


async def oauth(client_id, dpop, label):
    client = oauth_client(client_id, dpop)
    signed_before = len(signed_assertions)
    app, _, error = await client.get_application(APP_IDS[1])
    check(f"{label}: get an app", error is None and app.id == APP_IDS[1], repr(error))
    listed, _, error = await client.list_application_keys(APP_IDS[1])
    check(f"{label}: list its keys", error is None and listed and all(isinstance(k, JsonWebKey) for k in listed),
          repr(error))
    generated, _, error = await client.generate_application_key(APP_IDS[1], validity_years=3)
    check(f"{label}: generate a key (okta.apps.manage)", error is None and generated.kid, repr(error))
    oauth = client._request_executor._oauth
    token, token_type = oauth.get_current_token()
    check(f"{label}: the access token is {'DPoP' if dpop else 'Bearer'}",
          token and token_type == ("DPoP" if dpop else "Bearer"), token_type)

    # Okta consumes an assertion's `jti` on every token request, also one answered with
    # `use_dpop_nonce` (the SDK's oauth.py says so, and signs a new assertion for the retry).
    signed = signed_assertions[signed_before:]
    expected = 2 if dpop else 1
    check(f"{label}: {expected} assertion(s) signed for one token", len(signed) == expected
          and len(set(signed)) == expected, len(signed))
    for n, assertion in enumerate(signed):
        # With DPoP, a new proof (carrying the nonce the SDK holds): only the assertion is replayed.
        proof = oauth.get_dpop_generator().generate_proof_jwt(http_method="POST", http_url=f"{SIM}/oauth2/v1/token") \
            if dpop else None
        status, body = token_request(assertion, proof)
        check(f"{label}: assertion {n + 1} of {len(signed)} is used up (Okta consumes its jti)",
              status == 401 and body.get("error") == "invalid_client"
              and "already been used" in body.get("error_description", ""), {"status": status, "body": body})


async def main():
    client = ssws_client()
    for step in (list_with_pagination, get_and_replace, keys, errors, rate_limit_retry):
        try:
            await step(client)
        except Exception:  # a crash in one step is a failed check, not the end of the report
            check(f"{step.__name__} ran", False, traceback.format_exc())
    for client_id, dpop, label in [
        (os.environ["OKTA_SIM_CLIENT_ID"], False, "private_key_jwt"),
        (os.environ["OKTA_SIM_DPOP_CLIENT_ID"], True, "private_key_jwt with DPoP"),
    ]:
        try:
            await oauth(client_id, dpop, label)
        except Exception:
            check(f"{label} ran", False, traceback.format_exc())
    print(json.dumps({"checks": checks}))
    return 0 if all(c["ok"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
