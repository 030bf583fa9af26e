# -*- coding: utf-8 -*-
"""Issue 8, secrets: no secret value in anything a run prints or leaves behind, and no_log exactly on secret options.

One module-scoped fixture runs the lab fleet the ways that put secrets through the most code paths, all at -vvvv:
  converge   site.yml --diff on a fresh lab for acme (contoso, automation identity with a client secret) and hooli
             (northwind, automation identity with a certificate; CE sends with OAuth): CE's client secrets are created,
             handed to the CE Portal and used for the IMAP and SMTP logins;
  failing    site.yml --check --diff with CE's secrets given back (-e, as Vault would), so acme's logins are proven in
             check mode, and bad values for four more CE tenants (a wrong CE token, a wrong automation secret for
             fabrikam, an unknown mailbox, an unknown unicode CE tenant): failure paths print invocations and errors;
             the token endpoint, Graph and the CE Portal echo every request they refuse (the lab's echo_request fault),
             so the wrong secret (with characters that encode differently) and the tokens come back form-encoded,
             JSON-escaped and in Authorization headers;
  runner     verify.yml through ansible-runner at verbosity 4, as AWX runs it, with CE's secrets as extra vars; its
             job events and artifacts are scanned.
Every secret the runs know is then searched for, raw and in every encoding a service could echo it in (variants()), in
their stdout/stderr, the job events and artifacts, the lab's log, the token caches and every file left in
ANSIBLE_LOCAL_TEMP / ANSIBLE_REMOTE_TEMP. The last tests run modules alone against services that echo requests with
secrets of their own, one error path each (token endpoint, Graph, CE Portal), and search their results the same way. Access tokens are searched as JWTs:
any JWT outside the token cache is a leak; those inside it must be tokens this lab issued (by digest).
The failing run doubles as the bad-input check through the site playbook: each broken CE tenant fails alone, with one
line in the summary naming the object and the fix, and the healthy tenants finish.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import glob
import hashlib
import importlib
import json
import os
import re
import stat

import pytest

from ce_support import CLIENT_ID, TENANT_ID, ce_args
from lab_fleet import REPO, SAVE_APPS, Fleet
from security_support import lab_secrets, variants

import ansible_runner
from ansible.module_utils.basic import PASSWORD_MATCH

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")
# Characters that percent-encoding, form encoding and JSON escaping each write differently.
WRONG_AUTOMATION_SECRET = 'Wr0ng~fabrikam/automation+secret="8f3a1c"\\\u00f6 n=1&x'
ECHOING_SERVICES = ("login", "graph", "ce")
WRONG_CE_TOKEN = "cep_wrong-token-for-acme-5d7e9b2c41"
UNKNOWN_MAILBOX = "ce-nobody@northwind.onmicrosoft.com"
UNICODE_TENANT = "umbr\u00e9lla"
# Every option that holds a credential, at any depth (winrm.password, smtp_basic_auth[].password).
SECRET_OPTIONS = frozenset(("client_secret", "client_certificate_password", "ce_token", "ce_password", "password"))


def files_under(*roots):
    for root in roots:
        for path in glob.glob(os.path.join(str(root), "**"), recursive=True):
            if os.path.isfile(path):
                yield path


def read(path):
    with open(path, "rb") as handle:
        return handle.read().decode("utf-8", "replace")


class Runs:
    def __init__(self, lab, work):
        self.lab = lab
        self.work = work
        self.fleet = Fleet(lab, work)
        self.texts = {}  # where -> text: everything that must hold no secret
        self.secrets = lab_secrets(lab)
        self.secrets["wrong automation secret"] = WRONG_AUTOMATION_SECRET
        self.secrets["wrong CE token"] = WRONG_CE_TOKEN
        self.token_caches = []
        self.results = {}

    def playbook(self, label, playbook, *args, **kwargs):
        result = self.fleet.run(playbook, "-vvvv", *args, **kwargs)
        self.texts["%s stdout+stderr" % label] = result.output
        (self.work / ("%s.log" % label)).write_text(result.output)  # for a person reading a failure
        self.token_caches.append(str(self.work / ("tokens-%d" % self.fleet.runs)))
        self.results[label] = result
        return result

    def remember_ce_secrets(self, path, label):
        """Every secret value in the saved ms_apps (client_secret, or client_secrets per CE tenant), wherever it sits."""
        def walk(node, where, secret=False):
            if isinstance(node, dict):
                for key, value in node.items():
                    walk(value, where + "/" + key, secret or "secret" in key)
            elif secret and isinstance(node, str) and node:
                self.secrets["CE app secret %s (%s)" % (where, label)] = node
        with open(path) as handle:
            walk(json.load(handle), "ms_apps")


@pytest.fixture(scope="module")
def runs(lab, tmp_path_factory):
    lab.reset()
    work = tmp_path_factory.mktemp("security-secrets")
    local_tmp, remote_tmp = work / "ansible-local-tmp", work / "ansible-remote-tmp"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ANSIBLE_LOCAL_TEMP", str(local_tmp))
        patch.setenv("ANSIBLE_REMOTE_TEMP", str(remote_tmp))
        patch.delenv("ANSIBLE_KEEP_REMOTE_FILES", raising=False)
        runs = Runs(lab, work)

        converge = work / "site-and-keep-secrets.yml"
        converge.write_text(SAVE_APPS.replace("@REPO@", REPO).replace("@PATH@", runs.fleet.ms_apps_file))
        result = runs.playbook("converge", str(converge), "--diff", "--limit", "acme,hooli,localhost", apps=False)
        assert result.returncode == 0, result.output[-3000:]
        runs.remember_ce_secrets(runs.fleet.ms_apps_file, "converge")

        bad = work / "bad-credentials.json"
        d = lab.vars["lab_directories"]
        bad.write_text(json.dumps({"ms_credentials": {
            d["contoso"]["tenant_id"]: {"client_id": d["contoso"]["automation_client_id"], "client_secret": d["contoso"]["automation_client_secret"]},
            d["fabrikam"]["tenant_id"]: {"client_id": d["fabrikam"]["automation_client_id"], "client_secret": WRONG_AUTOMATION_SECRET},
            d["northwind"]["tenant_id"]: {"client_id": d["northwind"]["automation_client_id"],
                                          "client_certificate_path": d["northwind"]["automation_certificate_path"]}}}))
        for service in ECHOING_SERVICES:
            lab.set_faults(service, echo_request=True)
        runs.playbook("failing", "site.yml", "--check", "--diff", "-e", "@" + str(bad), "--limit", "acme,globex,initech,hooli,umbrella,localhost",
                      host_vars={"globex": {"ce_token": WRONG_CE_TOKEN},
                                 "hooli": {"ce_mailboxes": ["ce-support@northwind.onmicrosoft.com", UNKNOWN_MAILBOX]},
                                 "umbrella": {"ce_tenant": UNICODE_TENANT}})
        lab.clear_faults()

        runs.runner = verify_through_runner(lab, work, runs)
        runs.lab_log = read(lab.info["log_file"])
        runs.leftovers = list(files_under(local_tmp, remote_tmp))
        runs.texts.update(("left in %s" % path, read(path)) for path in runs.leftovers)
        yield runs


def verify_through_runner(lab, work, runs):
    """verify.yml as AWX runs it (ansible-runner, verbosity 4), CE's secrets passed as extra vars as a Vault credential would."""
    job = work / "runner-job"
    (job / "env").mkdir(parents=True)
    envvars = {"ANSIBLE_COLLECTIONS_PATH": os.environ["ANSIBLE_COLLECTIONS_PATH"], "CEOPS_LAB_DIR": lab.state_dir,
               "CEOPS_TOKEN_CACHE_DIR": str(job / "tokens"), "ANSIBLE_NOCOLOR": "1",
               "ANSIBLE_LOCAL_TEMP": os.environ["ANSIBLE_LOCAL_TEMP"], "ANSIBLE_REMOTE_TEMP": os.environ["ANSIBLE_REMOTE_TEMP"]}
    (job / "env" / "envvars").write_text(json.dumps(envvars))
    with open(runs.fleet.ms_apps_file) as handle:
        (job / "env" / "extravars").write_text(handle.read())
    runner = ansible_runner.run(private_data_dir=str(job), project_dir=REPO, playbook=os.path.join(REPO, "playbooks", "verify.yml"),
                                inventory=os.path.join(REPO, "inventories", "lab"), ident="verify", verbosity=4, quiet=True,
                                limit="acme,hooli")
    runs.token_caches.append(str(job / "tokens"))
    artifacts = job / "artifacts"
    runs.texts.update(("runner %s" % os.path.relpath(path, str(artifacts)), read(path)) for path in files_under(artifacts))
    return runner


# -- the runs really exercised the secrets ----------------------------------------------------------------------------
def test_the_runs_used_every_kind_of_secret(runs):
    assert runs.runner.rc == 0 and runs.runner.status == "successful", runs.runner.stdout.read()[-3000:]
    kinds = set(name.split(" ")[0] for name in runs.secrets)
    assert {"automation", "certificate", "CE", "wrong"} <= kinds
    assert len([n for n in runs.secrets if n.startswith("CE app secret")]) >= 2  # contoso's and northwind's, made by the converge
    issued = runs.lab.state("login")["issued_tokens"]
    assert len(issued) >= 6 and any(t["aud"].startswith("https://outlook") for t in issued)
    # CE's own secrets reached the mail servers: the converge and check runs logged in to every mailbox with them.
    for host in ("acme", "hooli"):  # CE's new secrets reached the mail servers: every mailbox logged in with them
        assert re.search(r'"%s\s+ok\s.*logins 2/2 ok' % host, runs.texts["converge stdout+stderr"]), host
    assert len([name for name in runs.texts if name.startswith("runner ") and "job_events" in name]) > 20
    # The services echoed what they refused in the failing run: the wrong secret's form body and the wrong CE token came back.
    failing = runs.texts["failing stdout+stderr"]
    assert "(request was: POST /%s/oauth2/v2.0/token" % runs.lab.vars["lab_directories"]["fabrikam"]["tenant_id"] in failing
    assert "client_secret=********" in failing and "Authorization: Bearer ********" in failing


# -- zero hits --------------------------------------------------------------------------------------------------------
def test_no_secret_value_in_any_output_event_log_or_leftover(runs):
    haystacks = dict(runs.texts, **{"lab log": runs.lab_log})
    for cache in runs.token_caches:
        haystacks.update(("token cache %s" % path, read(path)) for path in files_under(cache))
    hits = []
    for name, secret in runs.secrets.items():
        for where, text in haystacks.items():
            if any(form in text for form in variants(secret)):
                hits.append("%s in %s" % (name, where))
    assert hits == []
    # The search finds what is there: the files that hold the secrets on purpose (lab-vars.json, the test's own ms_apps file).
    on_purpose = read(os.path.join(runs.lab.state_dir, "lab-vars.json")) + read(runs.fleet.ms_apps_file)
    assert [name for name, secret in runs.secrets.items() if not name.startswith(("wrong", "certificate"))
            and not any(form in on_purpose for form in variants(secret))] == []


def test_no_access_token_outside_the_token_cache(runs):
    hits = ["%s: %s..." % (where, match[:24]) for where, text in dict(runs.texts, **{"lab log": runs.lab_log}).items()
            for match in JWT.findall(text)]
    assert hits == []


def test_the_token_cache_is_private_and_holds_only_tokens_this_lab_issued(runs):
    issued = set(t["sha256"] for t in runs.lab.state("login")["issued_tokens"])
    cached = 0
    for cache in runs.token_caches:
        assert stat.S_IMODE(os.stat(cache).st_mode) == 0o700, cache
        for path in files_under(cache):
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
            if path.endswith(".json"):
                entry = json.loads(read(path))
                assert sorted(entry) == ["access_token", "expires_on"]
                assert hashlib.sha256(entry["access_token"].encode("ascii")).hexdigest() in issued
                cached += 1
    assert cached >= 6


def test_no_temp_file_is_left_behind(runs):
    assert runs.leftovers == []


# -- bad input through the site playbook (the failing run) ------------------------------------------------------------
def summary_failure(output, host):
    """The summary's line for a failed CE tenant and the reason line under it."""
    lines = output.splitlines()
    index = next(i for i, line in enumerate(lines) if re.search(r'"%s\s+FAILED' % re.escape(host), line))
    return lines[index + 1]


@pytest.mark.parametrize("host,fragments", [
    ("globex", ["CE:", "tenant globex", "HTTP 401", "check ce_token"]),
    ("initech", ["Azure AD:", "directory 7a2b3c4d-2b3c-4d5e-9f0a-1b2c3d4e5f62", "AADSTS7000215", "secret's Value (not its ID)"]),
    ("hooli", ["Exchange Online:", UNKNOWN_MAILBOX, "does not exist", "ce_mailboxes", "and run again"]),
    ("umbrella", ["CE:", "tenant umbr\u00e9lla", "is not a Portal tenant name", "lowercase letters, digits and '-'"]),
])
def test_bad_inventory_values_fail_their_ce_tenant_with_one_clear_line(runs, host, fragments):
    output = runs.results["failing"].output
    assert runs.results["failing"].returncode != 0 and "Traceback" not in output
    line = summary_failure(output, host)
    for fragment in fragments:
        assert fragment in line, line


def test_a_healthy_ce_tenant_beside_failing_ones_finishes(runs):
    # acme shares directory contoso with umbrella and CE deployment emea with globex, which both fail in the CE part.
    output = runs.results["failing"].output
    assert re.search(r'"acme\s+ok\s.*logins 2/2 ok', output), summary_failure(output, "acme")


# -- no_log exactly on secrets ----------------------------------------------------------------------------------------
def module_specs():
    from ansible_collections.ceops.exchange_oauth.plugins.module_utils.ce_module import ce_argument_spec
    from ansible_collections.ceops.exchange_oauth.plugins.module_utils.microsoft_module import microsoft_argument_spec
    modules_dir = os.path.join(REPO, "plugins", "modules")
    for filename in sorted(os.listdir(modules_dir)):
        if not filename.endswith(".py") or filename.startswith("_"):
            continue
        name = filename[:-3]
        module = importlib.import_module("ansible_collections.ceops.exchange_oauth.plugins.modules." + name)
        source = read(os.path.join(modules_dir, filename))
        if not hasattr(module, "argument_spec"):
            # Documentation only: the action plugin of that name is all there is (secret_store, on the controller), and its
            # results are tested to hold no secret (tests/unit/plugins/action/test_secret_store_action.py).
            assert "DOCUMENTATION" in source and os.path.exists(os.path.join(REPO, "plugins", "action", filename)), name
            continue
        spec = dict(microsoft_argument_spec() if "MicrosoftModule(" in source else ce_argument_spec())
        spec.update(module.argument_spec())
        yield name, spec


def options(spec, prefix=""):
    for name, option in spec.items():
        yield prefix + name, name, option
        for item in options(option.get("options") or {}, prefix + name + "."):
            yield item


@pytest.mark.parametrize("module,spec", list(module_specs()), ids=lambda v: v if isinstance(v, str) else "")
def test_no_log_is_on_every_secret_option_and_nowhere_else(module, spec):
    secret = sorted(path for path, name, option in options(spec) if name in SECRET_OPTIONS)
    masked = sorted(path for path, name, option in options(spec) if option.get("no_log"))
    assert masked == secret
    # Ansible warns "Module did not set no_log" for names that look like passwords: those holding none must say no_log=False.
    unmarked = [path for path, name, option in options(spec) if PASSWORD_MATCH.search(name) and "no_log" not in option]
    assert unmarked == []


# -- services that echo the request: one error path each, searched the same way ---------------------------------------
# A secret of the test's own, with characters that each encoding writes differently (no space: Entra secrets have none).
ECHO_SECRET = 'Ech0~se/cr+et="x"\\\u00f6&y=1'


@pytest.fixture
def echoing_lab(fresh_lab):
    for service in ECHOING_SERVICES:
        fresh_lab.set_faults(service, echo_request=True)
    yield fresh_lab
    fresh_lab.clear_faults()


def leaks(result, secrets):
    """Secrets (by name) and JWTs found in a module's output, in any form."""
    text = result["_raw"]
    return [name for name, secret in secrets.items() if any(form in text for form in variants(secret))] + JWT.findall(text)


def test_a_token_endpoint_that_echoes_the_form_body_gets_no_secret_into_the_result(echoing_lab, run_module, directory_auth):
    result = run_module("azuread_app", directory_auth(echoing_lab, client_secret=ECHO_SECRET, display_name="CE Email"))
    assert result["failed"] is True and "AADSTS7000215" in result["msg"]
    assert "(request was: POST" in result["msg"] and "client_secret=********" in result["msg"]  # the echo came, without it
    assert leaks(result, {"the automation secret": ECHO_SECRET}) == []


def test_graph_echoing_the_request_gets_no_bearer_token_into_the_result(echoing_lab, run_module, directory_auth):
    # Twice: a refused token is dropped and a fresh one tried once (graph.py), and that one is echoed too.
    echoing_lab.fail_next("graph", 403, method="GET", path_regex=r"^/v1\.0/applications", count=2)
    auth = directory_auth(echoing_lab, display_name="CE Email")
    result = run_module("azuread_app", auth)
    # The echo came (capped: a message quotes at most 1000 characters of a service's text, cut between words).
    assert result["failed"] is True and "(request was: GET /v1.0/applications" in result["msg"], result["msg"]
    assert leaks(result, {"the automation secret": auth["client_secret"]}) == []
    assert echoing_lab.counters()["services"]["graph"]["totals"]["faults"] == 2


def test_a_ce_portal_echoing_the_request_gets_no_client_secret_or_credential_into_the_result(echoing_lab, run_module):
    echoing_lab.fail_next("ce", 400, method="POST", path_regex=r"/oauth-settings$")
    args = ce_args(echoing_lab, ce_tenant="acme", name="Exchange Online OAuth", client_id=CLIENT_ID, client_secret=ECHO_SECRET,
                   tenant_id=TENANT_ID)
    result = run_module("ce_oauth_settings", args)
    assert result["failed"] is True and '"client_secret": "********"' in result["msg"], result["msg"]
    assert leaks(result, {"CE's client secret": ECHO_SECRET, "the Portal token": args["ce_token"]}) == []
    # A Portal administrator's login: the echoed Basic credential is user:password in base64.
    echoing_lab.fail_next("ce", 403, method="GET", path_regex=r"/info$")
    basic = ce_args(echoing_lab, basic=True, name="Exchange Online")
    result = run_module("ce_email_gateway", basic)
    credential = base64.b64encode(("%s:%s" % (basic["ce_username"], basic["ce_password"])).encode("utf-8")).decode("ascii")
    assert result["failed"] is True and "Authorization: Basic ********" in result["msg"], result["msg"]
    assert leaks(result, {"the Portal password": basic["ce_password"], "the Basic credential": credential}) == []
