# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Exchange Online's errors, the same whichever transport ran the cmdlet: the exception type and text Exchange
reported (unwrapped from its nested shapes), whether it would hit every further cmdlet alike, and what to do."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.ceops.exchange_oauth.plugins.module_utils._http import ServiceError, error_object

SERVICE = "Exchange Online"

ROLE_HINT_SHORT = ("the automation identity needs both the Office 365 Exchange Online application permission Exchange.ManageAsApp "
                   "with admin consent AND the Entra role Exchange Administrator; role changes can take up to an hour to reach Exchange")
ROLE_HINT = ("the automation identity (client_id %s) needs both the Office 365 Exchange Online application permission "
             "Exchange.ManageAsApp with admin consent AND the Entra role Exchange Administrator in directory %s; "
             "role changes can take up to an hour to reach Exchange")

_TYPED_MESSAGE = re.compile(r"^\s*[A-Za-z0-9]*\|([\w.`+]+)\|(.*)$", re.S)
# Outer messages that say nothing about the cause.
_GENERIC_MESSAGE = re.compile(r"^(Invalid Operation|Error executing cmdlet|Exception of type '[^']*' was thrown\.)$")


# -- errors ---------------------------------------------------------------------------------------
class ExchangeError(ServiceError):
    """Exchange refused a cmdlet, or the transport could not run it.

    ``code`` is the short exception type Exchange reported (e.g. ManagementObjectNotFoundException),
    ``fatal`` marks failures that would hit every further cmdlet alike (credentials, roles, an
    unreachable host), so a caller working through a list can stop instead of repeating them.
    """

    def __init__(self, message, cmdlet=None, error_type=None, category=None, fatal=False, where=None, **kwargs):
        kwargs.setdefault("code", short_type(error_type))
        super(ExchangeError, self).__init__(SERVICE, message, **kwargs)
        self.cmdlet = cmdlet
        self.error_type = error_type
        self.category = category
        self.fatal = fatal
        self.where = where

    def describe(self):
        parts = []
        head = "%s %s" % (SERVICE, self.cmdlet) if self.cmdlet else SERVICE
        if self.where:
            head += " (%s)" % self.where
        if self.status is not None:
            head += " answered HTTP %s" % self.status
        else:
            head += " failed"
        parts.append("%s: %s" % (head, self.message))
        if self.request_id:
            parts.append("request id %s" % self.request_id)
        if self.hint:
            parts.append(self.hint)
        return "; ".join(parts)


def short_type(error_type):
    return error_type.rsplit(".", 1)[-1] if error_type else None


def split_exchange_message(text):
    """(exception type, message) from Exchange's "Ex6F9304|Some.Exception|The text" style messages."""
    text = (text or "").strip()
    match = _TYPED_MESSAGE.match(text)
    if match:
        return match.group(1), match.group(2).strip()
    return None, text


def exchange_error_parser(response):
    """Exchange's outer message is usually just "Invalid Operation"; the real one is nested.

    Cmdlet errors carry "<code>|<type>|<text>" in error.details[0].message (the internal exception
    then only says "Exception of type ... was thrown."); binding errors carry the text in
    error.innererror.internalexception.message; authorization errors in error.message.
    """
    error, unparsed = error_object(response)
    if error is None:
        return unparsed
    inner = error.get("innererror") or error.get("innerError") or {}
    internal = inner.get("internalexception") or inner.get("internalException") or {}
    details = error.get("details") or []
    detail = details[0].get("message") if details and isinstance(details[0], dict) else None
    candidates = [(detail, None), (internal.get("message"), internal.get("type")), (inner.get("message"), None), (error.get("message"), None)]
    for text, text_type in candidates:
        error_type, message = split_exchange_message(text)
        if error_type:
            return error_type, message, inner.get("request-id"), details
    for text, text_type in candidates:
        if text and not _GENERIC_MESSAGE.match(text.strip()):
            return text_type, text.strip(), inner.get("request-id"), details
    return None, (error.get("message") or "").strip(), inner.get("request-id"), details


def is_not_found(error):
    return (error.code == "ManagementObjectNotFoundException" or "couldn't be found" in (error.message or "")
            or "could not be found" in (error.message or ""))


def is_existing_permission(error):
    return "existing permission entry was found" in (error.message or "")


def is_absent_permission(text):
    """Exchange warns (it does not fail) when Remove-MailboxPermission finds no entry to remove."""
    return any(words in (text or "") for words in ("already absent", "isn't present", "doesn't exist on the object", "and was ignored"))


def is_user_not_replicated(error):
    """-User names a principal the mailbox's servers do not know yet (replication after New-ServicePrincipal)."""
    return "wasn't found" in (error.message or "") and error.cmdlet in ("Add-MailboxPermission", "Remove-MailboxPermission")


def is_existing_service_principal(error):
    """New-ServicePrincipal for an app or object id Exchange already has: ADObjectAlreadyExistsException ("The object
    '...' already exists.") for the object id, or "A service principal with AppId '...' already exists" for the app."""
    return error.cmdlet == "New-ServicePrincipal" and (error.code == "ADObjectAlreadyExistsException" or "already exists" in (error.message or ""))


def is_entra_sp_not_found(error):
    """New-ServicePrincipal could not find the pair in Entra: a wrong id, or one Exchange does not see yet."""
    return error.cmdlet == "New-ServicePrincipal" and "couldn't be found in Microsoft Entra ID" in (error.message or "")


def connect_hint(message):
    """What to do about a refused app-only connection (Connect-ExchangeOnline or a 401 over REST)."""
    message = message or ""
    if message == "UnAuthorized" or "role assigned to application" in message or "is not recognized as" in message \
            or "not allowed to call" in message:
        return ROLE_HINT_SHORT
    if "certificate" in message.lower() or "AADSTS700027" in message:
        return ("winrm.certificate_thumbprint must be the thumbprint of a certificate registered on the automation identity's app, "
                "installed with its private key in the WinRM user's store (Cert:\\CurrentUser\\My) on the management host")
    if message.startswith("AADSTS"):
        return "check tenant_id (or winrm.organization) and client_id: they must name the automation identity's directory and app"
    return None
