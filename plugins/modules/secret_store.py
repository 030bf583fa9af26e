# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# The documentation of an action that runs on the controller only (plugins/action/secret_store.py), as
# ansible.builtin.set_fact's: there is no module code.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: secret_store
short_description: Keep the client secrets made for CE in a file encrypted with Ansible Vault
version_added: 0.2.0
description:
  - The collection's secret store (docs/lifecycle.md), set with C(ceops_secret_store) - one YAML file, encrypted as a whole with
    Ansible Vault (C(ansible-vault view) opens it), holding one entry per client secret the collection made for a CE tenant
    (directory, app, key id, secret name, CE tenant, start, end, value), so that later runs find CE's secret.
  - O(state=read) returns the entries of the CE tenants O(ce_tenants) as the fact C(ceops_secret_store_entries); the result is
    never shown (it is C(no_log) whatever the task says). A store file that does not exist yet is an empty store.
  - O(state=update) adds O(add) and removes O(remove_key_ids) under an exclusive lock on C(<path>.lock) (a read-modify-write,
    so writers at once - the app leads of one run, two runs - never lose each other's entries), and writes the file
    atomically (a 0600 temporary file in its directory, synced, then renamed over it) only when its entries change.
  - Runs on the controller with the run's vault secrets; decrypts with any of them, encrypts with the one O(vault_id) names,
    else the one C(ansible-vault encrypt) would choose (the configured default encrypt identity, else the first of the run's
    secrets). A run without a vault secret fails and says to give one with C(--ask-vault-pass) or C(--vault-id).
  - A store that exists but is not encrypted with Ansible Vault, is a symbolic link or is not a regular file is refused, with the
    path and what to do; it is never read nor written.
author:
  - CE Ops automation team (@ceops)
attributes:
  check_mode:
    description: Reads the store and reports what an update would add and remove; writes nothing.
    support: full
  diff_mode:
    description: The entries before and after, by CE tenant, key id, directory, app and secret name; never a value.
    support: full
  platform:
    description: Runs on the controller only (an action plugin), with the run's vault secrets.
    support: full
    platforms: controller
options:
  path:
    description:
      - The store file (C(ceops_secret_store)); C(~) is expanded, a relative path is taken from the controller's working
        directory. Its directory must be writable by the run for an update (the temporary file and the lock file live there).
    type: path
    required: true
  state:
    description:
      - V(read) returns the entries as a fact; V(update) adds and removes entries.
    type: str
    choices: [read, update]
    default: read
  add:
    description:
      - Entries to add (or replace, by key id), each with C(tenant_id), C(app_id), C(key_id), C(secret_name), C(ce_tenant),
        C(client_secret) and optionally C(start_date_time) and C(end_date_time).
    type: list
    elements: dict
    default: []
  remove_key_ids:
    description:
      - Key ids of the entries to remove (secrets retired, removed, or no longer in their app).
    type: list
    elements: str
    default: []
  ce_tenants:
    description:
      - With O(state=read), the CE tenants (inventory hosts) whose entries to return; all when omitted.
    type: list
    elements: str
  vault_id:
    description:
      - The vault id to encrypt with (C(ceops_secret_store_vault_id)); it must be among the run's vault secrets.
    type: str
notes:
  - The values are in the fact C(ceops_secret_store_entries) and in the task arguments of an update - never print them.
seealso:
  - module: ceops.exchange_oauth.azuread_app
'''

EXAMPLES = r'''
- name: Read the secret store once for the run
  ceops.exchange_oauth.secret_store:
    path: "{{ ceops_secret_store }}"
    ce_tenants: "{{ ansible_play_hosts }}"
  run_once: true
  no_log: true

- name: Keep a new secret and forget a retired one
  ceops.exchange_oauth.secret_store:
    path: /var/lib/ceops/secret-store.yml
    state: update
    add:
      - tenant_id: 6f1c2d3e-1a2b-4c5d-8e9f-0a1b2c3d4e51
        app_id: 11111111-2222-3333-4444-555555555555
        key_id: 0d6c7c3e-9a0b-4d41-8f3b-3b1a6a0e2f10
        secret_name: CE mailbox access (acme)
        ce_tenant: acme
        start_date_time: "2026-12-07T12:00:00Z"
        end_date_time: "2027-12-07T12:00:00Z"
        client_secret: "{{ new_secret }}"
    remove_key_ids:
      - 5b3e1f0a-7c2d-4e8b-9a61-2f4d8c0b1e33
'''

RETURN = r'''
path:
  description: The store's absolute path.
  returned: always
  type: str
entries:
  description: How many entries the store holds (read - of the CE tenants asked for; update - after the update).
  returned: success
  type: int
key_ids:
  description: With O(state=read), the key ids of the entries read.
  returned: state is read
  type: list
  elements: str
added:
  description: The entries added (CE tenant, key id, directory, app, secret name - never the value).
  returned: state is update
  type: list
  elements: dict
replaced:
  description: The entries whose content changed for the same key id (described as C(added)).
  returned: state is update
  type: list
  elements: dict
removed:
  description: The entries removed (described as C(added)).
  returned: state is update
  type: list
  elements: dict
ansible_facts:
  description: With O(state=read), C(ceops_secret_store_entries), the entries with their values.
  returned: state is read
  type: dict
'''
