# -*- coding: utf-8 -*-
"""playbooks/site.yml run by ansible-runner as AWX runs a job, with the credentials injected as AWX injects them.

Each job gets a private data directory laid out as AWX lays it out: project/ (the collection's checkout), inventory/
(the lab fleet, as an AWX inventory holds it: no secrets), env/extravars (job template variables), env/envvars (the
job's environment with what the credentials inject), env/settings, and the credentials' files in env/ (0600). What
the credentials inject is rendered FROM extensions/awx/credential_types.yml, with Jinja's sandbox as AWX renders
injectors, so the shipped definitions are what is tested.

Job slicing: AWX deals the hosts of the name-sorted inventory round-robin into N slice jobs, each seeing only its
hosts (groups and group variables stay). Sliced runs of a cold lab must end in the same lab state as one unsliced run.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import json
import os
import stat
import sys
import tempfile
import threading

import ansible_runner
import pytest
import yaml
# AWX's own definition of its built-in "Microsoft Azure Resource Manager" credential type and its injector, from
# awx-plugins-core (tests/integration/requirements-awx.txt), where AWX keeps its managed credential types: ansible/awx,
# awx/main/models/credential.py, CredentialType.inject_credential calls awx_plugins.credentials.injectors.<namespace>
# for a managed type; ansible/awx-plugins, src/awx_plugins/credentials/plugins.py (ManagedCredentialType namespace
# 'azure_rm': its inputs) and src/awx_plugins/credentials/injectors.py (azure_rm: what it puts in the job's environment).
from awx_plugins.credentials import injectors as awx_injectors
from awx_plugins.credentials import plugins as awx_credential_types
from jinja2.sandbox import ImmutableSandboxedEnvironment

from lab_fleet import DEPLOYMENTS, DIRECTORIES, TENANTS, directory_mailboxes

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAMES = dict((tenant_id, name) for name, tenant_id in DIRECTORIES.items())
# Environment variables AWX refuses in a credential type's env injector (awx/main/fields.py, CredentialTypeInjectorField).
AWX_ENV_BLOCKLIST = {"VIRTUAL_ENV", "PATH", "PYTHONPATH", "JOB_ID", "INVENTORY_ID", "INVENTORY_SOURCE_ID",
                     "INVENTORY_UPDATE_ID", "AD_HOC_COMMAND_ID", "REST_API_URL", "REST_API_TOKEN", "MAX_EVENT_RES",
                     "CALLBACK_QUEUE", "CALLBACK_CONNECTION", "CACHE", "JOB_CALLBACK_DEBUG", "INVENTORY_HOSTVARS",
                     "AWX_HOST", "PROJECT_REVISION", "SUPERVISOR_CONFIG_PATH"}


def credential_types():
    with open(os.path.join(REPO, "extensions", "awx", "credential_types.yml")) as handle:
        return dict((t["name"], t) for t in yaml.safe_load(handle)["ceops_awx_credential_types"])


class Namespace:
    """AWX's `tower` template namespace: tower.filename.<name> for each file template."""


def inject(credential_type, inputs, env_dir):
    """What AWX does with one credential of `credential_type` (awx/main/models/credentials.py, inject_credential):
    check the inputs against the type, render each file template into a 0600 file in env/, then the env templates
    (tower.filename.<name> is the file's path). Returns the job's environment entries."""
    fields = dict((f["id"], f) for f in credential_type["inputs"]["fields"])
    assert set(inputs) <= set(fields), set(inputs) - set(fields)
    assert set(credential_type["inputs"].get("required", [])) <= set(inputs)
    sandbox = ImmutableSandboxedEnvironment()
    namespace = dict(inputs)
    tower = Namespace()
    for label, template in credential_type["injectors"].get("file", {}).items():
        handle, path = tempfile.mkstemp(dir=env_dir)
        with os.fdopen(handle, "w") as out:
            out.write(sandbox.from_string(template).render(**namespace))
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        if "." in label:
            if not hasattr(tower, "filename"):
                tower.filename = Namespace()
            setattr(tower.filename, label.split(".", 1)[1], path)
        else:
            tower.filename = path
    namespace["tower"] = tower
    env = {}
    for name, template in credential_type["injectors"].get("env", {}).items():
        assert not name.startswith("ANSIBLE_") and name not in AWX_ENV_BLOCKLIST, name
        env[name] = sandbox.from_string(template).render(**namespace)
    assert not credential_type["injectors"].get("extra_vars"), "extra_vars injectors are not emulated here"
    return env


class AwxCredential:
    """A credential as AWX's injectors see it: the two methods of AWX's Credential model they call
    (awx/main/models/credential.py, get_input and has_input), over plain inputs checked against the type."""

    def __init__(self, credential_type, inputs):
        fields = dict((f["id"], f) for f in credential_type.inputs["fields"])
        assert set(inputs) <= set(fields), set(inputs) - set(fields)
        assert set(credential_type.inputs.get("required", [])) <= set(inputs)
        self.inputs = inputs

    def get_input(self, field_name, **kwargs):
        if field_name in self.inputs:
            return self.inputs[field_name]
        if "default" in kwargs:
            return kwargs["default"]
        raise AttributeError(field_name)

    def has_input(self, field_name):
        return self.inputs.get(field_name) not in ("", None)


def inject_builtin(namespace, inputs, env_dir):
    """What AWX does with a credential of one of its built-in types that has a Python injector (inject_credential): the
    injector of that namespace fills the job's environment. Returns the job's environment entries."""
    credential_type = getattr(awx_credential_types, namespace)
    assert credential_type.managed and not credential_type.injectors  # so AWX calls the Python injector
    env = {}
    getattr(awx_injectors, namespace)(AwxCredential(credential_type, inputs), env, env_dir)
    return env


def awx_inventory(lab, hosts, host_vars=None):
    """The lab fleet as an AWX inventory holds it (literal values, no secrets), with only `hosts` in it: what a slice
    job sees. Group variables stay: AWX keeps every group and its variables in a slice."""
    with open(os.path.join(REPO, "inventories", "lab", "hosts.yml")) as handle:
        inventory = yaml.safe_load(handle)
    ms = lab.vars
    deployments = inventory["all"]["children"]["ce_tenants"]["children"]
    for group, body in deployments.items():
        name = group.replace("ce_deployment_", "")
        body["hosts"] = dict((h, dict(v, **(host_vars or {}).get(h, {}))) for h, v in body["hosts"].items() if h in hosts)
        body["vars"] = {"ce_deployment": name, "ce_url": ms["lab_ce_deployments"][name]["url"], "ce_ca_path": ms["lab_ca_path"]}
    inventory["all"]["vars"] = {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "ms_endpoints": {"authority_host": ms["lab_authority_host"], "graph_endpoint": ms["lab_graph_endpoint"],
                         "exchange_endpoint": ms["lab_exchange_endpoint"], "ca_path": ms["lab_ca_path"],
                         "imap_host": ms["lab_imap"]["host"], "imap_port": ms["lab_imap"]["port"],
                         "smtp_host": ms["lab_smtp"]["host"], "smtp_port": ms["lab_smtp"]["port"]}}
    return inventory


def credentials(lab):
    """The job template's credentials, one per type: contoso and fabrikam in the fleet mapping, northwind's identity
    (a certificate, as a file) in the one-directory type; emea in the Portals mapping, us in the one-Portal type."""
    d, ce = lab.vars["lab_directories"], lab.vars["lab_ce_deployments"]
    with open(d["northwind"]["automation_certificate_path"]) as handle:
        northwind_pem = handle.read()
    directories = dict((d[n]["tenant_id"], {"client_id": d[n]["automation_client_id"], "client_secret": d[n]["automation_client_secret"]})
                       for n in ("contoso", "fabrikam"))
    return [
        ("CE Ops Microsoft directories", {"directories": yaml.safe_dump(directories)}),
        ("CE Ops Microsoft automation identity", {"tenant_id": d["northwind"]["tenant_id"], "client_id": d["northwind"]["automation_client_id"],
                                                  "client_certificate": northwind_pem}),
        ("CE Ops CE Portals", {"portals": yaml.safe_dump({ce["emea"]["url"] + "/": {"token": ce["emea"]["admin_token"]}})}),
        ("CE Ops CE Portal", {"ce_url": ce["us"]["url"], "ce_token": ce["us"]["admin_token"]}),
    ]


def secrets_of(lab):
    """Every secret value a job is given: none may show in any job event or artifact."""
    d, ce = lab.vars["lab_directories"], lab.vars["lab_ce_deployments"]
    with open(d["northwind"]["automation_certificate_path"]) as handle:
        key_line = next(line for line in handle.read().splitlines() if line and "-----" not in line)  # a line of the key
    return [d["contoso"]["automation_client_secret"], d["fabrikam"]["automation_client_secret"], key_line,
            ce["emea"]["admin_token"], ce["us"]["admin_token"]]


def prepare_job(lab, base, job_id, hosts, extravars=None, job_credentials=None, host_vars=None, builtin_credentials=()):
    """A private data directory as AWX writes it for one job (or one slice job) of the site job template: with the
    collection's credential types (`job_credentials`, by default those of credentials(lab)) and AWX's built-in ones
    (`builtin_credentials`: (namespace, inputs) pairs)."""
    job = os.path.join(str(base), "job-%d" % job_id)
    for sub in ("env", "inventory"):
        os.makedirs(os.path.join(job, sub))
    os.symlink(REPO, os.path.join(job, "project"))  # AWX copies the project's checkout here
    with open(os.path.join(job, "inventory", "hosts.yml"), "w") as handle:
        yaml.safe_dump(awx_inventory(lab, hosts, host_vars), handle)
    types = credential_types()
    envvars = {"JOB_ID": str(job_id), "AWX_HOST": "https://awx.example.com", "PROJECT_REVISION": "lab",
               # The collection as the project's execution environment has it (root conftest.py's symlink tree).
               "ANSIBLE_COLLECTIONS_PATH": os.environ["ANSIBLE_COLLECTIONS_PATH"],
               "CEOPS_TOKEN_CACHE_DIR": os.path.join(job, "tokens"), "ANSIBLE_NOCOLOR": "1"}
    for type_name, inputs in credentials(lab) if job_credentials is None else job_credentials:
        envvars.update(inject(types[type_name], inputs, os.path.join(job, "env")))
    for namespace, inputs in builtin_credentials:
        envvars.update(inject_builtin(namespace, inputs, os.path.join(job, "env")))
    with open(os.path.join(job, "env", "envvars"), "w") as handle:
        yaml.safe_dump(envvars, handle)
    with open(os.path.join(job, "env", "extravars"), "w") as handle:
        yaml.safe_dump(dict({"ce_email_oauth_batch_update_poll_interval": 0.5}, **(extravars or {})), handle)
    with open(os.path.join(job, "env", "settings"), "w") as handle:
        yaml.safe_dump({"job_timeout": 600, "idle_timeout": 300, "suppress_ansible_output": True}, handle)
    return job


def run_job(job, playbook="playbooks/site.yml", cmdline=None, ident="1"):
    return ansible_runner.run(private_data_dir=job, playbook=playbook, ident=ident, forks=10, quiet=True, cmdline=cmdline)


def events(job, ident="1"):
    found = []
    for path in glob.glob(os.path.join(job, "artifacts", ident, "job_events", "*.json")):
        with open(path) as handle:
            found.append(json.load(handle))
    return sorted(found, key=lambda e: e["counter"])


def host_results(job_events):
    """{host: {event name: count}} of the runner_on_* events."""
    results = {}
    for event in job_events:
        host = event.get("event_data", {}).get("host")
        if host and event["event"].startswith("runner_on_"):
            results.setdefault(host, {}).setdefault(event["event"], 0)
            results[host][event["event"]] += 1
    return results


def summary_lines(job_events):
    event = next(e for e in job_events if e["event"] == "runner_on_ok"
                 and e["event_data"].get("task") == "Show what every CE tenant got, and why any failed")
    return event["event_data"]["res"]["msg"]


def slices(count):
    """AWX's slices: the hosts sorted by name, dealt round-robin (Inventory.get_sliced_hosts)."""
    ordered = sorted(TENANTS)
    return [ordered[i::count] for i in range(count)]


def fleet_state(lab):
    """The lab's state, with ids that differ between runs replaced by what they stand for."""
    state = {}
    app_names = {}
    for name, tenant_id in DIRECTORIES.items():
        directory = lab.directory_state(name)
        apps = [a for a in directory["applications"] if a["displayName"] != "ceops automation"]
        app_names.update((a["appId"], name) for a in apps)
        app_ids = set(a["appId"] for a in apps)
        sps = [s for s in directory["servicePrincipals"] if s["appId"] in app_ids]
        sp_ids = set(s["id"] for s in sps)
        exchange = lab.exchange_state(name)
        exo_sps = [s for s in exchange["service_principals"] if s["AppId"] in app_ids]
        state[name] = {
            "apps": sorted((a["displayName"], a["uniqueName"], tuple(sorted(p["displayName"] for p in a["passwordCredentials"])),
                            tuple(sorted(r["id"] for access in a["requiredResourceAccess"] for r in access["resourceAccess"])))
                           for a in apps),
            "service_principals": len(sps),
            "consents": sorted(a["appRoleId"] for a in directory["appRoleAssignments"] if a["principalId"] in sp_ids),
            "exchange_service_principals": len(exo_sps),
            "full_access": sorted(m["PrimarySmtpAddress"].lower() for m in exchange["mailboxes"]
                                  if any(p["User"] in sp_ids and "FullAccess" in p["AccessRights"] for p in m["permissions"])),
        }
    for deployment in DEPLOYMENTS:
        ce = lab.ce_state(deployment)
        assert ce["pending"]["pending"] is False, (deployment, ce["pending"])
        gateways = dict((g["id"], g["name"]) for g in ce["applied"]["email_gateways"])
        tenants = {}
        for tenant, body in ce["applied"]["tenants"].items():
            settings = dict((s["id"], s) for s in body["oauth_settings"])
            tenants[tenant] = {
                "oauth_settings": sorted((s["name"], app_names.get(s["client_id"], s["client_id"]), s["client_secret_set"])
                                         for s in body["oauth_settings"]),
                "email_connections": sorted((c["name"], gateways[c["gateway_id"]], settings.get(c["oauth_settings_id"], {}).get("name"),
                                             c["use_oauth_receive"], c["use_oauth_send"]) for c in body["email_connections"]),
            }
        state[deployment] = {"gateways": sorted(gateways.values()), "tenants": tenants}
    return state


def logins_ok(lab):
    return set((e["service"], e["mailbox"].lower()) for e in lab.mail_logins() if e["outcome"] == "ok")


def expected_logins():
    return set(("imap", m.lower()) for t in TENANTS.values() for m in t["ce_mailboxes"]) | \
        set(("smtp", m.lower()) for t in TENANTS.values() if t.get("ce_send_with_oauth") for m in t["ce_mailboxes"])


@pytest.fixture(scope="module")
def unsliced(lab, tmp_path_factory):
    """One cold run of the site job template on the whole fleet; the lab's state after it."""
    lab.reset()
    job = prepare_job(lab, tmp_path_factory.mktemp("awx"), 1, list(TENANTS))
    runner = run_job(job)
    run = {"job": job, "runner": runner, "events": events(job), "state": fleet_state(lab), "logins": logins_ok(lab),
           "counters": lab.ce_counters()}
    return run


def test_the_site_job_template_converges_the_fleet_with_awx_injected_credentials(lab, unsliced):
    runner, job_events = unsliced["runner"], unsliced["events"]
    assert (runner.rc, runner.status) == (0, "successful"), "".join(e.get("stdout", "") for e in job_events)[-4000:]
    results = host_results(job_events)
    assert set(results) == set(TENANTS)
    assert all("runner_on_failed" not in r for r in results.values()), results
    stats = next(e for e in job_events if e["event"] == "playbook_on_stats")["event_data"]
    assert stats["failures"] == {} and stats["dark"] == {} and set(stats["ok"]) == set(TENANTS)
    lines = summary_lines(job_events)
    for host, tenant in TENANTS.items():
        n = len(tenant["ce_mailboxes"])
        line = next(line for line in lines if line.split()[0] == host)
        assert " ok " in line and "FullAccess %d/%d" % (n, n) in line and line.endswith("logins %d/%d ok" % (n, n)), line

    # The lab: one app per directory with one secret per CE tenant, registered in Exchange with FullAccess on exactly
    # its CE tenants' mailboxes; every CE tenant configured and applied, and every mailbox logged in as CE will.
    state = unsliced["state"]
    for name, tenant_id in DIRECTORIES.items():
        hosts = sorted(h for h, t in TENANTS.items() if t["ms_tenant_id"] == tenant_id)
        (app,) = state[name]["apps"]
        assert app[:3] == ("CE Email", "ce-email", tuple(sorted("CE mailbox access (%s)" % h for h in hosts))), app
        assert state[name]["service_principals"] == 1 and state[name]["exchange_service_principals"] == 1
        assert len(state[name]["consents"]) == len(app[3])
        assert state[name]["full_access"] == directory_mailboxes(tenant_id)
    for deployment, hosts in DEPLOYMENTS.items():
        assert state[deployment]["gateways"] == ["Exchange Online"]
        for host in hosts:
            tenant = state[deployment]["tenants"][host]
            assert tenant["oauth_settings"] == [("Exchange Online OAuth", NAMES[TENANTS[host]["ms_tenant_id"]], True)]
            assert tenant["email_connections"] == [("Exchange Online", "Exchange Online", "Exchange Online OAuth", True,
                                                    bool(TENANTS[host].get("ce_send_with_oauth")))]
        assert unsliced["counters"][deployment]["batch_updates"] == 1
    assert unsliced["logins"] == expected_logins()


def test_no_injected_secret_shows_in_any_job_event_or_artifact(lab, unsliced):
    job = unsliced["job"]
    artifacts = [p for p in glob.glob(os.path.join(job, "artifacts", "**"), recursive=True) if os.path.isfile(p)]
    assert any("job_events" in p for p in artifacts)
    for path in artifacts:
        with open(path, errors="replace") as handle:
            text = handle.read()
        for secret in secrets_of(lab):
            assert secret not in text, path
        assert "secretText" not in text, path
    # The credentials' files are the job's own (AWX removes the private data directory after the job).
    injected = [p for p in glob.glob(os.path.join(job, "env", "tmp*"))]
    assert len(injected) == 7 and all(stat.S_IMODE(os.stat(p).st_mode) == 0o600 for p in injected)


# Two slices (three cost another job's fixed overhead): each directory with several CE tenants and each deployment
# is still split between them.
@pytest.mark.parametrize("count", [2])
def test_sliced_runs_end_in_the_state_of_one_unsliced_run(lab, unsliced, tmp_path, count):
    """A cold lab, then the site job template with job_slice_count=2, the slices one after another. Each slice does
    the directory's and the deployment's work for its own CE tenants; the end state is the unsliced run's."""
    assert unsliced["runner"].rc == 0
    lab.reset()
    parts = slices(count)
    # Every directory and deployment is split across slices: each slice must find and extend the others' work.
    assert all(len(set(i for i, hosts in enumerate(parts) for h in hosts if TENANTS[h]["ms_tenant_id"] == t)) > 1
               for t in (DIRECTORIES["contoso"], DIRECTORIES["fabrikam"]))
    for number, hosts in enumerate(parts, 1):
        job = prepare_job(lab, tmp_path, 10 + number, hosts)
        runner = run_job(job)
        job_events = events(job)
        assert (runner.rc, runner.status) == (0, "successful"), "".join(e.get("stdout", "") for e in job_events)[-4000:]
        assert set(host_results(job_events)) == set(hosts)
    assert fleet_state(lab) == unsliced["state"]
    assert logins_ok(lab) == expected_logins()
    # A batch update per slice that changed a deployment at most, never two from one slice.
    for deployment, hosts in DEPLOYMENTS.items():
        with_hosts = sum(1 for part in parts if set(part) & set(hosts))
        assert 1 <= lab.ce_counters(deployment)["batch_updates"] <= with_hosts


def test_slices_running_at_the_same_time_end_in_the_same_state(lab, unsliced, tmp_path):
    """AWX starts slice jobs at once when capacity allows: two slices on a cold lab, concurrently."""
    lab.reset()
    jobs = [prepare_job(lab, tmp_path, 20 + n, hosts) for n, hosts in enumerate(slices(2), 1)]
    runners = [None, None]
    barrier = threading.Barrier(2)

    def start(index):
        barrier.wait()
        runners[index] = run_job(jobs[index])

    threads = [threading.Thread(target=start, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    for job, runner in zip(jobs, runners):
        assert (runner.rc, runner.status) == (0, "successful"), "".join(e.get("stdout", "") for e in events(job))[-4000:]
    assert fleet_state(lab) == unsliced["state"]
    assert logins_ok(lab) == expected_logins()


def test_a_ce_tenant_whose_portal_has_no_credential_fails_naming_the_portal(lab, tmp_path):
    """The job's CE Portals credential has the emea Portal only: hooli (us) fails before anything is sent, saying
    which Portal lacks a credential; acme goes on. The CE part in check mode, so nothing is written either way."""
    ce = lab.vars["lab_ce_deployments"]
    job_credentials = [entry for entry in credentials(lab) if entry[0] != "CE Ops CE Portal"]
    job = prepare_job(lab, tmp_path, 30, ["acme", "hooli"], job_credentials=job_credentials)
    lab.reset_counters()
    runner = run_job(job, playbook="playbooks/ce.yml", cmdline="--check")
    job_events = events(job)
    assert runner.rc != 0
    results = host_results(job_events)
    assert "runner_on_failed" not in results["acme"] and "runner_on_failed" in results["hooli"], results
    # The summary names why (the run fails the CE tenant at its end, pointing at it).
    lines = next(e["event_data"]["res"]["msg"] for e in job_events if e["event"] == "runner_on_ok"
                 and e["event_data"]["task"] == "Show what every CE tenant got, and why any failed")
    failure = " ".join(line for line in lines if line.startswith("hooli") or line.startswith("    ") and "hooli" in line)
    assert "CE tenant hooli" in failure and ce["us"]["url"] in failure and "Add an entry keyed by exactly that URL" in failure, failure
    assert lab.ce_counters("us")["requests"] == 0 and lab.ce_counters("emea")["writes"] == 0


def test_a_slice_without_the_directorys_sending_ce_tenant_keeps_its_send_permission(lab, tmp_path):
    """umbrella (contoso, on CE 7.6) sends with OAuth, acme (contoso) does not; sliced apart, umbrella's slice first.
    Only the Azure AD part runs: it alone decides the directory app's permissions."""
    lab.reset()
    sends = {"umbrella": {"ce_send_with_oauth": True}}

    def may_send():
        directory = lab.directory_state("contoso")
        exchange = next(s for s in directory["servicePrincipals"] if s["appId"] == "00000002-0000-0ff1-ce00-000000000000")
        send_role = next(r["id"] for r in exchange["appRoles"] if r["value"] == "SMTP.SendAsApp")
        (app,) = [a for a in directory["applications"] if a["displayName"] != "ceops automation"]
        (sp_id,) = [s["id"] for s in directory["servicePrincipals"] if s["appId"] == app["appId"]]
        return any(a["appRoleId"] == send_role and a["principalId"] == sp_id for a in directory["appRoleAssignments"])

    for job_id, hosts in ((40, ["umbrella"]), (41, ["acme"])):
        job = prepare_job(lab, tmp_path, job_id, hosts, host_vars=sends)
        runner = run_job(job, playbook="playbooks/azuread.yml")
        assert runner.rc == 0, "".join(e.get("stdout", "") for e in events(job))[-3000:]
        assert may_send(), "after the slice of %s" % hosts


# A job with only AWX's built-in Azure credential: the directory's automation identity as AWX injects it.
CHECK_APP = """
- name: The app of the directory AWX's Azure credential names, its tenant, client and secret all from the credential
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Check the app (no tenant_id, client_id or client_secret here)
      ceops.exchange_oauth.azuread_app:
        display_name: CE Email
        unique_name: ce-email
        exchange_permissions: [IMAP.AccessAsApp, POP.AccessAsApp]
        retain_exchange_permissions: [SMTP.SendAsApp]
        authority_host: {authority_host}
        graph_endpoint: {graph_endpoint}
        ca_path: {ca_path}
      register: app
    - name: Show what the module saw
      ansible.builtin.debug:
        msg: "{{{{ app.tenant_id }}}} {{{{ app.app_id }}}} changed={{{{ app.changed }}}}"
"""


def test_awx_builtin_azure_credential_runs_the_azure_ad_part_and_the_modules(lab, tmp_path):
    """AWX's built-in "Microsoft Azure Resource Manager" credential alone (AZURE_CLIENT_ID, AZURE_SECRET, AZURE_TENANT,
    AZURE_CLOUD_ENVIRONMENT, AZURE_SUBSCRIPTION_ID as its injector sets them): playbooks/azuread.yml registers the app in
    that directory with the credential's identity, and a module given no credentials takes tenant, client and secret from
    it (AWX's names; the Azure SDK's AZURE_TENANT_ID and AZURE_CLIENT_SECRET are not set)."""
    lab.reset()
    contoso = lab.vars["lab_directories"]["contoso"]
    hosts = sorted(h for h, t in TENANTS.items() if t["ms_tenant_id"] == DIRECTORIES["contoso"])
    inputs = {"subscription": "00000000-0000-0000-0000-000000000000",  # required by AWX's form, unused by the collection
              "client": contoso["automation_client_id"], "secret": contoso["automation_client_secret"],
              "tenant": contoso["tenant_id"], "cloud_environment": "AzureCloud"}
    job = prepare_job(lab, tmp_path, 50, hosts, job_credentials=(), builtin_credentials=[("azure_rm", inputs)])
    with open(os.path.join(job, "env", "envvars")) as handle:
        envvars = yaml.safe_load(handle)
    assert envvars["AZURE_TENANT"] == contoso["tenant_id"] and envvars["AZURE_SECRET"] == contoso["automation_client_secret"]
    assert not set(envvars) & {"AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "CEOPS_MS_CREDENTIALS_FILE"}

    runner = run_job(job, playbook="playbooks/azuread.yml")
    job_events = events(job)
    assert (runner.rc, runner.status) == (0, "successful"), "".join(e.get("stdout", "") for e in job_events)[-4000:]
    # No CE Ops credential: the play that reads them matches no host (only AWX's built-in one was given).
    assert set(host_results(job_events)) == set(hosts)
    (app,) = [a for a in lab.directory_state("contoso")["applications"] if a["displayName"] != "ceops automation"]
    # The Azure AD part registers and consents; secrets are made by the CE part, for the CE tenants whose CE needs one.
    assert app["uniqueName"] == "ce-email" and app["passwordCredentials"] == []
    # Every token was the credential's identity's, in its directory.
    tokens = lab.counters()["tokens"]
    assert tokens and all(key.split("|")[:2] == [contoso["tenant_id"], contoso["automation_client_id"]] for key in tokens), tokens

    playbook = tmp_path / "check_app.yml"
    playbook.write_text(CHECK_APP.format(authority_host=lab.vars["lab_authority_host"], graph_endpoint=lab.vars["lab_graph_endpoint"],
                                         ca_path=lab.vars["lab_ca_path"]))
    runner = run_job(job, playbook=str(playbook), ident="2")
    job_events = events(job, "2")
    assert (runner.rc, runner.status) == (0, "successful"), "".join(e.get("stdout", "") for e in job_events)[-4000:]
    shown = next(e["event_data"]["res"]["msg"] for e in job_events if e["event"] == "runner_on_ok"
                 and e["event_data"].get("task") == "Show what the module saw")
    assert shown == "%s %s changed=False" % (contoso["tenant_id"], app["appId"])
    for ident in ("1", "2"):
        for event in events(job, ident):
            assert contoso["automation_client_secret"] not in json.dumps(event)
