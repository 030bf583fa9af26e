"""Exchange Online as the lab emulates it: per-directory mailboxes, Exchange's own service
principal objects and mailbox permissions, the cmdlets the collection runs, and the app-only
authorization rules. Shared by both transports: the REST InvokeCommand service (exchange.py)
and the management host behind the WS-Management endpoint, whose PowerShell scripts call them (winrm_host.py).

State lives on each Directory object of the shared World (attribute `exchange`, created on first
use from the directory's seeded `mailboxes`), so Graph and Exchange see the same directories,
everything is guarded by World.lock, and World.reset() (a new Directory per tenant) resets it.

Behaviour worth knowing (and what a client must cope with):

* Exchange keeps its OWN service principal objects (New-ServicePrincipal); they reference an Entra
  service principal by AppId + ObjectId. By default the lab validates the pair against the
  directory (the ObjectId must be the *service principal's* id for that AppId; the application
  object's id is refused). `validate_service_principals: false` (admin setting) makes Exchange
  accept any pair, as older Exchange builds did, so a client's own guard can be tested.
* An Exchange service principal's Identity and Name are its ObjectId; Get-MailboxPermission shows
  such a principal in `User` as that Identity (the ObjectId). Mailbox users show as their UPN,
  built-in principals as "NT AUTHORITY\\SELF", "<FOREST>\\Domain Admins" and so on.
* Every mailbox carries realistic default entries: NT AUTHORITY\\SELF (explicit) and inherited
  Allow AND Deny FullAccess entries of administrative groups. Clients must look at IsInherited and
  Deny, or better filter server-side with -User.
* Permission entries reference principals by SID. Removing an Exchange service principal leaves
  its entries orphaned: hidden from Get-MailboxPermission unless -IncludeUnresolvedPermissions (then
  `User` is the SID); re-creating the principal gives it a new SID, so FullAccess must be granted
  again, as in Exchange.
* A new Exchange service principal, and an Entra service principal newly created in Graph, stay
  invisible to the lookups that replicate (Add-/Remove-/Get-MailboxPermission -User, and the
  Entra check of New-ServicePrincipal) for the consistency window (directory setting, then the
  "exchange" fault option, then the start option).

Errors are CmdletError; each transport renders them in its own shape (see exchange.py, winrm_host.py).
"""

import fnmatch
import hashlib
import re
import time
import uuid

from . import journal
from .provenance import tag_of

EXCHANGE_RESOURCE = "exchange"  # key of the Exchange resource service principal in the seed
MANAGE_AS_APP = "Exchange.ManageAsApp"
# Entra directory roles that Exchange maps to management roles for app-only access.
FULL_ROLES = ("Exchange Administrator", "Global Administrator")
READ_ROLES = ("Global Reader",)
ROLE_NOT_SUPPORTED = ("The role assigned to application %s isn't supported in this scenario. Please check online documentation "
                      "for assigning correct Directory Roles to Azure AD Application for EXO App-Only Authentication.")

NOT_FOUND_TYPE = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"
AMBIGUOUS_TYPE = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectAmbiguousException"
TASK_TYPE = "Microsoft.Exchange.Configuration.Tasks.TaskException"
ARGUMENT_TYPE = "Microsoft.Exchange.Configuration.Tasks.TaskArgumentException"
ALREADY_EXISTS_TYPE = "Microsoft.Exchange.Data.Directory.ADObjectAlreadyExistsException"
BINDING_TYPE = "System.Management.Automation.ParameterBindingException"
COMMAND_NOT_FOUND_TYPE = "System.Management.Automation.CommandNotFoundException"

MAILBOX_RIGHTS = ("ChangeOwner", "ChangePermission", "DeleteItem", "ExternalAccount", "FullAccess", "ReadPermission")
INHERITANCE_TYPES = ("None", "All", "Descendents", "SelfAndChildren", "Children")
DEFAULT_RESULT_SIZE = 1000
MORE_RESULTS_WARNING = "There are more results available than are currently displayed. To view them, increase the value for the ResultSize parameter."
SERVICE_ID_WARNING = "The ServiceId parameter is deprecated and will be removed in a future release. Use the ObjectId parameter instead."
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class CmdletError(Exception):
    """A cmdlet (or its authorization) failed.

    kind: "cmdlet"   an error of the cmdlet itself (details carry "<code>|<type>|<text>")
          "binding"  PowerShell parameter binding (text only in innererror.internalexception)
          "auth"     app-only authorization (HTTP 401, message at the top level)
    """

    def __init__(self, message, type_name=TASK_TYPE, kind="cmdlet", code="", status=400, category="NotSpecified"):
        super().__init__(message)
        self.message = message
        self.type_name = type_name
        self.kind = kind
        self.code = code
        self.status = status
        self.category = category

    @property
    def prefixed(self):
        """The text as Exchange reports it in error.details[].message and as the module throws it."""
        if self.kind == "cmdlet":
            return "%s|%s|%s" % (self.code, self.type_name, self.message)
        return self.message


def not_found(identity, org):
    return CmdletError("The operation couldn't be performed because object '%s' couldn't be found on '%s'." % (identity, org.server),
                       NOT_FOUND_TYPE, code="Ex6F9304", status=404)


def ambiguous(identity):
    return CmdletError("The operation couldn't be performed because '%s' matches multiple entries." % identity, AMBIGUOUS_TYPE)


def user_not_found(user):
    return CmdletError('User or group "%s" wasn\'t found. Please make sure you\'ve typed it correctly.' % user, NOT_FOUND_TYPE,
                       code="Ex6F9304", status=404)


def binding_error(message, category="InvalidArgument"):
    return CmdletError(message, BINDING_TYPE, kind="binding", category=category)


def auth_error(message):
    return CmdletError(message, "Microsoft.Exchange.Admin.OData.Core.ODataServiceException", kind="auth", status=401,
                       category="AuthenticationError")


# ----- naming helpers -----------------------------------------------------------------------------------
def _stable_int(*parts):
    return int.from_bytes(hashlib.sha256("|".join(parts).encode("utf-8")).digest()[:8], "big")


def _stable_guid(*parts):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "ceops-lab/exchange/" + "/".join(parts)))


def _display_name(local_part):
    words = [w for w in re.split(r"[-_.]+", local_part) if w]
    return " ".join(w.upper() if len(w) <= 2 else w.capitalize() for w in words) or local_part


class Organization:
    """One directory's Exchange Online organization. Methods assume World.lock is held."""

    def __init__(self, directory):
        self.directory = directory
        self.domain = directory.domain
        seed = _stable_int(directory.tenant_id)
        self.forest = "EURPR%02dA%03d" % (seed % 9 + 1, seed // 9 % 20 + 1)
        self.server = "%sDC%03d.%s.PROD.OUTLOOK.COM" % (self.forest.replace("EURPR", "AM0PR"), seed // 180 % 12 + 1, self.forest)
        self.domain_sid = "S-1-5-21-%d-%d-%d" % (seed % 4000000000, seed // 7 % 4000000000, seed // 13 % 4000000000)
        self.validate_service_principals = True
        self.mailboxes = []
        self.service_principals = []
        # sid -> ("builtin", label) | ("mailbox", mailbox) | ("sp", service principal)
        self.principals = {}
        self._next_rid = 5000
        builtin = {"S-1-5-10": "NT AUTHORITY\\SELF", "S-1-5-18": "NT AUTHORITY\\SYSTEM", "S-1-5-20": "NT AUTHORITY\\NETWORK SERVICE"}
        for sid, label in builtin.items():
            self.principals[sid] = ("builtin", label)
        self.group_sids = {}
        for rid, name in ((500, "Administrator"), (512, "Domain Admins"), (519, "Enterprise Admins"), (1101, "Organization Management"),
                          (1102, "Exchange Servers"), (1103, "Exchange Trusted Subsystem"), (1104, "Managed Availability Servers")):
            sid = "%s-%d" % (self.domain_sid, rid)
            self.principals[sid] = ("builtin", "%s\\%s" % (self.forest, name))
            self.group_sids[name] = sid
        for index, address in enumerate(directory.mailboxes):
            self.mailboxes.append(self._new_mailbox(address, index))

    # ----- objects ----------------------------------------------------------------------------------
    def _new_sid(self):
        self._next_rid += 1 + _stable_int(self.domain_sid, str(self._next_rid)) % 7
        return "%s-%d" % (self.domain_sid, self._next_rid)

    def _dn(self, name):
        return "CN=%s,OU=%s,OU=Microsoft Exchange Hosted Organizations,DC=%s,DC=PROD,DC=OUTLOOK,DC=COM" % (name, self.domain, self.forest)

    def _new_mailbox(self, address, index):
        local, _, domain = address.partition("@")
        name = local
        tenant_label = self.domain.split(".")[0]
        mailbox = {
            "Identity": name,
            "Name": name,
            "Alias": local,
            "DisplayName": _display_name(local),
            "PrimarySmtpAddress": address,
            "UserPrincipalName": address,
            "WindowsEmailAddress": address,
            "EmailAddresses": ["SMTP:%s" % address, "smtp:%s@%s.mail.onmicrosoft.com" % (local, tenant_label)],
            "RecipientType": "UserMailbox",
            # Every third seeded mailbox is a shared mailbox, as CE's functional mailboxes often are.
            "RecipientTypeDetails": "SharedMailbox" if index % 3 == 2 else "UserMailbox",
            "ExchangeGuid": _stable_guid(self.directory.tenant_id, "exchange-guid", address),
            "Guid": _stable_guid(self.directory.tenant_id, "guid", address),
            "ExternalDirectoryObjectId": _stable_guid(self.directory.tenant_id, "user", address),
            "DistinguishedName": self._dn(name),
            "OrganizationalUnit": "%s.PROD.OUTLOOK.COM/Microsoft Exchange Hosted Organizations/%s" % (self.forest.lower(), self.domain),
            "IsMailboxEnabled": True,
            "HiddenFromAddressListsEnabled": False,
            "WhenCreated": "2025-01-01T00:00:00Z",
        }
        sid = "%s-%d" % (self.domain_sid, 2000 + index)
        mailbox["_sid"] = sid
        self.principals[sid] = ("mailbox", mailbox)
        groups = self.group_sids
        entry = new_entry
        mailbox["_acl"] = [
            entry("S-1-5-10", ["FullAccess", "ReadPermission"]),
            entry(groups["Administrator"], ["FullAccess"], deny=True, inherited=True),
            entry(groups["Domain Admins"], ["FullAccess"], deny=True, inherited=True),
            entry(groups["Enterprise Admins"], ["FullAccess"], deny=True, inherited=True),
            entry(groups["Organization Management"], ["FullAccess"], deny=True, inherited=True),
            entry("S-1-5-18", ["FullAccess"], inherited=True),
            entry("S-1-5-20", ["ReadPermission"], inherited=True),
            entry(groups["Administrator"], ["FullAccess", "DeleteItem", "ReadPermission", "ChangePermission", "ChangeOwner"], inherited=True),
            entry(groups["Domain Admins"], ["FullAccess", "DeleteItem", "ReadPermission", "ChangePermission", "ChangeOwner"], inherited=True),
            entry(groups["Enterprise Admins"], ["FullAccess", "DeleteItem", "ReadPermission", "ChangePermission", "ChangeOwner"], inherited=True),
            entry(groups["Organization Management"], ["FullAccess", "DeleteItem", "ReadPermission", "ChangePermission", "ChangeOwner"],
                  inherited=True),
            entry(groups["Exchange Servers"], ["FullAccess", "ReadPermission"], inherited=True),
            entry(groups["Exchange Trusted Subsystem"], ["FullAccess", "DeleteItem", "ReadPermission", "ChangePermission", "ChangeOwner"],
                  inherited=True),
            entry(groups["Managed Availability Servers"], ["ReadPermission"], inherited=True),
        ]
        return mailbox

    def new_service_principal(self, app_id, object_id, display_name):
        sp = {
            "Identity": object_id,
            "Name": object_id,
            "DisplayName": display_name,
            "AppId": app_id,
            "ObjectId": object_id,
            "ExchangeObjectId": str(uuid.uuid4()),
            "DistinguishedName": self._dn(object_id),
            "Organization": self.domain,
            "_sid": self._new_sid(),
            "_created": time.monotonic(),
        }
        self.principals[sp["_sid"]] = ("sp", sp)
        self.service_principals.append(sp)
        return sp

    def remove_service_principal(self, sp):
        self.service_principals = [s for s in self.service_principals if s is not sp]
        # Entries keep the SID; it no longer resolves (an orphaned ACE, as in Exchange).
        self.principals.pop(sp["_sid"], None)

    # ----- views --------------------------------------------------------------------------------------
    def principal_label(self, sid):
        found = self.principals.get(sid)
        if found is None:
            return None
        kind, obj = found
        if kind == "builtin":
            return obj
        if kind == "mailbox":
            return obj["UserPrincipalName"]
        return obj["Identity"]

    def render_mailbox(self, mailbox):
        view = {k: (list(v) if isinstance(v, list) else v) for k, v in mailbox.items() if not k.startswith("_")}
        view["EmailAddresses@odata.type"] = "#Collection(String)"
        return view

    def render_sp(self, sp):
        return {k: v for k, v in sp.items() if not k.startswith("_")}

    def render_entry(self, mailbox, entry, label=None):
        label = label if label is not None else (self.principal_label(entry["sid"]) or entry["sid"])
        return {
            "Identity": mailbox["Identity"],
            "User": label,
            "UserSid": entry["sid"],
            "AccessRights": list(entry["rights"]),
            "AccessRights@odata.type": "#Collection(String)",
            "IsInherited": entry["inherited"],
            "Deny": entry["deny"],
            "InheritanceType": entry["inheritance"],
            "IsValid": True,
            "ObjectState": "Unchanged",
        }

    def snapshot(self):
        return {
            "domain": self.domain,
            "server": self.server,
            "validate_service_principals": self.validate_service_principals,
            "mailboxes": [dict(self.render_mailbox(m), permissions=[self.render_entry(m, e) for e in m["_acl"]]) for m in self.mailboxes],
            "service_principals": [dict(self.render_sp(s), Sid=s["_sid"]) for s in self.service_principals],
        }


def new_entry(sid, rights, deny=False, inherited=False, inheritance="All"):
    return {"sid": sid, "rights": _ordered_rights(rights), "deny": bool(deny), "inherited": bool(inherited), "inheritance": inheritance}


def _ordered_rights(rights):
    """Rights in Exchange's display order (FullAccess first), without duplicates."""
    order = ["FullAccess", "SendAs", "ExternalAccount", "DeleteItem", "ReadPermission", "ChangePermission", "ChangeOwner"]
    unique = []
    for right in rights:
        if right not in unique:
            unique.append(right)
    return sorted(unique, key=lambda r: order.index(r) if r in order else len(order))


def organization(directory):
    """The Exchange organization of a directory, created on first use (caller holds World.lock)."""
    org = directory.__dict__.get("exchange")
    if org is None:
        org = Organization(directory)
        directory.exchange = org
    return org


# ----- authorization ----------------------------------------------------------------------------------------
def check_app_access(lab, directory, service_principal, roles, cmdlet=None):
    """Exchange's app-only checks after the token: the Exchange.ManageAsApp app role, then an
    Entra directory role Exchange maps to a management role, then that role's cmdlets.
    `roles` are the app roles the caller holds (the token's roles claim)."""
    app_id = service_principal["appId"]
    if MANAGE_AS_APP not in (roles or []):
        raise auth_error("UnAuthorized")
    held = set(service_principal.get("_directory_roles") or [])
    if not held & set(FULL_ROLES + READ_ROLES):
        raise auth_error(ROLE_NOT_SUPPORTED % app_id)
    if cmdlet is not None and not held & set(FULL_ROLES) and not cmdlet.startswith("Get-"):
        raise auth_error("User is not allowed to call %s" % cmdlet)


# ----- parameter binding ------------------------------------------------------------------------------------
COMMON_PARAMETERS = ("ErrorAction", "WarningAction", "InformationAction", "Verbose", "Debug", "ErrorVariable", "WarningVariable",
                     "InformationVariable", "OutVariable", "OutBuffer", "PipelineVariable")
SHOULD_PROCESS = {"Confirm": "switch", "WhatIf": "switch"}


def _to_text(name, value):
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
            return value[0]
        raise binding_error("Cannot bind parameter '%s'. Cannot convert the \"%s\" value of type \"%s\" to type \"System.String\"."
                            % (name, value, _ps_type(value)))
    return str(value)


def _ps_type(value):
    if isinstance(value, bool):
        return "System.Boolean"
    if isinstance(value, int):
        return "System.Int32"
    if isinstance(value, float):
        return "System.Double"
    if isinstance(value, list):
        return "System.Object[]"
    if isinstance(value, dict):
        return "System.Management.Automation.PSCustomObject"
    return "System.String"


def _to_bool(name, value, switch=False):
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value != 0
    target = "System.Management.Automation.SwitchParameter" if switch else "System.Boolean"
    raise binding_error("Cannot process argument transformation on parameter '%s'. Cannot convert value \"%s\" to type \"%s\". "
                        "Boolean parameters accept only Boolean values and numbers, such as $True, $False, 1 or 0."
                        % (name, _ps_type(value), target))


def _to_enum_list(name, value, allowed, type_name):
    items = value if isinstance(value, list) else [value]
    result = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            match = next((a for a in allowed if a.lower() == part.lower()), None)
            if match is None:
                raise binding_error("Cannot bind parameter '%s'. Cannot convert value \"%s\" to type \"%s\". Error: \"Unable to match the "
                                    "identifier name %s to a valid enumerator name. Specify one of the following enumerator names and try "
                                    "again:\r\n%s\"" % (name, part, type_name, part, ", ".join(allowed)))
            result.append(match)
    if not result:
        raise binding_error("Cannot validate argument on parameter '%s'. The argument is null or empty. Provide an argument that is not "
                            "null or empty, and then try the command again." % name, category="InvalidData")
    return result


def _to_enum(name, value, allowed, type_name):
    values = _to_enum_list(name, value, allowed, type_name)
    if len(values) != 1:
        raise binding_error("Cannot convert 'System.Object[]' to the type '%s' required by parameter '%s'. Specified method is not "
                            "supported." % (type_name, name))
    return values[0]


def _to_result_size(name, value):
    if isinstance(value, str) and value.strip().lower() == "unlimited":
        return None
    try:
        number = int(value)
        if isinstance(value, bool) or number < 1:
            raise ValueError(value)
        return number
    except (TypeError, ValueError):
        raise binding_error("Cannot process argument transformation on parameter '%s'. Cannot convert value \"%s\" to type "
                            "\"Microsoft.Exchange.Data.Unlimited`1[System.UInt32]\". Error: \"Invalid unlimited value: %s\""
                            % (name, value, value)) from None


def _convert(name, kind, value):
    if kind == "string":
        return _to_text(name, value)
    if kind == "bool":
        return _to_bool(name, value)
    if kind == "switch":
        return _to_bool(name, value, switch=True)
    if kind == "rights":
        return _to_enum_list(name, value, MAILBOX_RIGHTS, "Microsoft.Exchange.Management.RecipientTasks.MailboxRights[]")
    if kind == "inheritance":
        return _to_enum(name, value, INHERITANCE_TYPES, "System.DirectoryServices.ActiveDirectorySecurityInheritance")
    if kind == "resultsize":
        return _to_result_size(name, value)
    if kind == "strings":
        items = value if isinstance(value, list) else [value]
        return [_to_text(name, v) for v in items]
    return value  # "any"


class Cmdlet:
    def __init__(self, name, parameters, mandatory=(), should_process=False, handler=None):
        self.name = name
        self.parameters = dict(parameters)
        if should_process:
            self.parameters.update(SHOULD_PROCESS)
        for common in COMMON_PARAMETERS:
            self.parameters.setdefault(common, "any")
        self.mandatory = mandatory
        self.handler = handler

    @property
    def is_read(self):
        return self.name.startswith("Get-")

    def bind(self, raw):
        """Bind named parameters as PowerShell does: case-insensitive, unique prefixes allowed."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise binding_error("Cannot bind parameters: Parameters must be a set of name/value pairs.")
        bound = {}
        for given, value in raw.items():
            if "@odata." in str(given):
                continue  # OData annotations ("@odata.type", "AccessRights@odata.type") are not parameters
            key = str(given).lstrip("-")
            exact = [p for p in self.parameters if p.lower() == key.lower()]
            candidates = exact or [p for p in self.parameters if p.lower().startswith(key.lower())] if key else []
            if not candidates:
                raise binding_error("A parameter cannot be found that matches parameter name '%s'." % key)
            if len(candidates) > 1:
                raise binding_error("Parameter cannot be processed because the parameter name '%s' is ambiguous. Possible matches include: "
                                    "%s." % (key, " ".join("-" + c for c in candidates)))
            name = candidates[0]
            if name in bound:
                raise binding_error("Cannot bind parameter because parameter '%s' is specified more than once. To provide multiple values "
                                    "to parameters that can accept multiple values, use the array syntax. For example, \"-parameter "
                                    "value1,value2,value3\"." % name)
            bound[name] = _convert(name, self.parameters[name], value)
        missing = [m for m in self.mandatory if m not in bound]
        if missing:
            raise binding_error("Cannot process command because of one or more missing mandatory parameters: %s." % " ".join(missing))
        return bound


class Result:
    def __init__(self, value=None, warnings=None):
        self.value = list(value or [])
        self.warnings = list(warnings or [])


# ----- the cmdlets ---------------------------------------------------------------------------------------------
class Session:
    """One authorized caller running cmdlets against one organization (caller holds World.lock)."""

    def __init__(self, lab, directory):
        self.lab = lab
        self.directory = directory
        self.org = organization(directory)

    def _fresh(self, obj):
        return self.lab.is_fresh(obj, self.directory, "exchange")

    # lookups ------------------------------------------------------------------------------------------
    def find_mailbox(self, identity):
        wanted = identity.strip().lower()
        if wanted.startswith("smtp:"):
            wanted = wanted[5:]
        found = []
        for mailbox in self.org.mailboxes:
            keys = [mailbox[k] for k in ("Identity", "Name", "Alias", "PrimarySmtpAddress", "UserPrincipalName", "Guid", "ExchangeGuid",
                                         "ExternalDirectoryObjectId", "DistinguishedName")]
            keys += [a.split(":", 1)[1] for a in mailbox["EmailAddresses"]]
            if wanted in (k.lower() for k in keys):
                found.append(mailbox)
        if not found:
            raise not_found(identity, self.org)
        if len(found) > 1:
            raise ambiguous(identity)
        return found[0]

    def find_sp(self, identity, replicated=False):
        wanted = identity.strip().lower()
        found = [sp for sp in self.org.service_principals
                 if wanted in (sp[k].lower() for k in ("Identity", "Name", "AppId", "ObjectId", "ExchangeObjectId", "DistinguishedName"))]
        if replicated:
            found = [sp for sp in found if not self._fresh(sp)]
        if len(found) > 1:
            raise ambiguous(identity)
        return found[0] if found else None

    def resolve_user(self, user):
        """The SID of a -User value: an Exchange service principal, a mailbox user, or a built-in principal."""
        sp = self.find_sp(user, replicated=True)
        if sp is not None:
            return sp["_sid"]
        try:
            return self.find_mailbox(user)["_sid"]
        except CmdletError as exc:
            if exc.type_name == AMBIGUOUS_TYPE:
                raise
        for sid, (kind, obj) in self.org.principals.items():
            if kind == "builtin" and obj.lower() == user.strip().lower():
                return sid
        raise user_not_found(user)

    # Get-Mailbox ----------------------------------------------------------------------------------------
    def get_mailbox(self, params):
        size = params.get("ResultSize", DEFAULT_RESULT_SIZE)
        identity = params.get("Identity")
        if identity is not None and "*" in identity:
            pattern = identity.lower()
            found = [m for m in self.org.mailboxes
                     if any(fnmatch.fnmatchcase(m[k].lower(), pattern) for k in ("Name", "Alias", "PrimarySmtpAddress", "DisplayName"))]
        elif identity is not None:
            found = [self.find_mailbox(identity)]
        else:
            found = list(self.org.mailboxes)
        kinds = params.get("RecipientTypeDetails")
        if kinds:
            found = [m for m in found if m["RecipientTypeDetails"].lower() in (k.lower() for k in kinds)]
        return _limit([self.org.render_mailbox(m) for m in found], size)

    # service principals ------------------------------------------------------------------------------------
    def get_service_principal(self, params):
        identity = params.get("Identity")
        if identity is None:
            return Result([self.org.render_sp(sp) for sp in self.org.service_principals])
        sp = self.find_sp(identity)
        if sp is None:
            raise not_found(identity, self.org)
        return Result([self.org.render_sp(sp)])

    def new_service_principal(self, params):
        warnings = []
        object_id = params.get("ObjectId")
        if "ServiceId" in params:
            warnings.append(SERVICE_ID_WARNING)
            if object_id is not None and object_id.lower() != params["ServiceId"].lower():
                raise binding_error("Parameter set cannot be resolved using the specified named parameters. One or more parameters issued "
                                    "cannot be used together or an insufficient number of parameters were provided.")
            object_id = params["ServiceId"]
        if object_id is None:
            raise binding_error("Cannot process command because of one or more missing mandatory parameters: ObjectId.")
        app_id = params["AppId"]
        self._check_organization(params)
        entra_sp = self.directory.service_principals.get(object_id.lower()) or self.directory.service_principals.get(object_id)
        if self.org.validate_service_principals:
            if (entra_sp is None or self._fresh(entra_sp) or entra_sp["appId"].lower() != app_id.lower()):
                raise CmdletError("The service principal with ObjectId '%s' and AppId '%s' couldn't be found in Microsoft Entra ID for "
                                  "this organization." % (object_id, app_id), ARGUMENT_TYPE)
        for sp in self.org.service_principals:
            if sp["ObjectId"].lower() == object_id.lower():
                note_service_principal(sp, "addressed")
                raise CmdletError("Active Directory operation failed on %s. The object '%s' already exists."
                                  % (self.org.server, sp["DistinguishedName"]), ALREADY_EXISTS_TYPE)
            if sp["AppId"].lower() == app_id.lower():
                note_service_principal(sp, "addressed")
                raise CmdletError("A service principal with AppId '%s' already exists: '%s'." % (app_id, sp["Identity"]), TASK_TYPE)
        if params.get("WhatIf"):
            return Result([], warnings)
        display_name = params.get("DisplayName") or (entra_sp or {}).get("displayName") or app_id
        sp = self.org.new_service_principal(app_id.lower(), object_id.lower(), display_name)
        note_service_principal(sp, "created")
        return Result([self.org.render_sp(sp)], warnings)

    def _check_organization(self, params):
        wanted = params.get("Organization")
        if wanted is not None and wanted.lower() not in (self.directory.tenant_id.lower(), self.directory.domain.lower()):
            raise not_found(wanted, self.org)

    def _existing_sp(self, identity):
        sp = self.find_sp(identity)
        if sp is None:
            raise not_found(identity, self.org)
        note_service_principal(sp, "addressed")
        return sp

    def set_service_principal(self, params):
        sp = self._existing_sp(params["Identity"])
        if params.get("WhatIf"):
            return Result()
        if "DisplayName" in params:
            sp["DisplayName"] = params["DisplayName"]
            note_service_principal(sp, "changed", fields=["DisplayName"])
        return Result()

    def remove_service_principal(self, params):
        sp = self._existing_sp(params["Identity"])
        if not params.get("WhatIf"):
            self.org.remove_service_principal(sp)
            note_service_principal(sp, "deleted")
        return Result()

    # mailbox permissions -------------------------------------------------------------------------------------
    def get_mailbox_permission(self, params):
        mailbox = self.find_mailbox(params["Identity"])
        sid = self.resolve_user(params["User"]) if "User" in params else None
        unresolved = params.get("IncludeUnresolvedPermissions", False)
        rows = []
        for entry in _display_order(mailbox["_acl"]):
            if sid is not None and entry["sid"] != sid:
                continue
            label = self.org.principal_label(entry["sid"])
            if label is None and not unresolved:
                continue
            rows.append(self.org.render_entry(mailbox, entry, label if label is not None else entry["sid"]))
        return _limit(rows, params.get("ResultSize", DEFAULT_RESULT_SIZE))

    def add_mailbox_permission(self, params):
        mailbox = self.find_mailbox(params["Identity"])
        user = params["User"]
        sid = self.resolve_user(user)
        rights = _ordered_rights(params["AccessRights"])
        deny = params.get("Deny", False)
        inheritance = params.get("InheritanceType", "All")
        label = self.org.principal_label(sid)
        existing = next((e for e in mailbox["_acl"] if e["sid"] == sid and not e["inherited"] and e["deny"] == deny
                         and e["inheritance"] == inheritance), None)
        if existing is not None:
            self.note_permission(mailbox, existing, "addressed")
        if existing is not None and set(rights) <= set(existing["rights"]):
            raise CmdletError("An existing permission entry was found for user: %s." % label, TASK_TYPE)
        if params.get("WhatIf"):
            return Result()
        if existing is not None:
            existing["rights"] = _ordered_rights(existing["rights"] + rights)
            self.note_permission(mailbox, existing, "changed", fields=["AccessRights"])
        else:
            created = new_entry(sid, rights, deny=deny, inheritance=inheritance)
            mailbox["_acl"].append(created)
            self.note_permission(mailbox, created, "created")
        added = new_entry(sid, rights, deny=deny, inheritance=inheritance)
        return Result([self.org.render_entry(mailbox, added, label)])

    def remove_mailbox_permission(self, params):
        mailbox = self.find_mailbox(params["Identity"])
        sid = self.resolve_user(params["User"])
        rights = set(params["AccessRights"])
        deny = params.get("Deny", False)
        inheritance = params.get("InheritanceType", "All")
        label = self.org.principal_label(sid)
        explicit = [e for e in mailbox["_acl"] if e["sid"] == sid and not e["inherited"] and e["deny"] == deny
                    and e["inheritance"] == inheritance and rights & set(e["rights"])]
        if not explicit:
            inherited = [e for e in mailbox["_acl"] if e["sid"] == sid and e["inherited"] and rights & set(e["rights"])]
            if inherited:
                warning = ("An inherited access control entry has been specified: [Rights: %s, ControlType: %s]  [Inheritance: %s] "
                           "[Account: %s] [Source: %s] and was ignored on object \"%s\"."
                           % (", ".join(inherited[0]["rights"]), "Deny" if inherited[0]["deny"] else "Allow", inherited[0]["inheritance"],
                              label, self.org.forest, mailbox["DistinguishedName"]))
            else:
                warning = ("Can't remove the access control entry on the object \"%s\" for account \"%s\" because the ACE doesn't exist "
                           "on the object." % (mailbox["DistinguishedName"], label))
            return Result([], [warning])
        for entry in explicit:
            self.note_permission(mailbox, entry, "addressed")
        if not params.get("WhatIf"):
            for entry in explicit:
                entry["rights"] = [r for r in entry["rights"] if r not in rights]
                self.note_permission(mailbox, entry, "changed" if entry["rights"] else "deleted", fields=["AccessRights"])
            mailbox["_acl"] = [e for e in mailbox["_acl"] if e["rights"]]
        return Result()

    def note_permission(self, mailbox, entry, action, fields=None):
        """Journal a mailbox permission entry: "<mailbox>|<principal>|Allow|Deny" (the principal as Exchange shows it)."""
        principal = self.org.principal_label(entry["sid"]) or entry["sid"]
        key = "%s|%s|%s" % (mailbox["PrimarySmtpAddress"].lower(), principal, "Deny" if entry["deny"] else "Allow")
        journal.note("mailbox_permission", key, tag_of(entry), action, fields=fields)


def note_service_principal(sp, action, fields=None):
    journal.note("exchange_service_principal", sp["Identity"], tag_of(sp), action, fields=fields, app_id=sp["AppId"])


def _display_order(acl):
    return [e for e in acl if not e["inherited"]] + [e for e in acl if e["inherited"]]


def _limit(rows, size):
    if size is not None and len(rows) > size:
        return Result(rows[:size], [MORE_RESULTS_WARNING])
    return Result(rows)


CMDLETS = {c.name: c for c in (
    Cmdlet("Get-Mailbox", {"Identity": "string", "ResultSize": "resultsize", "RecipientTypeDetails": "strings"},
           handler=Session.get_mailbox),
    Cmdlet("Get-ServicePrincipal", {"Identity": "string", "Organization": "string"}, handler=Session.get_service_principal),
    Cmdlet("New-ServicePrincipal", {"AppId": "string", "ObjectId": "string", "ServiceId": "string", "DisplayName": "string",
                                    "Organization": "string"},
           mandatory=("AppId",), should_process=True, handler=Session.new_service_principal),
    Cmdlet("Set-ServicePrincipal", {"Identity": "string", "DisplayName": "string", "Organization": "string"},
           mandatory=("Identity",), should_process=True, handler=Session.set_service_principal),
    Cmdlet("Remove-ServicePrincipal", {"Identity": "string", "Organization": "string"},
           mandatory=("Identity",), should_process=True, handler=Session.remove_service_principal),
    Cmdlet("Get-MailboxPermission", {"Identity": "string", "User": "string", "ResultSize": "resultsize",
                                     "IncludeUnresolvedPermissions": "switch", "IncludeSoftDeletedUserPermissions": "switch",
                                     "SoftDeletedMailbox": "switch", "Owner": "switch"},
           mandatory=("Identity",), handler=Session.get_mailbox_permission),
    Cmdlet("Add-MailboxPermission", {"Identity": "string", "User": "string", "AccessRights": "rights", "InheritanceType": "inheritance",
                                     "AutoMapping": "bool", "Deny": "switch", "IgnoreDefaultScope": "switch"},
           mandatory=("Identity", "User", "AccessRights"), should_process=True, handler=Session.add_mailbox_permission),
    Cmdlet("Remove-MailboxPermission", {"Identity": "string", "User": "string", "AccessRights": "rights",
                                        "InheritanceType": "inheritance", "Deny": "switch", "BypassMasterAccountSid": "switch",
                                        "IgnoreDefaultScope": "switch"},
           mandatory=("Identity", "User", "AccessRights"), should_process=True, handler=Session.remove_mailbox_permission),
)}


def lookup_cmdlet(name):
    """The Cmdlet called `name` (case-insensitive), or a CommandNotFoundException CmdletError."""
    wanted = str(name or "")
    cmdlet = next((c for n, c in CMDLETS.items() if n.lower() == wanted.lower()), None)
    if cmdlet is None:
        raise CmdletError("The term '%s' is not recognized as a name of a cmdlet, function, script file, or executable program. Check the "
                          "spelling of the name, or if a path was included, verify that the path is correct and try again." % wanted,
                          COMMAND_NOT_FOUND_TYPE, kind="binding", category="ObjectNotFound")
    return cmdlet


def is_read_cmdlet(name):
    return str(name or "").lower().startswith("get-")


def run_cmdlet(lab, directory, cmdlet, parameters):
    """Bind and run one cmdlet; returns a Result or raises CmdletError (caller holds World.lock and
    has authorized the caller)."""
    bound = cmdlet.bind(parameters)
    session = Session(lab, directory)
    return cmdlet.handler(session, bound)


# ----- admin shortcuts (tests) -----------------------------------------------------------------------------------
def inject_permission(lab, directory, mailbox_identity, user, access_rights, deny=False, inherited=False, inheritance="All"):
    """Add an ACE as if inherited from the organization, or an explicit one, bypassing the cmdlet
    rules. `user` is an Exchange service principal / mailbox identity, or any 'DOMAIN\\name' label."""
    session = Session(lab, directory)
    mailbox = session.find_mailbox(mailbox_identity)
    try:
        sid = session.resolve_user(user)
    except CmdletError:
        if "\\" not in user:
            raise
        sid = "%s-%d" % (session.org.domain_sid, 9000 + len(session.org.principals))
        session.org.principals[sid] = ("builtin", user)
    rights = _to_enum_list("AccessRights", access_rights, MAILBOX_RIGHTS, "MailboxRights[]")
    entry = new_entry(sid, rights, deny=deny, inherited=inherited, inheritance=inheritance)
    mailbox["_acl"].append(entry)
    return session.org.render_entry(mailbox, entry)


def register_service_principal(lab, directory, app_id, object_id, display_name=None):
    """Create an Exchange service principal without the Entra check (seen by permissions at once)."""
    org = organization(directory)
    sp = org.new_service_principal(str(app_id).lower(), str(object_id).lower(), display_name or str(app_id))
    sp["_created"] = 0.0
    return org.render_sp(sp)
