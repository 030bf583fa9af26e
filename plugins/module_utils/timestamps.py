# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The RFC 3339 timestamps Graph and the CE Portal give, read and written one way everywhere (modules and the fleet's rules)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime


def parse_time(value):
    """An RFC 3339 timestamp (Graph may give 7 fractional digits, Python reads 6) -> an aware datetime (UTC when it names no
    zone); None when absent or unreadable."""
    if not value:
        return None
    text = str(value).strip().replace("Z", "+00:00")
    if "." in text:
        head, rest = text.split(".", 1)
        digits = "".join(ch for ch in rest if ch.isdigit())
        text = "%s.%s%s" % (head, digits[:6].ljust(6, "0"), rest[len(digits):])
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def format_time(moment):
    """RFC 3339 in UTC to the second, as Graph takes it."""
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
