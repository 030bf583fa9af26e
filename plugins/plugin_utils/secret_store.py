# -*- coding: utf-8 -*-
# Copyright: (c) 2026, CE Ops automation team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to this collection: the secret store (docs/lifecycle.md), a YAML file encrypted as a whole with Ansible Vault
that keeps every client secret the collection made for a CE tenant, so that later runs (the proof, the parts run alone)
find CE's secret without anyone copying it by hand.

The file, decrypted::

    version: 1
    entries:
      - {tenant_id, app_id, key_id, secret_name, ce_tenant, start_date_time, end_date_time, client_secret}

Here: reading and refusing what is not a store, the merge of an update, the atomic write and the lock that lets several
writers (the app leads of one run, in forked workers; two runs at once) each read-modify-write without losing another's
entry. Encryption is the caller's (the action plugin has the run's vault secrets): ``decrypt(bytes) -> bytes`` and
``encrypt(bytes) -> bytes``. No message here ever holds an entry's value.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile

import yaml

VERSION = 1
VAULT_HEADER = b"$ANSIBLE_VAULT;"
ENTRY_KEYS = ("tenant_id", "app_id", "key_id", "secret_name", "ce_tenant", "start_date_time", "end_date_time", "client_secret")
REQUIRED_KEYS = ("tenant_id", "app_id", "key_id", "secret_name", "ce_tenant", "client_secret")
WHAT_TO_DO = "docs/lifecycle.md, \"The secret store\""


class StoreError(Exception):
    """A store that cannot be read or written; the message names the path and says what to do, never a secret."""


def store_path(path):
    """The store's absolute path (``~`` expanded, relative to the controller's working directory)."""
    if not path or not str(path).strip():
        raise StoreError("ceops_secret_store is empty: name the file of the secret store (%s), or leave it unset" % WHAT_TO_DO)
    return os.path.abspath(os.path.expanduser(str(path).strip()))


def check_directory(path):
    """The store's directory, refused when it does not exist, or when anyone but the run's user (or root) owns it or group or
    others may write to it: they could remove the store, or put a file or a link of their own where the store or its lock
    is about to be written. The store itself is encrypted; who may replace it matters, not who may read it."""
    directory = os.path.dirname(path)
    try:
        info = os.stat(directory)
    except OSError as error:
        raise StoreError("secret store %s: its directory %s cannot be used (%s): make it, only for the account that runs the "
                         "playbooks (mkdir -m 700 %s), or set ceops_secret_store to a file in another (%s)"
                         % (path, directory, error.strerror, directory, WHAT_TO_DO))
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid not in (os.geteuid(), 0):
        raise StoreError("secret store %s: its directory %s belongs to user id %d, not to the account that runs the playbooks "
                         "(%d), who could remove or replace the store: keep it in a directory of your own (mkdir -m 700) (%s)"
                         % (path, directory, info.st_uid, os.geteuid(), WHAT_TO_DO))
    if mode & 0o022:
        raise StoreError("secret store %s: group or others may write to its directory %s (mode %04o), and so remove or replace "
                         "the store: close it (chmod go-w %s) or keep the store in a directory of your own (%s)"
                         % (path, directory, mode, directory, WHAT_TO_DO))


def read_raw(path):
    """The store file's bytes, or None when it does not exist yet (an empty store). A symlink, or anything but a regular file,
    is refused: the store is written by replacing the file, which would replace the link, not what it points to, and a link
    planted in the store's place would lead the secrets elsewhere."""
    try:
        info = os.lstat(path)
    except OSError as error:
        if error.errno == errno.ENOENT:
            return None
        raise StoreError("secret store %s cannot be read: %s" % (path, error.strerror))
    if stat.S_ISLNK(info.st_mode):
        raise StoreError("secret store %s is a symbolic link, which the collection does not follow: set ceops_secret_store to the "
                         "file itself (%s)" % (path, WHAT_TO_DO))
    if not stat.S_ISREG(info.st_mode):
        raise StoreError("secret store %s is not a regular file: set ceops_secret_store to a file (%s)" % (path, WHAT_TO_DO))
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        descriptor = os.open(path, flags)
    except OSError as error:
        raise StoreError("secret store %s cannot be read: %s" % (path, error.strerror))
    with os.fdopen(descriptor, "rb") as handle:
        return handle.read()


def is_encrypted(raw):
    return raw.lstrip().startswith(VAULT_HEADER)


def load(raw, decrypt, path):
    """The entries of a store file's bytes (None: no file yet). A file that is not encrypted with Ansible Vault is refused
    and left as it is: it may hold secrets in clear, which the operator must see to."""
    if raw is None:
        return []
    if not is_encrypted(raw):
        raise StoreError("secret store %s exists but is not encrypted with Ansible Vault, so the collection neither reads nor "
                         "writes it: encrypt it (ansible-vault encrypt %s), or move it away to start an empty store (%s)"
                         % (path, path, WHAT_TO_DO))
    try:
        plaintext = decrypt(raw)
    except Exception as error:  # the vault library's error: wrong password, unknown vault id, a damaged file
        raise StoreError("secret store %s cannot be decrypted with the vault secrets of this run (%s): give the store's vault "
                         "password with --ask-vault-pass or --vault-id (%s)" % (path, _first_line(error), WHAT_TO_DO))
    return parse(plaintext, path)


def _first_line(error):
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def parse(plaintext, path="the secret store"):
    try:
        document = yaml.safe_load(plaintext)
    except yaml.YAMLError as error:
        raise StoreError("secret store %s is not valid YAML once decrypted (line %s): restore it from a backup or move it away "
                         "(%s)" % (path, getattr(getattr(error, "problem_mark", None), "line", "?"), WHAT_TO_DO))
    if document is None:
        return []
    if not isinstance(document, dict) or document.get("version") != VERSION or not isinstance(document.get("entries") or [], list):
        raise StoreError("secret store %s is not a store of version %d (a mapping with version and a list of entries): restore it "
                         "from a backup or move it away (%s)" % (path, VERSION, WHAT_TO_DO))
    return [checked(entry, "secret store %s, entry %d" % (path, number)) for number, entry in enumerate(document.get("entries") or [], 1)]


def checked(entry, where):
    """One entry with the store's keys, every value a plain string (None for an unknown date). The error names the entry
    by its key id and CE tenant, never by its value."""
    if not isinstance(entry, dict):
        raise StoreError("%s is not a mapping" % where)
    result = {}
    for key in ENTRY_KEYS:
        value = entry.get(key)
        if value is None or value == "":
            if key in REQUIRED_KEYS:
                raise StoreError("%s (key id %s, CE tenant %s) has no %s" % (where, entry.get("key_id"), entry.get("ce_tenant"), key))
            result[key] = None
            continue
        result[key] = str(value)
    result["key_id"] = result["key_id"].lower()
    return result


def dump(entries):
    """The store's clear text: the version, then the entries in a stable order (so an unchanged store compares equal)."""
    document = {"version": VERSION, "entries": [dict((k, entry[k]) for k in ENTRY_KEYS) for entry in ordered(entries)]}
    return yaml.safe_dump(document, default_flow_style=False, sort_keys=False).encode("utf-8")


def ordered(entries):
    return sorted(entries, key=lambda e: (e["tenant_id"].lower(), e["ce_tenant"], e["secret_name"], e.get("start_date_time") or "", e["key_id"]))


def describe(entry):
    """An entry as the result, the diff and the log may show it: never its value."""
    return {"key_id": entry["key_id"], "ce_tenant": entry["ce_tenant"], "tenant_id": entry["tenant_id"], "app_id": entry["app_id"],
            "secret_name": entry["secret_name"]}


def merge(entries, add=None, remove_key_ids=None):
    """The store after an update: ``add`` (entries, replacing those of the same key id), then ``remove_key_ids`` gone.
    -> (entries, {"added": [...], "replaced": [...], "removed": [...]}) with descriptions only."""
    by_key = dict((e["key_id"], e) for e in entries)
    report = {"added": [], "replaced": [], "removed": []}
    for entry in add or []:
        entry = checked(entry, "an entry to add")
        previous = by_key.get(entry["key_id"])
        if previous == entry:
            continue
        report["replaced" if previous else "added"].append(describe(entry))
        by_key[entry["key_id"]] = entry
    for key_id in remove_key_ids or []:
        gone = by_key.pop(str(key_id).lower(), None)
        if gone:
            report["removed"].append(describe(gone))
    return ordered(by_key.values()), report


def for_ce_tenants(entries, ce_tenants=None):
    """The entries of these CE tenants (inventory hosts); all when ``ce_tenants`` is None."""
    if ce_tenants is None:
        return list(entries)
    wanted = set(str(host) for host in ce_tenants)
    return [e for e in entries if e["ce_tenant"] in wanted]


@contextlib.contextmanager
def locked(path):
    """An exclusive lock on ``<store>.lock`` for a read-modify-write: writers in forked workers of one run and in runs at
    once take turns, so none loses another's entry. The lock file is never followed as a link and holds nothing."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        descriptor = os.open(path + ".lock", flags, 0o600)
    except OSError as error:
        raise StoreError("secret store %s: its lock file %s.lock cannot be opened (%s): the store's directory must be writable by "
                         "the run, and the lock file must not be a link (%s)" % (path, path, error.strerror, WHAT_TO_DO))
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def write_atomic(path, data):
    """``data`` as the new store, all or nothing: a 0600 temporary file in the store's own directory, synced, then renamed over
    the store (a reader sees the old file or the new one, never half of one), and the directory synced."""
    directory = os.path.dirname(path)
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    except OSError as error:
        raise StoreError("secret store %s cannot be written: %s (the store's directory must be writable by the run; %s)"
                         % (path, error.strerror, WHAT_TO_DO))
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError):
        directory_descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(directory_descriptor)
        finally:
            os.close(directory_descriptor)


def read(path, decrypt):
    """The store's entries (an empty list when the file does not exist yet)."""
    check_directory(path)
    return load(read_raw(path), decrypt, path)


def update(path, decrypt, encrypt, add=None, remove_key_ids=None, check_mode=False):
    """Add and remove entries under the lock, writing only when the entries change and never in check mode.
    -> {"changed", "added", "replaced", "removed", "entries" (how many), "before", "after" (descriptions)}"""
    check_directory(path)
    with locked(path):
        raw = read_raw(path)
        before = load(raw, decrypt, path)
        after, report = merge(before, add, remove_key_ids)
        changed = after != ordered(before)
        if changed and not check_mode:
            write_atomic(path, encrypt(dump(after)))
    report.update(changed=changed, entries=len(after), before=[describe(e) for e in ordered(before)], after=[describe(e) for e in after])
    return report
