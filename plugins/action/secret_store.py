# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The secret_store action (documented in plugins/modules/secret_store.py): on the controller, with the run's vault secrets.

Thin on purpose: the file, the merge and the lock are plugins/plugin_utils/secret_store.py; here are the options, the
vault (decrypt with every secret of the run, encrypt with the one ``ansible-vault encrypt`` would choose, or the one named)
and the result.
"""

from __future__ import annotations

from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_bytes
from ansible.parsing.vault import match_encrypt_secret
from ansible.plugins.action import ActionBase

from ansible_collections.ceops.exchange_oauth.plugins.plugin_utils import secret_store

ARGUMENT_SPEC = dict(
    path=dict(type="path", required=True),
    state=dict(type="str", choices=["read", "update"], default="read"),
    add=dict(type="list", elements="dict", default=[]),
    remove_key_ids=dict(type="list", elements="str", default=[]),
    ce_tenants=dict(type="list", elements="str"),
    vault_id=dict(type="str"),
)
FACT = "ceops_secret_store_entries"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self.validate_argument_spec(ARGUMENT_SPEC)[1]
        try:
            path = secret_store.store_path(args["path"])
            encrypt = self.encrypter(path, args.get("vault_id"))
            if args["state"] == "read":
                entries = secret_store.for_ce_tenants(secret_store.read(path, self.decrypt), args.get("ce_tenants"))
                # The values go to the run's facts only: this result is never shown (it is no_log whatever the task says).
                result.update(changed=False, path=path, entries=len(entries), _ansible_no_log=True,
                              key_ids=[e["key_id"] for e in entries], ansible_facts={FACT: entries})
                return result
            report = secret_store.update(path, self.decrypt, encrypt, args["add"], args["remove_key_ids"], self._task.check_mode)
        except secret_store.StoreError as error:
            result.update(failed=True, msg=str(error))
            return result
        result.update(changed=report["changed"], path=path, entries=report["entries"],
                      added=report["added"], replaced=report["replaced"], removed=report["removed"])
        if self._task.diff and report["changed"]:
            result["diff"] = {"before_header": path, "after_header": path,
                              "before": "".join(line(e) for e in report["before"]), "after": "".join(line(e) for e in report["after"])}
        return result

    def secrets(self):
        return list(getattr(self._loader, "_vault").secrets or [])

    def decrypt(self, raw):
        return getattr(self._loader, "_vault").decrypt(raw)

    def encrypter(self, path, vault_id=None):
        """encrypt(bytes) with the vault secret ``vault_id`` names, else the one ``ansible-vault encrypt`` chooses (the
        configured default encrypt identity, else the best of the run's secrets). Checked before any read, so a run that
        could not keep a new secret stops before it makes one."""
        secrets = self.secrets()
        if not secrets:
            raise secret_store.StoreError(
                "secret store %s: this run has no vault secret to decrypt and encrypt it with: run with --ask-vault-pass or "
                "--vault-id <id>@<password file or prompt> (%s)" % (path, secret_store.WHAT_TO_DO))
        wanted = vault_id or C.DEFAULT_VAULT_ENCRYPT_IDENTITY
        try:
            chosen = match_encrypt_secret(secrets, encrypt_vault_id=wanted)
        except AnsibleError as error:
            chosen, reason = None, str(error).splitlines()[0]
        else:
            reason = "no vault secret matched"
        if not chosen:
            raise secret_store.StoreError(
                "secret store %s: the vault id %r (%s) is not among this run's vault secrets (%s): give it with --vault-id %s@<source>, "
                "or set ceops_secret_store_vault_id to one of them" % (
                    path, wanted, "ceops_secret_store_vault_id" if vault_id else "the default encrypt identity", reason,
                    wanted or "<id>"))
        chosen_id, secret = chosen
        vault = getattr(self._loader, "_vault")
        return lambda plaintext: to_bytes(vault.encrypt(plaintext, secret=secret, vault_id=chosen_id))


def line(entry):
    return "%s %s directory %s app %s '%s'\n" % (entry["ce_tenant"], entry["key_id"], entry["tenant_id"], entry["app_id"], entry["secret_name"])
