"""The lab's Entra token endpoint: msal gets real tokens from it; claims and errors are Entra's."""

import base64
import datetime
import json

import msal
import pytest
import requests
from ceops_lab.testing import LabHttpClient, claims_of, header_of
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

GRAPH_ROLES = {"Application.ReadWrite.All", "AppRoleAssignment.ReadWrite.All"}


def _msal_app(lab, client_id, credential, tenant):
    return msal.ConfidentialClientApplication(client_id, client_credential=credential, authority="%s/%s" % (lab.login_url, tenant),
                                              instance_discovery=False, http_client=LabHttpClient(lab.ca_file))


def _b64url_int(text):
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


def test_msal_client_secret_token_has_entra_claims(fresh_lab, contoso):
    app = _msal_app(fresh_lab, contoso["automation_client_id"], contoso["automation_client_secret"], contoso["domain"])
    result = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])
    assert result["token_type"] == "Bearer" and result["expires_in"] > 3500, result
    token = result["access_token"]
    header, claims = header_of(token), claims_of(token)
    assert header["typ"] == "JWT" and header["alg"] == "RS256" and header["kid"] == header["x5t"]
    assert claims["aud"] == "https://graph.microsoft.com"
    assert claims["iss"] == "https://sts.windows.net/%s/" % contoso["tenant_id"]
    assert claims["tid"] == contoso["tenant_id"]
    assert claims["appid"] == contoso["automation_client_id"]
    assert claims["appidacr"] == "1" and claims["idtyp"] == "app" and claims["ver"] == "1.0"
    assert claims["oid"] == claims["sub"] == contoso["automation_service_principal_id"]
    assert set(claims["roles"]) == GRAPH_ROLES
    assert claims["nbf"] <= claims["iat"] < claims["exp"] and claims["uti"]

    # The signature verifies with the key published at the jwks_uri of the OpenID configuration.
    config = requests.get("%s/%s/v2.0/.well-known/openid-configuration" % (fresh_lab.login_url, contoso["tenant_id"]),
                          verify=fresh_lab.ca_file).json()
    keys = requests.get(config["jwks_uri"], verify=fresh_lab.ca_file).json()["keys"]
    key = next(k for k in keys if k["kid"] == header["kid"])
    public_key = rsa.RSAPublicNumbers(_b64url_int(key["e"]), _b64url_int(key["n"])).public_key()
    signing_input, _, signature = token.rpartition(".")
    public_key.verify(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)), signing_input.encode(),
                      padding.PKCS1v15(), hashes.SHA256())

    # msal serves the second call from its cache: one token request in the counters.
    assert app.acquire_token_for_client(["https://graph.microsoft.com/.default"])["token_source"] == "cache"
    tokens = fresh_lab.counters()["tokens"]
    assert tokens == {"%s|%s|https://graph.microsoft.com" % (contoso["tenant_id"], contoso["automation_client_id"]): 1}


@pytest.mark.parametrize("mode", ["public_certificate", "thumbprint"])
def test_msal_certificate_assertion(fresh_lab, contoso, mode):
    with open(contoso["automation_certificate_path"]) as handle:
        pem = handle.read()
    if mode == "public_certificate":  # msal signs PS256 with x5t#S256
        credential = {"private_key": pem, "public_certificate": pem}
    else:  # msal signs RS256 with a padded x5t
        cert = x509.load_pem_x509_certificate(pem.encode())
        credential = {"private_key": pem, "thumbprint": cert.fingerprint(hashes.SHA1()).hex()}
    app = _msal_app(fresh_lab, contoso["automation_client_id"], credential, contoso["tenant_id"])
    result = app.acquire_token_for_client(["https://outlook.office365.com/.default"])
    assert "access_token" in result, result
    claims = claims_of(result["access_token"])
    assert claims["appidacr"] == "2"
    assert claims["aud"] == "https://outlook.office365.com"
    assert claims["roles"] == ["Exchange.ManageAsApp"]


def test_unregistered_certificate_is_aadsts700027(fresh_lab, contoso):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stranger")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    pem_cert = cert.public_bytes(serialization.Encoding.PEM).decode()
    app = _msal_app(fresh_lab, contoso["automation_client_id"], {"private_key": pem_key, "public_certificate": pem_cert}, contoso["tenant_id"])
    result = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])
    assert result["error"] == "invalid_client" and result["error_codes"] == [700027]
    assert "not registered on application" in result["error_description"]


def test_openid_configuration_by_domain_names_the_tenant_guid(fresh_lab, contoso):
    response = requests.get("%s/%s/v2.0/.well-known/openid-configuration" % (fresh_lab.login_url, contoso["domain"]), verify=fresh_lab.ca_file)
    config = response.json()
    tid = contoso["tenant_id"]
    assert config["issuer"] == "https://login.microsoftonline.com/%s/v2.0" % tid
    assert config["token_endpoint"] == "%s/%s/oauth2/v2.0/token" % (fresh_lab.login_url, tid)
    assert tid in config["authorization_endpoint"] and config["jwks_uri"].startswith(fresh_lab.login_url)

    missing = requests.get("%s/nosuch.onmicrosoft.com/v2.0/.well-known/openid-configuration" % fresh_lab.login_url, verify=fresh_lab.ca_file)
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_tenant" and missing.json()["error_codes"] == [90002]


def _form(contoso, **overrides):
    form = {"grant_type": "client_credentials", "client_id": contoso["automation_client_id"],
            "client_secret": contoso["automation_client_secret"], "scope": "https://graph.microsoft.com/.default"}
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


@pytest.mark.parametrize("tenant, overrides, status, error, code", [
    ("00000000-1111-2222-3333-444444444444", {}, 400, "invalid_request", 90002),
    (None, {"client_id": "11111111-2222-3333-4444-555555555555"}, 400, "unauthorized_client", 700016),
    (None, {"client_secret": "not-the-secret"}, 401, "invalid_client", 7000215),
    (None, {"scope": "https://nosuch.example.com/.default"}, 400, "invalid_resource", 500011),
    (None, {"scope": "https://graph.microsoft.com/User.Read"}, 400, "invalid_scope", 1002012),
    (None, {"client_secret": None}, 401, "invalid_client", 7000216),
    (None, {"grant_type": "password"}, 400, "unsupported_grant_type", 70003),
])
def test_token_errors_are_entra_shaped(fresh_lab, contoso, token_request, tenant, overrides, status, error, code):
    correlation = "c0ffee00-0000-4000-8000-000000000001"
    got, headers, body = token_request(tenant or contoso["tenant_id"], _form(contoso, **overrides), headers={"client-request-id": correlation})
    assert got == status
    assert body["error"] == error and body["error_codes"] == [code]
    assert body["error_description"].startswith("AADSTS%d: " % code)
    assert "\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: " % (body["trace_id"], correlation) in body["error_description"]
    assert body["correlation_id"] == correlation and body["timestamp"]
    assert headers["request-id"] == body["trace_id"]


def test_client_secret_basic_is_accepted(fresh_lab, contoso, token_request):
    basic = base64.b64encode(("%s:%s" % (contoso["automation_client_id"], contoso["automation_client_secret"])).encode()).decode()
    form = {"grant_type": "client_credentials", "scope": "https://graph.microsoft.com/.default"}
    status, _, body = token_request(contoso["tenant_id"], form, headers={"Authorization": "Basic " + basic})
    assert status == 200 and claims_of(body["access_token"])["appidacr"] == "1"


def test_msal_returns_aadsts_errors_as_a_dict(fresh_lab, contoso):
    app = _msal_app(fresh_lab, contoso["automation_client_id"], "wrong-secret", contoso["tenant_id"])
    result = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])
    assert result["error"] == "invalid_client" and 7000215 in result["error_codes"]


def test_expired_secret_is_aadsts7000222(graph, contoso, token_request):
    now = datetime.datetime.now(datetime.timezone.utc)
    added = graph.post("/applications/%s/addPassword" % contoso["automation_application_id"], {"passwordCredential": {
        "displayName": "old", "startDateTime": (now - datetime.timedelta(days=2)).isoformat(),
        "endDateTime": (now - datetime.timedelta(days=1)).isoformat()}}).json()
    status, _, body = token_request(contoso["tenant_id"], _form(contoso, client_secret=added["secretText"]))
    assert status == 401 and body["error_codes"] == [7000222]


def test_any_app_with_service_principal_and_secret_gets_a_token(graph, contoso, token_request):
    app = graph.create_app("CE Email")
    secret = graph.post("/applications/%s/addPassword" % app["id"], {"passwordCredential": {"displayName": "ce"}}).json()["secretText"]
    form = _form(contoso, client_id=app["appId"], client_secret=secret, scope="https://outlook.office365.com/.default")
    # No service principal yet: Entra refuses with AADSTS7000229.
    status, _, body = token_request(contoso["tenant_id"], form)
    assert status == 401 and body["error_codes"] == [7000229]
    service_principal = graph.create_sp(app["appId"])
    status, _, body = token_request(contoso["tenant_id"], form)
    assert status == 200, body
    claims = claims_of(body["access_token"])
    assert claims["oid"] == service_principal["id"] and claims["appid"] == app["appId"]
    assert "roles" not in claims  # nothing consented yet: Entra omits the claim
    # The appId form of the scope works too.
    status, _, body = token_request(contoso["tenant_id"], dict(form, scope="00000002-0000-0ff1-ce00-000000000000/.default"))
    assert status == 200 and claims_of(body["access_token"])["aud"] == "00000002-0000-0ff1-ce00-000000000000"


def test_tokens_are_per_directory(fresh_lab, token_request):
    fabrikam = fresh_lab.directory("fabrikam")
    claims = claims_of(fresh_lab.token("fabrikam"))
    assert claims["tid"] == fabrikam["tenant_id"] and claims["oid"] == fabrikam["automation_service_principal_id"]
    # contoso's client does not exist in fabrikam.
    contoso = fresh_lab.directory("contoso")
    status, _, body = token_request(fabrikam["tenant_id"], _form(contoso))
    assert status == 400 and body["error_codes"] == [700016]


def test_certificate_registered_through_graph_gets_tokens(graph, fresh_lab, contoso):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CE Email")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    der = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    app = graph.create_app("CE Email")
    graph.create_sp(app["appId"])
    patched = graph.patch("/applications/%s" % app["id"], {"keyCredentials": [{"type": "AsymmetricX509Cert", "usage": "Verify", "key": der}]})
    assert patched.status_code == 204, patched.text
    stored = graph.get("/applications/%s" % app["id"]).json()["keyCredentials"]
    assert len(stored) == 1 and stored[0]["key"] is None and stored[0]["type"] == "AsymmetricX509Cert"
    assert base64.b64decode(stored[0]["customKeyIdentifier"]) == cert.fingerprint(hashes.SHA1())
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    pem_cert = cert.public_bytes(serialization.Encoding.PEM).decode()
    client = _msal_app(fresh_lab, app["appId"], {"private_key": pem_key, "public_certificate": pem_cert}, contoso["tenant_id"])
    result = client.acquire_token_for_client(["https://outlook.office365.com/.default"])
    assert claims_of(result["access_token"])["appidacr"] == "2", json.dumps(result)
    # keyCredentials is replaced as a whole: an empty list removes the certificate.
    assert graph.patch("/applications/%s" % app["id"], {"keyCredentials": []}).status_code == 204
    client = _msal_app(fresh_lab, app["appId"], {"private_key": pem_key, "public_certificate": pem_cert}, contoso["tenant_id"])
    assert client.acquire_token_for_client(["https://outlook.office365.com/.default"])["error_codes"] == [700027]
