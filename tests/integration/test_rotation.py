# -*- coding: utf-8 -*-
"""playbooks/rotate_secret.yml and playbooks/secret_report.yml as ops run them: ansible-playbook over the lab inventory.

The fleet is converged in-process first (the modules site.yml runs, a few seconds instead of a site.yml run), so the
old secrets are known. The new ones exist only in the playbook's memory: a test-only callback plugin captures them
at the end of the run into a 0600 file of the test's temporary directory, so that the test can log in with whatever secret CE
has applied, find it by the fingerprint the lab shows (first 8 hex digits of its SHA-256), and prove old ones refused.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from ceops_lab.admin import LabError
from playbook_output import recap, summary

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
SECRET_NAME = "CE mailbox access"


def secret_name(tenant):
    """Each CE tenant's own client secret in its directory's app, as the role names it."""
    return "%s (%s)" % (SECRET_NAME, tenant)
SETTINGS_NAME = "Exchange Online OAuth"
EXCHANGE = "https://outlook.office365.com"


def inventory_tenants():
    with open(os.path.join(REPO, "inventories", "lab", "hosts.yml")) as handle:
        inventory = yaml.safe_load(handle)
    tenants = {}
    for group, body in inventory["all"]["children"]["ce_tenants"]["children"].items():
        for host, host_vars in body["hosts"].items():
            tenants[host] = dict(host_vars, deployment=group.replace("ce_deployment_", ""))
    return tenants


TENANTS = inventory_tenants()


def fingerprint(secret):
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:8]


def outcome(result):
    """{tenant: "ok" or "FAILED"} from the summary at the end of the run."""
    return dict((host, lines[0].split()[1]) for host, lines in summary(result.stdout).items())


def said(result, tenant):
    """Everything the summary says of one CE tenant, as one line."""
    return " ".join(summary(result.stdout)[tenant])


# -- the converged fleet, in-process -----------------------------------------------------------------
class Fleet:
    """CE's app per lab directory with Exchange access, and CE configured and applied, as site.yml leaves them."""

    def __init__(self, lab, run_module, tmp_path):
        self.lab = lab
        self.run_module = run_module
        self.tmp_path = tmp_path
        self.apps = {}  # directory name -> {app_id, tenant_id, service_principal_id}
        self.secrets = {}  # CE tenant -> [(key_id, secret)] of its own secret, in order of creation

    def directory_name(self, tenant_id):
        return next(n for n, d in self.lab.vars["lab_directories"].items() if d["tenant_id"] == tenant_id)

    def tenants_of(self, name):
        tenant_id = self.lab.vars["lab_directories"][name]["tenant_id"]
        return sorted(t for t, v in TENANTS.items() if v["ms_tenant_id"] == tenant_id)

    def ms_auth(self, name, **extra):
        d = self.lab.vars["lab_directories"][name]
        args = dict(tenant_id=d["tenant_id"], client_id=d["automation_client_id"], authority_host=self.lab.vars["lab_authority_host"],
                    graph_endpoint=self.lab.vars["lab_graph_endpoint"], exchange_endpoint=self.lab.vars["lab_exchange_endpoint"],
                    ca_path=self.lab.vars["lab_ca_path"])
        if name == "northwind":  # its automation identity logs in with a certificate, as in the inventory
            args["client_certificate_path"] = d["automation_certificate_path"]
        else:
            args["client_secret"] = d["automation_client_secret"]
        args.update(extra)
        return args

    def ce_auth(self, deployment, **extra):
        d = self.lab.vars["lab_ce_deployments"][deployment]
        return dict(ce_url=d["url"], ce_token=d["admin_token"], ca_path=self.lab.vars["lab_ca_path"], **extra)

    def call(self, module, args):
        result = self.run_module(module, args)
        assert result.get("failed") is not True, "%s: %s" % (module, result.get("msg"))
        return result

    def register_apps(self, names, lifetime_days=None):
        for name in names:
            sends = any(TENANTS[t].get("ce_send_with_oauth") for t in self.tenants_of(name))
            secrets = [{"name": secret_name(t)} for t in self.tenants_of(name)]
            if lifetime_days and name in lifetime_days:
                # A renewal window shorter than the lifetime: an equal or longer one is refused (every run would renew).
                secrets = [dict(secret, lifetime_days=lifetime_days[name], renew_before_days=min(30, lifetime_days[name] - 1))
                           for secret in secrets]
            app = self.call("azuread_app", self.ms_auth(name, display_name="CE Email", unique_name="ce-email", app_secrets=secrets,
                                                        exchange_permissions=["IMAP.AccessAsApp", "POP.AccessAsApp"] + (["SMTP.SendAsApp"] if sends else [])))
            self.apps[name] = {"app_id": app["app_id"], "tenant_id": app["tenant_id"], "service_principal_id": app["service_principal_id"]}
            for tenant in self.tenants_of(name):
                own = app["app_secrets"][secret_name(tenant)]
                self.secrets[tenant] = [(own["key_id"], own["client_secret"])]

    def grant(self, name, skip=()):
        app = self.apps[name]
        self.call("exo_service_principal", self.ms_auth(name, app_id=app["app_id"], object_id=app["service_principal_id"]))
        mailboxes = sorted(set(m for t in self.tenants_of(name) for m in TENANTS[t]["ce_mailboxes"]) - set(skip))
        self.call("exo_mailbox_permission", self.ms_auth(name, user=app["service_principal_id"], mailboxes=mailboxes))

    def configure_ce(self, names):
        tenants = [t for n in names for t in self.tenants_of(n)]
        deployments = sorted(set(TENANTS[t]["deployment"] for t in tenants))
        for deployment in deployments:
            self.call("ce_email_gateway", self.ce_auth(deployment, name="Exchange Online"))
        for tenant in tenants:
            name = self.directory_name(TENANTS[tenant]["ms_tenant_id"])
            ce = self.ce_auth(TENANTS[tenant]["deployment"], ce_tenant=tenant)
            self.call("ce_oauth_settings", dict(ce, name=SETTINGS_NAME, client_id=self.apps[name]["app_id"], client_secret=self.secrets[tenant][0][1],
                                                tenant_id=self.apps[name]["tenant_id"], authority_host=self.lab.vars["lab_authority_host"]))
            self.call("ce_email_connection", dict(ce, name="Exchange Online", gateway="Exchange Online", oauth_settings=SETTINGS_NAME,
                                                  use_oauth_receive=True, use_oauth_send=bool(TENANTS[tenant].get("ce_send_with_oauth"))))
        for deployment in deployments:
            self.call("ce_batch_update", self.ce_auth(deployment, poll_interval=0.2))

    def converge(self, names, skip_mailboxes=()):
        self.register_apps(names)
        for name in names:
            self.grant(name, skip=skip_mailboxes)
        self.configure_ce(names)

    # -- running the playbooks ---------------------------------------------------------------------
    def playbook(self, name, *args, inventories=(), env=None):
        env = dict(os.environ, CEOPS_LAB_DIR=self.lab.state_dir, CEOPS_TOKEN_CACHE_DIR=str(self.tmp_path / "tokens"),
                   ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="default", **(env or {}))
        command = [os.path.join(BIN, "ansible-playbook"), "-i", "inventories/lab"]
        for inventory in inventories:
            command += ["-i", str(inventory)]
        command += [name, "-f", "6", "-e", "ce_email_oauth_batch_update_poll_interval=0.3", "-e", "rotate_secret_new_secret_delay=1"]
        return subprocess.run(command + list(args), cwd=REPO, env=env, capture_output=True, text=True, timeout=600)

    def rotate(self, *args, **kwargs):
        """rotate_secret.yml with the test-only capture of the new secrets; records them per CE tenant."""
        captured = self.tmp_path / "new-secrets.json"
        plugins = self.tmp_path / "callback_plugins"
        plugins.mkdir(exist_ok=True)
        (plugins / "capture_rotation.py").write_text(CAPTURE)
        result = self.playbook("playbooks/rotate_secret.yml", *args, env={
            "ANSIBLE_CALLBACK_PLUGINS": str(plugins), "ANSIBLE_CALLBACKS_ENABLED": "capture_rotation",
            "CAPTURE_ROTATION_FILE": str(captured)}, **kwargs)
        if captured.exists():
            for tenant, new in json.loads(captured.read_text()).items():
                if (new["key_id"], new["client_secret"]) not in self.secrets[tenant]:
                    self.secrets[tenant].append((new["key_id"], new["client_secret"]))
            captured.unlink()
        return result

    # -- what the lab holds ------------------------------------------------------------------------
    def entra_secrets(self, tenant):
        """Key ids of the CE tenant's own secrets in its directory's app, as Graph holds them."""
        name = self.directory_name(TENANTS[tenant]["ms_tenant_id"])
        apps = self.lab.state("graph")["directories"][name]["applications"]
        app = next(a for a in apps if a.get("uniqueName") == "ce-email")
        return sorted(c["keyId"] for c in app["passwordCredentials"] if c["displayName"] == secret_name(tenant))

    def ce_settings(self, tenant, which="applied"):
        state = self.lab.ce_state(TENANTS[tenant]["deployment"])
        return next(s for s in state[which]["tenants"][tenant]["oauth_settings"] if s["name"] == SETTINGS_NAME)

    def secret_by_fingerprint(self, tenant, value):
        found = [secret for dummy, secret in self.secrets[tenant] if fingerprint(secret) == value]
        assert found, "CE holds a secret of %s that no run made for it (fingerprint %s)" % (tenant, value)
        return found[0]

    def token_error(self, name, secret):
        """None when the secret gets a token for Exchange Online, else Entra's error text."""
        try:
            self.lab.token(name, resource=EXCHANGE, client_id=self.apps[name]["app_id"], client_secret=secret)
            return None
        except LabError as exc:
            return str(exc)

    def login(self, tenant, secret, mailboxes=None):
        """A real token and IMAP (and SMTP) login per mailbox with this secret, as CE would; the failed mailboxes."""
        name = self.directory_name(TENANTS[tenant]["ms_tenant_id"])
        imap_host, imap_port = self.lab.mail_endpoint("imap")
        smtp_host, smtp_port = self.lab.mail_endpoint("smtp")
        result = self.run_module("mailbox_oauth_check", dict(
            tenant_id=self.apps[name]["tenant_id"], client_id=self.apps[name]["app_id"], client_secret=secret,
            authority_host=self.lab.vars["lab_authority_host"], ca_path=self.lab.vars["lab_ca_path"],
            mailboxes=mailboxes or TENANTS[tenant]["ce_mailboxes"], imap_host=imap_host, imap_port=imap_port,
            smtp=bool(TENANTS[tenant].get("ce_send_with_oauth")), smtp_host=smtp_host, smtp_port=smtp_port,
            fresh_token=True, fail_on_error=False))
        assert result.get("failed") is not True, result.get("msg")
        return result["failed_mailboxes"]

    def assert_applied_secrets_work(self, tenants, granted=None):
        """The heart of it: whatever secret CE has applied for each tenant is one we know, gets a token and logs in."""
        for tenant in tenants:
            name = self.directory_name(TENANTS[tenant]["ms_tenant_id"])
            applied = self.ce_settings(tenant)
            secret = self.secret_by_fingerprint(tenant, applied["client_secret_sha256_8"])
            assert self.token_error(name, secret) is None, tenant
            mailboxes = (granted or {}).get(tenant)
            assert self.login(tenant, secret, mailboxes) == [], tenant


# Test only: a callback plugin that takes the new secrets from the run's memory (the fact the Azure AD part hands each CE
# tenant, which holds the value only until the secret's proof is done) at the start of every play, and at the end of the
# run (failed or not) writes the last seen into a 0600 file of the test's temporary directory. Never do this in real use.
CAPTURE = """
import json
import os

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "capture_rotation"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self.found = {}

    def v2_playbook_on_play_start(self, play):
        for host, facts in play.get_variable_manager()._nonpersistent_fact_cache.items():
            app = facts.get("azuread_app_registration_app") or {}
            if app.get("client_secret") and app.get("client_secret_key_id"):
                self.found[host] = {"key_id": str(app["client_secret_key_id"]), "client_secret": str(app["client_secret"])}

    def v2_playbook_on_stats(self, stats):
        descriptor = os.open(os.environ["CAPTURE_ROTATION_FILE"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(self.found, handle)
"""


@pytest.fixture
def fleet(fresh_lab, run_module, tmp_path):
    return Fleet(fresh_lab, run_module, tmp_path)


def all_known_secrets(fleet):
    return [secret for pairs in fleet.secrets.values() for dummy, secret in pairs]


# -- the tests ---------------------------------------------------------------------------------------
def test_rotation_on_a_converged_fleet_leaves_each_ce_tenant_one_new_secret_of_its_own_that_ce_runs_on(fleet):
    lab = fleet.lab
    names = ["contoso", "fabrikam", "northwind"]
    fleet.converge(names)
    before = dict((tenant, fleet.secrets[tenant][0]) for tenant in TENANTS)
    updated_before = dict((t, fleet.ce_settings(t)["client_secret_updated_at"]) for t in TENANTS)

    # --check: the plan, and not one write anywhere.
    lab.reset_counters()
    checked = fleet.playbook("playbooks/rotate_secret.yml", "--check", "-e", "rotate_secret_force=true")
    assert checked.returncode == 0, checked.stdout[-3000:]
    assert lab.writes("graph") == 0 and lab.counters()["services"].get("ce", {}).get("totals", {}).get("writes", 0) == 0
    assert all("new client secret (to be made) for this CE tenant (rotation asked for)" in said(checked, t) for t in TENANTS)
    updates_before = dict((d, lab.ce_counters(d)["batch_updates"]) for d in ("emea", "us"))

    logins_from = len(lab.mail_logins())
    result = fleet.rotate("-e", "rotate_secret_force=true")
    assert result.returncode == 0, result.stdout[-4000:]
    assert all(host["failed"] == 0 for host in recap(result.stdout).values())
    assert outcome(result) == dict((t, "ok") for t in TENANTS)

    for tenant in TENANTS:
        name = fleet.directory_name(TENANTS[tenant]["ms_tenant_id"])
        old_key, old_secret = before[tenant]
        new_key, new_secret = fleet.secrets[tenant][-1]
        # Exactly one secret of the CE tenant's own: the new one.
        assert new_key != old_key and fleet.entra_secrets(tenant) == [new_key], tenant
        # CE has it applied (the lab's fingerprint of the applied secret), set in this run.
        applied = fleet.ce_settings(tenant)
        assert applied["client_secret_sha256_8"] == fingerprint(new_secret) != fingerprint(old_secret), tenant
        assert applied["client_secret_updated_at"] > updated_before[tenant]
        # The old secret is refused by the token endpoint; the new one gets in.
        assert "AADSTS7000215" in fleet.token_error(name, old_secret)
        assert fleet.token_error(name, new_secret) is None
        assert "new client secret %s for this CE tenant (rotation asked for); CE holds it" % new_key in said(result, tenant)
        assert "retired secret(s) %s" % old_key in said(result, tenant)
    # No two CE tenants hold the same secret.
    assert len(set(fleet.secrets[t][-1][1] for t in TENANTS)) == len(TENANTS)
    # One batch update per CE deployment.
    assert dict((d, lab.ce_counters(d)["batch_updates"] - updates_before[d]) for d in ("emea", "us")) == {"emea": 1, "us": 1}
    # Every mailbox of the fleet was logged in to during the run (before CE and after), and none was refused.
    logins = lab.mail_logins()[logins_from:]
    assert not [e for e in logins if e["outcome"] != "ok"]
    fleet_mailboxes = set(m.lower() for t in TENANTS.values() for m in t["ce_mailboxes"])
    assert set(e["mailbox"].lower() for e in logins if e["service"] == "imap") == fleet_mailboxes
    assert set(e["mailbox"].lower() for e in logins if e["service"] == "smtp") == set(m.lower() for m in TENANTS["hooli"]["ce_mailboxes"])
    output = checked.stdout + checked.stderr + result.stdout + result.stderr
    assert not [s for s in all_known_secrets(fleet) if s in output]

    # Then a renewal CE never got (azuread_app with rotate and retire_previous, as an inventory could make site.yml do):
    # hooli's only secret is young, yet its CE holds the removed one and cannot log in. A plain run (a job started
    # again, no force) leaves the young secrets CE has alone, writing nothing there, and rotates hooli's.
    renewed = fleet.call("azuread_app", fleet.ms_auth("northwind", display_name="CE Email", unique_name="ce-email",
                                                      exchange_permissions=["IMAP.AccessAsApp", "POP.AccessAsApp", "SMTP.SendAsApp"],
                                                      app_secret={"name": secret_name("hooli"), "rotate": True, "retire_previous": True}))
    fleet.secrets["hooli"].append((renewed["client_secret_key_id"], renewed["client_secret"]))
    stale = fleet.secret_by_fingerprint("hooli", fleet.ce_settings("hooli")["client_secret_sha256_8"])
    assert "AADSTS7000215" in fleet.token_error("northwind", stale)
    lab.reset_counters()
    again = fleet.rotate()
    assert again.returncode == 0, again.stdout[-3000:]
    assert sum("rotation: left alone: its only secret is" in said(again, t) for t in TENANTS) == len(TENANTS) - 1
    assert re.search(r"new client secret \S+ for this CE tenant \(CE's secret was set on \S+, before CE's app made its current secret",
                     said(again, "hooli")), said(again, "hooli")
    counters = lab.counters()["directories"]
    assert [counters.get(fleet.apps[n]["tenant_id"], {}).get("graph", {}).get("writes", 0) for n in ("contoso", "fabrikam")] == [0, 0]
    assert lab.ce_counters("emea")["writes"] == 0
    assert fleet.entra_secrets("hooli") == [fleet.secrets["hooli"][-1][0]] != [renewed["client_secret_key_id"]]
    fleet.assert_applied_secrets_work(["hooli"])
    assert not [s for s in all_known_secrets(fleet) if s in again.stdout + again.stderr]


def test_a_failure_at_any_step_leaves_ce_on_a_working_secret_and_a_rerun_finishes(fleet, tmp_path):
    """Fabrikam's CE tenants, each with its own secret: initech on the emea deployment, stark on us. stark's inventory
    forgets one mailbox the CE Portal reads (so Exchange never granted it): the proof before CE passes, the check after
    the update does not."""
    lab = fleet.lab
    forgotten = "ce-escalations@fabrikam.onmicrosoft.com"
    stark_mailboxes = [m for m in TENANTS["stark"]["ce_mailboxes"] if m != forgotten]

    def override(name, **initech):
        path = tmp_path / name
        path.write_text(yaml.safe_dump({"all": {"hosts": dict({"stark": {"ce_mailboxes": stark_mailboxes}},
                                                              **({"initech": initech} if initech else {}))}}))
        return path

    granted = {"stark": stark_mailboxes}
    fleet.converge(["fabrikam"], skip_mailboxes=[forgotten])
    i0, s0 = fleet.secrets["initech"][0], fleet.secrets["stark"][0]

    def rotate(*args, inventory=override("stark-forgets-a-mailbox.yml")):
        return fleet.rotate("-e", "ceops_hosts=initech:stark", *args, inventories=[inventory])

    # 1. The Portal refuses stark's write: initech runs on its new secret and its old one goes (it is initech's alone);
    #    stark keeps its old one, which still works.
    lab.fail_next("ce", 403, method="PUT", path_regex="/tenants/stark/oauth-settings/")
    first = rotate("-e", "rotate_secret_force=true", "-vvv")  # secrets stay out of even the most verbose output
    assert first.returncode != 0 and outcome(first) == {"initech": "ok", "stark": "FAILED"}, first.stdout[-4000:]
    i1, s1 = fleet.secrets["initech"][-1], fleet.secrets["stark"][-1]
    assert fleet.entra_secrets("initech") == [i1[0]] and fleet.entra_secrets("stark") == sorted([s0[0], s1[0]])
    assert fleet.ce_settings("initech")["client_secret_sha256_8"] == fingerprint(i1[1])
    assert fleet.ce_settings("stark", "configured")["client_secret_sha256_8"] == fingerprint(s0[1])
    assert "retired secret(s) %s" % i0[0] in said(first, "initech")
    assert re.search(r"^stark\s+FAILED\s.*CE: CE deployment \S+, tenant stark, OAuth settings 'Exchange Online OAuth'.*HTTP 403",
                     said(first, "stark")) and "retired" not in said(first, "stark")
    fleet.assert_applied_secrets_work(["initech", "stark"], granted)

    # 2. initech rotates again (its inventory forces it) and emea's batch update fails (the new secret is stored, not
    #    applied); stark, on two valid secrets, rotates and its check after the update finds the forgotten mailbox. Every
    #    CE tenant still runs on a secret that works, nothing is removed.
    lab.ce_settings("emea", fail_next_update="Mail server mail01.emea.ce.lab did not confirm the new configuration.")
    second = rotate(inventory=override("initech-forced.yml", rotate_secret_force=True))
    assert second.returncode != 0 and outcome(second) == {"initech": "FAILED", "stark": "FAILED"}, second.stdout[-4000:]
    # stark's CE still holds s0 while s1 is its newest: CE needs a secret, which says more than "rotation asked for".
    assert re.search(r"new client secret \S+ for this CE tenant \(CE's secret was set on .*\); CE holds it", said(second, "stark"))
    i2, s2 = fleet.secrets["initech"][-1], fleet.secrets["stark"][-1]
    assert fleet.entra_secrets("initech") == sorted([i1[0], i2[0]]) and fleet.entra_secrets("stark") == sorted([s0[0], s1[0], s2[0]])
    assert fleet.ce_settings("initech")["client_secret_sha256_8"] == fingerprint(i1[1])
    assert fleet.ce_settings("initech", "configured")["client_secret_sha256_8"] == fingerprint(i2[1])
    assert fleet.ce_settings("stark")["client_secret_sha256_8"] == fingerprint(s2[1])
    assert re.search(r"^initech\s+FAILED\s.*CE: CE deployment \S+, batch update: batch update \S+ failed: .*did not confirm", said(second, "initech"))
    assert re.search(r"^stark\s+FAILED\s.*CE holds it.*Verify: CE's logins failed for 1 of 3", said(second, "stark"))
    assert forgotten in said(second, "stark")
    fleet.assert_applied_secrets_work(["initech", "stark"], granted)

    # 3. The mailbox granted, and Entra slow to accept a new secret (6 s: longer than the few tasks between making the
    #    secret and the proof take on a loaded machine): the proof waits for it, and the re-run finishes both rotations:
    #    one secret left per CE tenant, applied, every earlier one refused.
    fleet.grant("fabrikam")
    lab.set_consistency_window(6, "fabrikam")
    third = rotate()
    assert third.returncode == 0 and outcome(third) == {"initech": "ok", "stark": "ok"}, third.stdout[-4000:]
    assert "FAILED - RETRYING: [" in third.stdout.split("Prove the new secret")[1].split("TASK [")[0]
    lab.set_consistency_window(None, "fabrikam")
    for tenant, earlier in (("initech", (i0, i1, i2)), ("stark", (s0, s1, s2))):
        last = fleet.secrets[tenant][-1]
        assert fleet.entra_secrets(tenant) == [last[0]], tenant
        assert fleet.ce_settings(tenant)["client_secret_sha256_8"] == fingerprint(last[1])
        for old in earlier:
            assert "AADSTS7000215" in fleet.token_error("fabrikam", old[1])
    fleet.assert_applied_secrets_work(["initech", "stark"])
    output = "".join(r.stdout + r.stderr for r in (first, second, third))
    assert not [s for s in all_known_secrets(fleet) if s in output]


def test_the_expiry_report_counts_days_left_and_fails_below_the_threshold(fleet):
    lab = fleet.lab
    fleet.register_apps(["contoso", "fabrikam", "northwind"], lifetime_days={"contoso": 20})
    lab.reset_counters()
    result = fleet.playbook("playbooks/secret_report.yml")
    assert result.returncode != 0
    # One line per CE tenant's own secret.
    for tenant in fleet.tenants_of("contoso"):
        assert re.search(r"WARNING\s+directory %s app \S+ secret '%s' \(%s\): 19\.\d days left"
                         % (fleet.apps["contoso"]["tenant_id"], re.escape(secret_name(tenant)), tenant), result.stdout), result.stdout[-3000:]
        assert re.search(r"key %s from \S+ until \S+: 19\.\d days left" % fleet.secrets[tenant][0][0], result.stdout)
    for name in ("fabrikam", "northwind"):
        for tenant in fleet.tenants_of(name):
            assert re.search(r"OK\s+directory %s app \S+ secret '.*' \(%s\): 364\.\d days left" % (fleet.apps[name]["tenant_id"], tenant),
                             result.stdout)
    assert "3 CE tenant secret(s) need attention: WARNING acme (directory %s): expires in 19." % fleet.apps["contoso"]["tenant_id"] in result.stdout
    # Below the threshold, and in check mode: passes; and the report never writes.
    quiet = fleet.playbook("playbooks/secret_report.yml", "--check", "-e", "secret_report_warn_days=10")
    assert quiet.returncode == 0, quiet.stdout[-3000:]
    assert lab.writes("graph") == 0
    assert not [s for s in all_known_secrets(fleet) if s in result.stdout + quiet.stdout]
