"""The one list of emulated services. To add one (Exchange Online, CE Portal, IMAP, ...):
write a Service subclass in its own module with a unique `name`, and append it here. The Lab
binds it on a free loopback port, counts and logs its requests, applies faults to it, and puts
its URL into lab.json (and whatever it returns from ansible_vars() into lab-vars.yml)."""

from .admin_api import AdminService
from .ce_portal import CePortalService
from .entra import EntraService
from .exchange import ExchangeService
from .graph import GraphService
from .imap import ImapService
from .managed_identity import ManagedIdentityService
from .smtp import SmtpService
from .winrm import WinrmService

SERVICE_CLASSES = [EntraService, GraphService, AdminService, CePortalService, ExchangeService, WinrmService]
# Not HTTP (Service.http = False): they run on their own loopback ports, IMAP as a private Dovecot.
SERVICE_CLASSES += [ImapService, SmtpService]
# The App Service-style managed identity endpoint of each directory (IDENTITY_ENDPOINT / IDENTITY_HEADER).
SERVICE_CLASSES += [ManagedIdentityService]
