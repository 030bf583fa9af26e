"""ceops lab: local HTTPS emulators of Microsoft Entra ID (token endpoint) and Microsoft Graph,
for testing the ceops.exchange_oauth collection without reaching Microsoft.

The lab never imports collection code, and binds 127.0.0.1 only.
"""

__version__ = "0.1.0"
