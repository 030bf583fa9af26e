"""LabAdmin: a small client of a running lab's admin API, for tests, the CLI and scripts.

It uses urllib with the lab's own CA (not requests), so the lab depends on nothing but the
standard library and `cryptography`.
"""

import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request


class LabError(RuntimeError):
    """The lab is not running, or it answered an admin request with an error."""


class LabNotRunning(LabError):
    pass


def default_state_dir():
    return os.path.abspath(os.environ.get("CEOPS_LAB_DIR") or ".lab")


class LabAdmin:
    def __init__(self, state_dir=None, timeout=10):
        self.state_dir = os.path.abspath(str(state_dir or default_state_dir()))
        self.timeout = timeout
        self._ssl = None
        self._ssl_ca = None

    # ----- files the lab writes --------------------------------------------------------------------
    def _read_json(self, name):
        path = os.path.join(self.state_dir, name)
        try:
            with open(path, encoding="utf-8") as handle:
                return json.load(handle)
        except FileNotFoundError:
            raise LabNotRunning("lab is not running in %s" % self.state_dir) from None

    @property
    def info(self):
        """lab.json: pid, ca_file, log_file, services -> {url}."""
        return self._read_json("lab.json")

    @property
    def vars(self):
        """The Ansible variables of lab-vars.yml (lab_ca_path, lab_authority_host, ...)."""
        return self._read_json("lab-vars.json")

    @property
    def ca_file(self):
        return self.info["ca_file"]

    def url(self, service):
        return self.info["services"][service]["url"]

    @property
    def login_url(self):
        return self.url("login")

    @property
    def graph_url(self):
        return self.url("graph")

    @property
    def admin_url(self):
        return self.url("admin")

    def ssl_context(self):
        ca_file = self.ca_file
        if self._ssl is None or self._ssl_ca != ca_file:
            self._ssl = ssl.create_default_context(cafile=ca_file)
            self._ssl_ca = ca_file
        return self._ssl

    # ----- raw calls ----------------------------------------------------------------------------------
    def request(self, method, url, body=None, headers=None, form=None):
        """(status, headers, parsed JSON or text) of a call to any lab URL, trusting only the lab CA."""
        data = None
        headers = dict(headers or {})
        if form is not None:
            data = urllib.parse.urlencode(form).encode("utf-8")
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif body is not None:
            data = json.dumps(body).encode("utf-8")
            headers.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self.ssl_context()) as response:
                status, response_headers, raw = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            status, response_headers, raw = exc.code, dict(exc.headers), exc.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            raise LabNotRunning("lab is not answering in %s (%s)" % (self.state_dir, getattr(exc, "reason", exc))) from None
        text = raw.decode("utf-8") if raw else ""
        try:
            payload = json.loads(text) if text else None
        except ValueError:
            payload = text
        return status, response_headers, payload

    def _call(self, method, path, body=None):
        status, _, payload = self.request(method, self.admin_url + path, body=body)
        if status >= 400:
            message = payload.get("error") if isinstance(payload, dict) else payload
            raise LabError("admin API %s %s: %s %s" % (method, path, status, message))
        return payload

    # ----- the admin API ------------------------------------------------------------------------------
    def health(self):
        return self._call("GET", "/health")

    def is_running(self):
        try:
            return self.health().get("pid") == self.info.get("pid")
        except LabError:
            return False

    def state(self, service=None):
        return self._call("GET", "/state/%s" % service if service else "/state")

    def counters(self):
        return self._call("GET", "/counters")

    def reset_counters(self):
        return self._call("POST", "/counters/reset")

    def reset(self):
        """State back to the seed, counters and faults cleared."""
        return self._call("POST", "/reset")

    def faults(self):
        return self._call("GET", "/faults")

    def set_faults(self, service="*", **options):
        """Merge fault options into a service's settings ("login", "graph" or "*"); see faults.OPTIONS."""
        return self._call("POST", "/faults", dict(options, service=service))

    def clear_faults(self, service=None):
        query = "?service=%s" % urllib.parse.quote(service) if service else ""
        return self._call("DELETE", "/faults" + query)

    def fail_next(self, service, status, method="*", path_regex="", count=1, body=None, body_regex=None, **extra):
        """Answer the next `count` matching requests with `status` (and `body`, JSON) instead of the service; pass
        retry_after=N or None. `body_regex` also matches the raw request body, e.g. an Exchange InvokeCommand of one
        cmdlet with one Identity. Any status may be given, 200 included: a lookup then returns the object in `body`.
        body_base64=<base64> (with content_type=...) answers those bytes as they are instead, e.g. a body of NUL bytes."""
        rule = dict(extra, method=method, path_regex=path_regex, status=status, count=count)
        if body is not None:
            rule["body"] = body
        if body_regex is not None:
            rule["body_regex"] = body_regex
        return self.set_faults(service, fail_next=[rule])

    def kill_client(self, pid, endpoint_regex, after=1, service="*", signal="KILL"):
        """Signal process `pid` and all its descendants once the `after`-th request whose counter endpoint matches
        `endpoint_regex` ("POST /v1.0/servicePrincipals$", "InvokeCommand Add-MailboxPermission") has been
        answered; signal is KILL, TERM or INT. faults()[service]["kill_client"] shows which rules fired."""
        rule = {"pid": int(pid), "endpoint_regex": endpoint_regex, "after": int(after), "signal": signal}
        return self.set_faults(service, kill_client=[rule])

    def barrier(self, endpoint_regex, parties=2, timeout=60, service="*"):
        """Hold the first `parties` requests whose counter endpoint matches until all have arrived (or `timeout`
        seconds passed): two clients then do that step at the same moment. faults()[service]["barrier"] says
        whether it was met (True), timed out (False) or still waits for parties (None)."""
        rule = {"endpoint_regex": endpoint_regex, "parties": int(parties), "timeout": timeout}
        return self.set_faults(service, barrier=[rule])

    # ----- the write journal, provenance and CE's truth (journal.py, provenance.py, foreign.py, oracle.py) ----------------
    def journal(self, since=0, service=None):
        """Write requests the lab answered, oldest first: [{seq, time, service, directory, deployment, ce_tenant, method,
        endpoint, status, faulted, request_id, objects: [{kind, id, provenance, action, fields?}]}] after `since`."""
        query = {"since": int(since)}
        if service:
            query["service"] = service
        return self._call("GET", "/journal?" + urllib.parse.urlencode(query))["entries"]

    def reset_journal(self):
        """Empty the journal (reset_counters() and reset() empty it too)."""
        return self._call("POST", "/journal/reset")

    def provenance(self):
        """Every object and sub-object with a provenance tag: [{service, scope, kind, id, provenance}]."""
        return self._call("GET", "/provenance")["value"]

    def foreign_state(self):
        """Everything tagged "foreign" as it is now, {service: {scope: {kind: {id: view}}}}: equal before and after a
        run when nothing foreign was touched."""
        return self._call("GET", "/foreign-state")

    def foreign_writes(self, since=0):
        """Journal entries that addressed or changed a foreign-tagged object."""
        return [entry for entry in self.journal(since) if any(o["provenance"] == "foreign" for o in entry["objects"])]

    def ce_login_oracle(self, deployment, tenant):
        """Whether CE's mail servers would log in now, per email connection and mailbox, with the tenant's applied
        configuration, and why not (oracle.py): {ok, causes, connections: [{oauth_settings, directory, app, secret
        (whose secret CE holds; never the secret), token, exchange_service_principal, mailboxes, causes, ok}]}."""
        return self._call("GET", "/oracle/ce-login/%s/%s" % (urllib.parse.quote(deployment), urllib.parse.quote(tenant)))

    def directories(self):
        return self._call("GET", "/directories")["value"]

    def directory(self, name_or_tenant_id):
        """A directory's settings and ids, merged with its lab-vars entry (client id, secret, cert)."""
        details = self._call("GET", "/directories/%s" % urllib.parse.quote(name_or_tenant_id))
        details.update(self.vars["lab_directories"].get(details["name"], {}))
        return details

    def directory_state(self, name_or_tenant_id):
        return self._call("GET", "/directories/%s/state" % urllib.parse.quote(name_or_tenant_id))

    def set_policy(self, name_or_tenant_id, **policy):
        """E.g. set_policy("contoso", max_password_lifetime_days=90); None lifts the limit."""
        return self._call("POST", "/directories/%s/policy" % urllib.parse.quote(name_or_tenant_id), policy)

    def age_secrets(self, directory, app_id, days):
        """Time passes for one app's client secrets: their start and end move `days` into the past (admin_api._age_secrets).
        Returns the app's password credentials after the move (never a secret)."""
        return self._call("POST", "/directories/%s/secrets-age" % urllib.parse.quote(directory), {"app_id": app_id, "days": days})

    def set_consistency_window(self, seconds, directory=None):
        """Per directory, or for every service of every directory when directory is None."""
        if directory is None:
            return self.set_faults("*", consistency_window=seconds)
        return self._call("POST", "/directories/%s/settings" % urllib.parse.quote(directory), {"consistency_window": seconds})

    def grant_app_roles(self, directory, *roles, resource="graph", principal="automation"):
        """Assign app roles (by value) to a service principal; returns its roles on that resource."""
        body = {"principal": principal, "resource": resource, "grant": list(roles)}
        return self._call("POST", "/directories/%s/app-roles" % urllib.parse.quote(directory), body)["roles"]

    def revoke_app_roles(self, directory, *roles, resource="graph", principal="automation"):
        body = {"principal": principal, "resource": resource, "revoke": list(roles)}
        return self._call("POST", "/directories/%s/app-roles" % urllib.parse.quote(directory), body)["roles"]

    def grant_directory_roles(self, directory, *roles, principal="automation"):
        body = {"principal": principal, "grant": list(roles)}
        return self._call("POST", "/directories/%s/directory-roles" % urllib.parse.quote(directory), body)["directory_roles"]

    def revoke_directory_roles(self, directory, *roles, principal="automation"):
        body = {"principal": principal, "revoke": list(roles)}
        return self._call("POST", "/directories/%s/directory-roles" % urllib.parse.quote(directory), body)["directory_roles"]

    def mint_token(self, directory, resource="https://graph.microsoft.com", client_id=None, roles=None, lifetime=None, claims=None):
        """A lab-signed access token without a token request (not counted as an issued token)."""
        body = {"tenant": directory, "resource": resource}
        for name, value in (("client_id", client_id), ("roles", roles), ("lifetime", lifetime), ("claims", claims)):
            if value is not None:
                body[name] = value
        return self._call("POST", "/tokens", body)["access_token"]

    # ----- conveniences for tests -----------------------------------------------------------------------
    def token(self, directory, resource="https://graph.microsoft.com", client_id=None, client_secret=None):
        """A real client-credentials token from the lab's token endpoint (counted); raises LabError on an error."""
        details = self.directory(directory)
        form = {"grant_type": "client_credentials", "client_id": client_id or details["automation_client_id"],
                "client_secret": client_secret or details["automation_client_secret"], "scope": resource.rstrip("/") + "/.default"}
        status, _, payload = self.request("POST", "%s/%s/oauth2/v2.0/token" % (self.login_url, details["tenant_id"]), form=form)
        if status != 200:
            raise LabError("token request failed: %s %s" % (status, payload))
        return payload["access_token"]

    def count(self, service, method=None, path=None, kind=None):
        """Requests counted for a service, optionally only one method, endpoint template and kind
        ("reads" or "writes"): count("graph", "POST", "/v1.0/applications/{id}/addPassword")."""
        bucket = self.counters()["services"].get(service, {})
        total = 0
        for which in (kind,) if kind else ("reads", "writes"):
            for endpoint, number in bucket.get(which, {}).items():
                if method and endpoint.split(" ", 1)[0] != method.upper():
                    continue
                if path and endpoint.split(" ", 1)[1] != path:
                    continue
                total += number
        return total

    def writes(self, service):
        return self.count(service, kind="writes")

    def reads(self, service):
        return self.count(service, kind="reads")

    # ----- CE Portal emulator (ce_portal.py) ---------------------------------------------------------------
    def ce_state(self, deployment=None):
        """One deployment's state (settings, configured and applied configuration, pending changes,
        updates; client secrets only as client_secret_sha256_8), or /state/ce for all of them."""
        if deployment is None:
            return self.state("ce")
        return self._call("GET", "/services/ce/deployments/%s" % urllib.parse.quote(deployment))

    def ce_settings(self, deployment, **settings):
        """Merge per-deployment settings and return them all: update_seconds, fail_next_update
        ("message" fails the next batch update), update_failure_rate, page_size, version, capabilities."""
        path = "/services/ce/deployments/%s/settings" % urllib.parse.quote(deployment)
        return self._call("POST", path, settings) if settings else self._call("GET", path)

    def ce_counters(self, deployment=None):
        """CE Portal requests per deployment ({reads, writes, faults, requests, batch_updates,
        endpoints, tenants}); one deployment's entry when named."""
        view = self._call("GET", "/services/ce/counters")["deployments"]
        return view[deployment] if deployment else view

    # ----- Exchange Online emulators (exchange.py, winrm.py) -------------------------------------------------
    def exchange_state(self, directory=None):
        """A directory's Exchange organization (mailboxes with every ACE incl. inherited/deny, Exchange
        service principals with their SIDs, settings), or /state/exchange for all directories."""
        if directory is None:
            return self.state("exchange")
        return self._call("GET", "/services/exchange/directories/%s" % urllib.parse.quote(directory))

    def exchange_add_permission(self, directory, mailbox, user, access_rights=("FullAccess",), deny=False, inherited=False,
                                inheritance_type="All"):
        """Put an ACE on a mailbox bypassing the cmdlet rules (e.g. an inherited or a Deny FullAccess
        entry for a service principal); `user` is an Exchange principal identity or a 'DOMAIN\\name' label."""
        body = {"mailbox": mailbox, "user": user, "access_rights": list(access_rights), "deny": deny, "inherited": inherited,
                "inheritance_type": inheritance_type}
        return self._call("POST", "/services/exchange/directories/%s/mailbox-permissions" % urllib.parse.quote(directory), body)

    def exchange_register_service_principal(self, directory, app_id, object_id, display_name=None):
        """Create an Exchange service principal without Exchange's Entra check (any ids)."""
        body = {"app_id": app_id, "object_id": object_id, "display_name": display_name}
        return self._call("POST", "/services/exchange/directories/%s/service-principals" % urllib.parse.quote(directory), body)

    def exchange_add_mailboxes(self, directory, addresses):
        """Create user mailboxes in a directory (for scale tests); existing addresses are left alone."""
        body = {"addresses": list(addresses)}
        return self._call("POST", "/services/exchange/directories/%s/mailboxes" % urllib.parse.quote(directory), body)

    def exchange_settings(self, directory, **settings):
        """validate_service_principals=False makes New-ServicePrincipal accept any AppId/ObjectId pair."""
        return self._call("POST", "/services/exchange/directories/%s/settings" % urllib.parse.quote(directory), settings)

    # ----- IMAP / SMTP emulators (imap.py, smtp.py, imap_smtp_state.py) ------------------------------------
    def mail_endpoint(self, service):
        """(host, port) of the lab's "imap" (implicit TLS) or "smtp" (STARTTLS) listener."""
        address = self.vars["lab_%s" % service]
        return address["host"], address["port"]

    def mailbox_password(self, address):
        """The lab-only basic-auth password of a mailbox (SMTP AUTH LOGIN)."""
        return self.vars["lab_mailbox_passwords"][address.lower()]

    def mail_logins(self, service=None, mailbox=None, outcome=None):
        """The login log, oldest first: [{time, service, mechanism, mailbox, outcome ("ok"/"refused"), reason,
        detail, tenant_id, app_id, service_principal_id, client}] of "imap", "smtp" or both."""
        entries = []
        for name in (service,) if service else ("imap", "smtp"):
            entries += self._call("GET", "/services/%s/logins" % name)["value"]
        return sorted((e for e in entries if (mailbox is None or (e["mailbox"] or "").lower() == mailbox.lower())
                       and (outcome is None or e["outcome"] == outcome)), key=lambda e: e["time"])

    def mail_login_stats(self, service):
        """Login counts of "imap" or "smtp": ok, refused, reasons, mechanisms, directories, mailboxes."""
        return self._call("GET", "/services/%s/stats" % service)

    def smtp_messages(self):
        """Messages the SMTP emulator accepted: [{mailbox, mail_from, rcpt_to, subject, from, to, message_id, ...}]."""
        return self._call("GET", "/services/smtp/messages")["value"]

    def smtp_settings(self, directory, **settings):
        """A directory's SMTP settings; smtp_basic_auth_enabled=False makes AUTH LOGIN answer 535 5.7.139."""
        path = "/services/smtp/directories/%s/settings" % urllib.parse.quote(directory)
        return self._call("POST", path, settings) if settings else self._call("GET", path)
