# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ceops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exo_service_principal module, run in Ansible's worker process on a local connection (plugins/plugin_utils/in_process.py)."""

from __future__ import annotations

from ansible_collections.ceops.exchange_oauth.plugins.plugin_utils.in_process import InProcessAction


class ActionModule(InProcessAction):
    uses_automation_identity = True  # a certificate or a managed identity needs msal
