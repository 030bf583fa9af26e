# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Exchange Online cmdlets over REST: the adminapi InvokeCommand endpoint that the ExchangeOnlineManagement v3 module
itself uses (reference/microsoft-facts.md), with an app-only token from msauth. The endpoint is not officially
documented: everything that knows its shape is in this file."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading
import time

from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import (
    ServiceError, Transport, describe_body, foreign_link_problem, path_segment)
from ansible_collections.ceops.exchange_oauth.plugins.module_utils.exo_errors import (
    ROLE_HINT, ROLE_HINT_SHORT, SERVICE, ExchangeError, connect_hint, exchange_error_parser)

ANCHOR_MAILBOX = "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@%s"
PAGE_SIZE = 1000


class RestRunner:
    """InvokeCommand over HTTPS with the shared Transport (retries, Retry-After, TLS)."""

    name = "rest"
    max_parallelism = 64

    def __init__(self, auth, tenant, transport=None, pool_size=10, token_ttl=240, clock=time.monotonic):
        self.auth = auth
        self.tenant = tenant
        self.endpoint = auth.endpoints["exchange_endpoint"]
        self.transport = transport or Transport(SERVICE, base_url=self.endpoint, ca_path=auth.ca_path,
                                                validate_certs=auth.validate_certs, timeout=auth.timeout,
                                                error_parser=exchange_error_parser)
        if transport is None and pool_size > 10:
            # Parallel mailboxes share this session: a pool smaller than the thread count would
            # drop and reopen TLS connections all the time.
            from requests.adapters import HTTPAdapter
            self.transport.session.mount("https://", HTTPAdapter(pool_connections=1, pool_maxsize=pool_size))
        self.token_ttl = token_ttl
        self.clock = clock
        self._token = None
        self._token_at = 0
        self._lock = threading.Lock()
        self.where = self.endpoint

    def _bearer(self):
        # msauth's file cache serves tokens with more than 5 minutes left; asking it again only after
        # a few minutes keeps threads from reading the cache file for every mailbox.
        with self._lock:
            if self._token is None or self.clock() - self._token_at > self.token_ttl:
                self._token = self.auth.exchange_token()
                self._token_at = self.clock()
            return self._token

    def headers(self):
        return {
            "Authorization": "Bearer " + self._bearer(),
            "X-AnchorMailbox": ANCHOR_MAILBOX % self.tenant,
            "Prefer": "odata.maxpagesize=%d" % PAGE_SIZE,
            "X-ResponseFormat": "json",
            "X-ClientApplication": "ceops.exchange_oauth",
        }

    def invoke(self, cmdlet, parameters):
        body = {"CmdletInput": {"CmdletName": cmdlet, "Parameters": parameters}}
        url = "adminapi/beta/%s/InvokeCommand" % path_segment(self.tenant, SERVICE)
        values, warnings = [], []
        while url:
            try:
                response = self.transport.request("POST", url, expected=(200,), json=body, headers=self.headers())
            except ServiceError as error:
                raise self._error(cmdlet, error)
            try:
                page = response.json()
            except ValueError:
                raise ExchangeError("the answer was not JSON: %s" % describe_body(response), cmdlet=cmdlet, status=response.status_code,
                                    where=self.where)
            values.extend(page.get("value") or [])
            warnings.extend(page.get("@adminapi.warnings") or [])
            # The next page is the same command at another URL (it carries the skip token), on the same endpoint.
            url = page.get("@odata.nextLink")
            problem = url and foreign_link_problem(url, self.endpoint, "the next page link (@odata.nextLink)")
            if problem:
                raise ExchangeError(problem, cmdlet=cmdlet, fatal=True, where=self.where,
                                    hint="check exchange_endpoint: it must be the endpoint that serves this directory")
        return values, warnings

    def _error(self, cmdlet, error):
        fatal = error.status in (401, 403) or error.status is None or error.status == 429
        hint = error.hint
        if error.status in (401, 403):
            hint = (ROLE_HINT % (self.auth.client_id, self.tenant) if connect_hint(error.message) == ROLE_HINT_SHORT or error.status == 403
                    else "the token was refused: check that tenant_id, cloud and exchange_endpoint belong together")
        return ExchangeError(error.message, cmdlet=cmdlet, error_type=error.code, status=error.status, request_id=error.request_id,
                             details=error.details, hint=hint, fatal=fatal, where=None if error.status else self.where)
