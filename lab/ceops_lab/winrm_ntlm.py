"""The server side of NTLM (NTLMv2 responses only), enough for pywinrm's transport="ntlm"
(requests_ntlm + pyspnego) against the lab's WS-Management endpoint. Standard library only:
MD4 is implemented here because OpenSSL 3 no longer offers it through hashlib.

The lab's HTTP layer does not expose connections, so the handshake is stateless per connection:
every CHALLENGE the acceptor issues is remembered for two minutes and an AUTHENTICATE message is
checked against those challenges (each usable once). Every WS-Man message therefore costs the
client a full handshake (requests_ntlm re-authenticates on each 401), which is slower than
Windows (it keeps the connection authenticated) but behaves the same for the client.
No message integrity (MIC) or channel-binding check, and no sealing: use it over HTTPS only.
"""

import collections
import hmac
import os
import struct
import threading
import time

SIGNATURE = b"NTLMSSP\x00"
CHALLENGE_LIFETIME = 120.0
_FLAGS = {
    "unicode": 0x00000001, "oem": 0x00000002, "request_target": 0x00000004, "sign": 0x00000010, "seal": 0x00000020,
    "ntlm": 0x00000200, "always_sign": 0x00008000, "target_type_server": 0x00020000, "extended_session_security": 0x00080000,
    "target_info": 0x00800000, "version": 0x02000000, "bit128": 0x20000000, "key_exch": 0x40000000, "bit56": 0x80000000,
}
_ECHOED = (_FLAGS["unicode"] | _FLAGS["sign"] | _FLAGS["seal"] | _FLAGS["ntlm"] | _FLAGS["always_sign"] | _FLAGS["extended_session_security"]
           | _FLAGS["version"] | _FLAGS["bit128"] | _FLAGS["key_exch"] | _FLAGS["bit56"])


# ----- MD4 (RFC 1320) ------------------------------------------------------------------------------------
def _rotl(value, count):
    value &= 0xFFFFFFFF
    return ((value << count) | (value >> (32 - count))) & 0xFFFFFFFF


def md4(data):
    message = bytearray(data)
    bit_length = (8 * len(data)) & 0xFFFFFFFFFFFFFFFF
    message.append(0x80)
    while len(message) % 64 != 56:
        message.append(0)
    message += struct.pack("<Q", bit_length)
    a, b, c, d = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476
    for offset in range(0, len(message), 64):
        x = struct.unpack("<16I", bytes(message[offset:offset + 64]))
        aa, bb, cc, dd = a, b, c, d
        for i in (0, 4, 8, 12):  # round 1
            a = _rotl(a + ((b & c) | (~b & d)) + x[i], 3)
            d = _rotl(d + ((a & b) | (~a & c)) + x[i + 1], 7)
            c = _rotl(c + ((d & a) | (~d & b)) + x[i + 2], 11)
            b = _rotl(b + ((c & d) | (~c & a)) + x[i + 3], 19)
        for i in (0, 1, 2, 3):  # round 2
            a = _rotl(a + ((b & c) | (b & d) | (c & d)) + x[i] + 0x5A827999, 3)
            d = _rotl(d + ((a & b) | (a & c) | (b & c)) + x[i + 4] + 0x5A827999, 5)
            c = _rotl(c + ((d & a) | (d & b) | (a & b)) + x[i + 8] + 0x5A827999, 9)
            b = _rotl(b + ((c & d) | (c & a) | (d & a)) + x[i + 12] + 0x5A827999, 13)
        for i in (0, 2, 1, 3):  # round 3
            a = _rotl(a + (b ^ c ^ d) + x[i] + 0x6ED9EBA1, 3)
            d = _rotl(d + (a ^ b ^ c) + x[i + 8] + 0x6ED9EBA1, 9)
            c = _rotl(c + (d ^ a ^ b) + x[i + 4] + 0x6ED9EBA1, 11)
            b = _rotl(b + (c ^ d ^ a) + x[i + 12] + 0x6ED9EBA1, 15)
        a, b, c, d = (a + aa) & 0xFFFFFFFF, (b + bb) & 0xFFFFFFFF, (c + cc) & 0xFFFFFFFF, (d + dd) & 0xFFFFFFFF
    return struct.pack("<4I", a, b, c, d)


def nt_hash(password):
    return md4(password.encode("utf-16-le"))


def _hmac_md5(key, data):
    return hmac.new(key, data, "md5").digest()


# ----- messages ----------------------------------------------------------------------------------------------
class Outcome:
    def __init__(self, authenticated=False, challenge=None, user=None):
        self.authenticated = authenticated
        self.challenge = challenge
        self.user = user


def _field(message, offset):
    length, _, start = struct.unpack_from("<HHI", message, offset)
    if start + length > len(message):
        raise ValueError("field out of range")
    return message[start:start + length]


def _av_pairs(pairs):
    out = b""
    for av_id, value in pairs:
        out += struct.pack("<HH", av_id, len(value)) + value
    return out + struct.pack("<HH", 0, 0)


class NtlmAcceptor:
    """Accepts one local account (`username` / `password`) of computer `host`."""

    def __init__(self, host, username, password):
        self.host = host.upper()
        self.username = username
        self.password = password
        self._lock = threading.Lock()
        self._challenges = collections.deque(maxlen=512)  # (issued at, server challenge)

    def step(self, token):
        """Outcome of one Authorization token: a CHALLENGE for a NEGOTIATE, authenticated or not
        for an AUTHENTICATE, nothing for anything else."""
        if len(token) < 12 or token[:8] != SIGNATURE:
            return Outcome()
        kind = struct.unpack_from("<I", token, 8)[0]
        try:
            if kind == 1:
                return Outcome(challenge=self._challenge(token))
            if kind == 3:
                return self._authenticate(token)
        except (struct.error, ValueError, UnicodeDecodeError):
            return Outcome()
        return Outcome()

    def _challenge(self, negotiate):
        client_flags = struct.unpack_from("<I", negotiate, 12)[0] if len(negotiate) >= 16 else _FLAGS["unicode"] | _FLAGS["ntlm"]
        flags = (client_flags & _ECHOED) | _FLAGS["unicode"] | _FLAGS["ntlm"] | _FLAGS["target_info"] | _FLAGS["target_type_server"]
        if client_flags & _FLAGS["request_target"]:
            flags |= _FLAGS["request_target"]
        server_challenge = os.urandom(8)
        with self._lock:
            self._challenges.append((time.monotonic(), server_challenge))
        name = self.host.encode("utf-16-le")
        filetime = int((time.time() + 11644473600) * 10000000)
        target_info = _av_pairs([(2, name), (1, name), (4, self.host.lower().encode("utf-16-le")),
                                 (3, self.host.lower().encode("utf-16-le")), (7, struct.pack("<Q", filetime))])
        header_length = 56
        target_name_offset = header_length
        target_info_offset = target_name_offset + len(name)
        version = bytes([10, 0]) + struct.pack("<H", 17763) + b"\x00\x00\x00\x0f"
        return (SIGNATURE + struct.pack("<I", 2)
                + struct.pack("<HHI", len(name), len(name), target_name_offset)
                + struct.pack("<I", flags) + server_challenge + b"\x00" * 8
                + struct.pack("<HHI", len(target_info), len(target_info), target_info_offset)
                + version + name + target_info)

    def _authenticate(self, message):
        nt_response = _field(message, 20)
        domain_raw = _field(message, 28)
        user_raw = _field(message, 36)
        flags = struct.unpack_from("<I", message, 60)[0]
        encoding = "utf-16-le" if flags & _FLAGS["unicode"] else "ascii"
        user = user_raw.decode(encoding)
        domain = domain_raw.decode(encoding)
        if len(nt_response) <= 24 or user.lower() != self.username.lower():
            return Outcome()
        proof, blob = nt_response[:16], nt_response[16:]
        response_key = _hmac_md5(nt_hash(self.password), (user.upper() + domain).encode("utf-16-le"))
        now = time.monotonic()
        with self._lock:
            for issued in list(self._challenges):
                issued_at, server_challenge = issued
                if now - issued_at > CHALLENGE_LIFETIME:
                    self._challenges.remove(issued)
                    continue
                if hmac.compare_digest(_hmac_md5(response_key, server_challenge + blob), proof):
                    self._challenges.remove(issued)
                    return Outcome(authenticated=True, user=user)
        return Outcome()
