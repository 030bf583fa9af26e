# -*- coding: utf-8 -*-
"""Tests of the fake Exchange Online mail endpoints' decisions (mail_login_fakes.py)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

# ansible-test units imports test files by their collection name, not with their folder on sys.path.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mail_login_fakes import ExchangeRules, ExchangeWorld, parse_xoauth2, unsigned_token  # noqa: E402  pylint: disable=wrong-import-position


# -- the fakes' own tests -------------------------------------------------------------------------
def test_xoauth2_parsing_round_trips():
    blob = "user=a@b.c\x01auth=Bearer x.y.z\x01\x01".encode()
    assert parse_xoauth2(blob) == ("a@b.c", "x.y.z")


def test_world_picks_the_directory_by_tid():
    contoso, fabrikam = ExchangeRules("t1", ["a@contoso"]), ExchangeRules("t2", ["a@fabrikam"])
    world = ExchangeWorld(contoso, fabrikam)
    assert world.decide("imap", "a@fabrikam", unsigned_token(tid="t2", roles=[])) == "no role"
    assert world.decide("imap", "a@x", unsigned_token(tid="t3")) == "unknown directory"
    assert fabrikam.logins == [("imap", "a@fabrikam", False)] and contoso.logins == []


def test_rules_follow_exchange_order():
    rules = ExchangeRules("t1", ["a@b.c"])
    token = unsigned_token(tid="t1", appid="app", oid="sp", roles=["IMAP.AccessAsApp"])
    assert rules.decide("imap", "a@b.c", token) == "service principal not registered"
    rules.register("app", "sp")
    assert rules.decide("imap", "a@b.c", token) == "no FullAccess"
    rules.grant("sp", "A@B.C")
    assert rules.decide("imap", "a@b.c", token) is None
    assert rules.decide("smtp", "a@b.c", token) == "no role"
