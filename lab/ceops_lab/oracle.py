"""CE's truth: would a CE tenant's mail servers log in to Exchange Online with what CE holds right now?

ce_login_oracle(lab, deployment, tenant) takes the tenant's APPLIED configuration (as of the last successful batch
update: what CE's mail servers run, not what the Portal API shows as configured) and, for each email connection,
does what CE does: asks Entra for a token with the connection's OAuth settings (client_id, the stored client secret,
the scopes, at the token endpoint's directory), then logs in to every mailbox of the tenant with XOAUTH2. Both steps
are the lab's own: EntraService.client_credentials (nothing counted, no token kept) and the IMAP emulator's login
decision (MailState.decide_oauth: roles from consent, an Exchange service principal whose ObjectId is the token's oid,
FullAccess for it on the mailbox), so the oracle and a real login cannot disagree. It also says whose secret CE holds
(matched against every password credential of every application of every directory) and never returns a secret.

The lab stands in for Microsoft's public cloud: a token endpoint on login.microsoftonline.com is the lab's Entra, and a
gateway receiving from outlook.office365.com is the lab's Exchange Online IMAP (as is the lab's own IMAP listener).

Cause codes (the first one of a connection is why it fails; README.md lists them):
  ce_version, no_connection, oauth_receive_off, gateway_not_imap, gateway_not_exchange_online, no_oauth_settings,
  secret_not_set, token_endpoint, app_not_found, no_service_principal, app_disabled, secret_of_another_app,
  secret_unknown, secret_expired, scope, token_refused, no_consent, mailbox_not_found, exchange_sp_wrong_object_id,
  exchange_sp_not_registered, exchange_sp_not_replicated, no_full_access, full_access_denied, token_invalid
"""

import datetime
import re
from urllib.parse import urlsplit

from . import exchange_state as exo
from .entra import AadstsError
from .imap_smtp_state import mail_state
from .provenance import credential_tag
from .state import parse_iso

ENTRA_HOSTS = ("login.microsoftonline.com",)
EXCHANGE_HOSTS = ("outlook.office365.com",)
_TOKEN_PATH = re.compile(r"^/([^/]+)/oauth2/v2\.0/token/?$")
# Entra's refusal (AADSTS code) -> cause.
_AADSTS_CAUSES = {90002: "token_endpoint", 700016: "app_not_found", 7000229: "no_service_principal", 7000112: "app_disabled",
                  7000222: "secret_expired", 1002012: "scope", 500011: "scope"}
# The IMAP emulator's refusal -> cause.
_LOGIN_CAUSES = {"missing_role": "no_consent", "mailbox_not_found": "mailbox_not_found",
                 "service_principal_not_registered": "exchange_sp_not_registered",
                 "service_principal_not_replicated": "exchange_sp_not_replicated", "no_full_access": "no_full_access",
                 "full_access_denied": "full_access_denied", "token_invalid": "token_invalid", "unknown_directory": "token_endpoint"}


class OracleError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def ce_login_oracle(lab, deployment_name, tenant_name):
    ce = lab.services["ce"]
    with ce.lock:
        deployment = ce.deployments.get(deployment_name)
        if deployment is None:
            raise OracleError(404, "no CE deployment %r (%s)" % (deployment_name, ", ".join(ce.deployments)))
        if deployment.tenant(tenant_name) is None:
            raise OracleError(404, "no tenant %r in CE deployment %s" % (tenant_name, deployment_name))
        version, capabilities = deployment.version, list(deployment.capabilities)
        applied_at = deployment.applied_at
    applied = ce.applied(deployment_name)
    config = applied["tenants"][tenant_name]
    result = {"deployment": deployment_name, "tenant": tenant_name, "version": version, "capabilities": capabilities,
              "applied_at": applied_at, "mailboxes": [m["address"] for m in config["mailboxes"]], "connections": []}
    can_oauth = "oauth_receive_imap" in capabilities
    for connection in sorted(config["email_connections"].values(), key=lambda c: c["_seq"]):
        result["connections"].append(_connection(lab, applied, config, connection, can_oauth, version))
    relevant = [c for c in result["connections"] if c["exchange_online"]]
    causes = []
    if not can_oauth:
        causes.append(_cause("ce_version", _version_text(version)))
    if not relevant:
        causes.append(_cause("no_connection", "no email connection of %s receives from Exchange Online (applied configuration)"
                             % tenant_name))
    for connection in relevant:
        causes.extend(c for c in connection["causes"] if c not in causes)
    result["causes"] = causes
    result["ok"] = can_oauth and bool(relevant) and all(c["ok"] for c in relevant)
    return result


def _cause(code, detail):
    return {"code": code, "detail": detail}


def _version_text(version):
    return "CE %s cannot receive with OAuth (capability oauth_receive_imap, CE 7.4.4 or later)" % version


def _is_exchange_online(lab, inbound):
    host = str(inbound.get("host") or "").lower()
    imap = urlsplit(lab.services["imap"].url or "") if "imap" in lab.services else None
    lab_imap = imap is not None and host == (imap.hostname or "") and inbound.get("port") == imap.port
    return host in EXCHANGE_HOSTS or lab_imap


def _connection(lab, applied, config, connection, can_oauth, version):
    gateway = applied["email_gateways"].get(connection["gateway_id"]) or {}
    inbound = dict(gateway.get("inbound") or {})
    view = {"id": connection["id"], "name": connection["name"], "use_oauth_receive": connection["use_oauth_receive"],
            "gateway": {"id": connection["gateway_id"], "name": gateway.get("name"), "inbound": inbound},
            "exchange_online": _is_exchange_online(lab, inbound), "oauth_settings": None, "directory": None, "app": None,
            "secret": None, "token": None, "exchange_service_principal": None, "mailboxes": [], "causes": []}
    causes = view["causes"]
    settings = config["oauth_settings"].get(connection.get("oauth_settings_id") or "")
    if settings is not None:
        view["oauth_settings"] = {k: settings[k] for k in ("id", "name", "client_id", "scopes", "token_endpoint_url")}
        view["oauth_settings"].update(client_secret_set=bool(settings.get("_secret")), client_secret_updated_at=settings.get("_secret_updated_at"))
    if not can_oauth:
        causes.append(_cause("ce_version", _version_text(version)))
    elif not connection["use_oauth_receive"]:
        causes.append(_cause("oauth_receive_off", "email connection %r does not use OAuth to receive" % connection["name"]))
    elif inbound.get("protocol") != "imap":
        causes.append(_cause("gateway_not_imap", "email gateway %r receives with %s; CE does not support OAuth for it"
                             % (gateway.get("name"), inbound.get("protocol"))))
    elif not view["exchange_online"]:
        causes.append(_cause("gateway_not_exchange_online", "email gateway %r receives from %s, not from Exchange Online"
                             % (gateway.get("name"), inbound.get("host"))))
    elif settings is None:
        causes.append(_cause("no_oauth_settings", "email connection %r has no OAuth settings" % connection["name"]))
    elif not settings.get("_secret"):
        causes.append(_cause("secret_not_set", "OAuth settings %r hold no client secret" % settings["name"]))
    else:
        _login(lab, view, settings, config)
    view["ok"] = not causes and bool(view["mailboxes"]) and all(m["ok"] for m in view["mailboxes"])
    return view


def _directory_of_token_endpoint(lab, url):
    """(directory, tenant segment) the token endpoint URL names, or raises ValueError with the reason."""
    parts = urlsplit(url)
    entra = urlsplit(lab.services["login"].url or "")
    if parts.scheme != "https" or (parts.hostname or "").lower() not in ENTRA_HOSTS + ((entra.hostname or "").lower(),) or (
            (parts.hostname or "").lower() == (entra.hostname or "").lower() and parts.port != entra.port):
        raise ValueError("token endpoint %s is not Entra ID's (https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token)" % url)
    match = _TOKEN_PATH.match(parts.path)
    if not match:
        raise ValueError("token endpoint %s is not a v2.0 token endpoint (/<tenant>/oauth2/v2.0/token)" % url)
    segment = match.group(1)
    with lab.world.lock:
        directory = lab.world.directory(segment)
        # Entra knows a directory by its tenant id or a domain, not by the lab's short names.
        if directory is None or segment.lower() not in (directory.tenant_id.lower(), directory.domain.lower()):
            raise ValueError("token endpoint %s names no directory (tenant %r)" % (url, segment))
    return directory, segment


def secret_owners(lab, secret):
    """Every password credential, in every directory, whose secret this is (never the secret itself)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    found = []
    with lab.world.lock:
        for directory in lab.world.directories.values():
            for app in directory.applications.values():
                credential, _ = directory.match_secret(app, secret)
                if credential is None:
                    continue
                found.append({"directory": directory.name, "tenant_id": directory.tenant_id, "app_id": app["appId"],
                              "app_display_name": app.get("displayName"), "application_object_id": app["id"],
                              "key_id": credential["keyId"], "display_name": credential.get("displayName"),
                              "end_date_time": credential["endDateTime"], "current": parse_iso(credential["endDateTime"]) > now,
                              "provenance": credential_tag(app, credential["keyId"])})
    return found


def _login(lab, view, settings, config):
    causes = view["causes"]
    try:
        directory, segment = _directory_of_token_endpoint(lab, settings["token_endpoint_url"])
    except ValueError as exc:
        causes.append(_cause("token_endpoint", str(exc)))
        return
    client_id = settings["client_id"]
    view["directory"] = {"name": directory.name, "tenant_id": directory.tenant_id}
    owners = secret_owners(lab, settings["_secret"])
    own = [o for o in owners if o["tenant_id"] == directory.tenant_id and o["app_id"].lower() == client_id.lower()]
    view["secret"] = {"owners": owners, "belongs_to_client_id": bool(own), "current": any(o["current"] for o in own),
                      "updated_at": settings.get("_secret_updated_at")}
    with lab.world.lock:
        app = directory.app_by_app_id(client_id)
        sp = directory.sp_by_app_id(client_id)
        if app is not None:
            view["app"] = {"app_id": app["appId"], "display_name": app.get("displayName"), "application_object_id": app["id"],
                           "service_principal_id": sp["id"] if sp else None}
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": settings["_secret"], "scope": " ".join(settings["scopes"])}
    try:
        token, claims, _, _ = lab.services["login"].client_credentials(segment, form)
    except AadstsError as exc:
        code = _AADSTS_CAUSES.get(exc.code, "token_refused")
        if exc.code == 7000215:
            code = "secret_of_another_app" if owners else "secret_unknown"
        detail = "AADSTS%d: %s" % (exc.code, exc.text)
        if code == "secret_of_another_app":
            detail = "the secret CE holds is %s of app %s (%s) in %s, not a secret of client_id %s" % (
                ", ".join("%r (key %s)" % (o["display_name"], o["key_id"]) for o in owners), owners[0]["app_id"],
                owners[0]["app_display_name"], owners[0]["directory"], client_id)
        view["token"] = {"ok": False, "error": detail}
        causes.append(_cause(code, detail))
        return
    view["token"] = {"ok": True, "aud": claims["aud"], "oid": claims["oid"], "appid": claims["appid"], "roles": list(claims.get("roles") or [])}
    view["exchange_service_principal"] = _exchange_service_principal(lab, directory, claims)
    mail = mail_state(lab)
    for address in (m["address"] for m in config["mailboxes"]):
        decision = mail.decide_oauth("imap", address, token)
        entry = {"address": address, "ok": decision.ok, "cause": None, "detail": decision.detail}
        if not decision.ok:
            entry["cause"] = _login_cause(decision, view)
            if entry["cause"] == "token_invalid" and "audience" in decision.detail:
                entry["cause"] = "scope"
            causes.append(_cause(entry["cause"], _mailbox_detail(entry["cause"], decision.detail, view)))
        view["mailboxes"].append(entry)
    # One cause per code: the first mailbox's words.
    unique = []
    for cause in causes:
        if cause["code"] not in [c["code"] for c in unique]:
            unique.append(cause)
    causes[:] = unique


def _exchange_service_principal(lab, directory, claims):
    """The Exchange service principal(s) registered for the token's app: which ObjectId, and whose id that is."""
    with lab.world.lock:
        org = exo.organization(directory)
        registered = [sp for sp in org.service_principals if sp["AppId"].lower() == str(claims["appid"]).lower()]
        app = directory.app_by_app_id(claims["appid"])
        views = []
        for sp in registered:
            object_id = sp["ObjectId"].lower()
            if object_id == str(claims["oid"]).lower():
                whose = "service_principal"
            elif app is not None and object_id == app["id"].lower():
                whose = "application"
            else:
                whose = "other"
            views.append({"identity": sp["Identity"], "object_id": sp["ObjectId"], "object_id_is": whose})
    return views


def _login_cause(decision, view):
    if decision.reason == "service_principal_not_registered" and view["exchange_service_principal"]:
        return "exchange_sp_wrong_object_id"
    return _LOGIN_CAUSES.get(decision.reason, decision.reason)


def _mailbox_detail(code, detail, view):
    if code == "exchange_sp_wrong_object_id":
        wrong = view["exchange_service_principal"][0]
        whose = "the application's object id" if wrong["object_id_is"] == "application" else "not the service principal's id"
        return "Exchange service principal %s is registered with ObjectId %s (%s); the token's oid is the service principal %s" % (
            wrong["identity"], wrong["object_id"], whose, view["token"]["oid"])
    return detail
