"""NKeys: Ed25519 keys written as base32 text with a type prefix and a CRC16.

Ports the parts of `github.com/nats-io/nkeys` the server needs (strkey.go: Encode, EncodeSeed,
decode, Decode, IsValidPublicUserKey, FromPublicKey; crc16.go; public.go: Verify) and
`server/nkey.go` (the INFO nonce). Signatures are checked with pynacl.

A key's text is base32 (RFC 4648 alphabet, no padding) of: one prefix byte naming its type
(`U` user, `A` account, `N` server, ...), the 32 key bytes, and a little-endian CRC-16/XMODEM
of the bytes before it. A seed has two prefix bytes: `S` and the type of its public key.
"""
from __future__ import annotations

import base64
import binascii
import os
import re

import nacl.exceptions
import nacl.signing

# Go nkeys: PrefixByte values. The top five bits are the base32 letter the text starts with.
PREFIX_BYTE_SEED = 18 << 3  # 'S'
PREFIX_BYTE_PRIVATE = 15 << 3  # 'P'
PREFIX_BYTE_SERVER = 13 << 3  # 'N'
PREFIX_BYTE_CLUSTER = 2 << 3  # 'C'
PREFIX_BYTE_OPERATOR = 14 << 3  # 'O'
PREFIX_BYTE_ACCOUNT = 0  # 'A'
PREFIX_BYTE_USER = 20 << 3  # 'U'

_PUBLIC_PREFIXES = frozenset((PREFIX_BYTE_SERVER, PREFIX_BYTE_CLUSTER, PREFIX_BYTE_OPERATOR,
                              PREFIX_BYTE_ACCOUNT, PREFIX_BYTE_USER))
_VALID_PREFIXES = _PUBLIC_PREFIXES | {PREFIX_BYTE_SEED, PREFIX_BYTE_PRIVATE}

KEY_LEN = 32  # an Ed25519 public key, or a seed
SIGNATURE_LEN = 64

# Go: server/nkey.go nonceRawLen, nonceLen
NONCE_RAW_LEN = 11
NONCE_LEN = 15


class NkeyError(ValueError):
    """Go: the nkeys package's errors; the message is Go's."""


ERR_INVALID_ENCODING = "nkeys: invalid encoded key"
ERR_INVALID_CHECKSUM = "nkeys: invalid checksum"
ERR_INVALID_PREFIX_BYTE = "nkeys: invalid prefix byte"
ERR_INVALID_PUBLIC_KEY = "nkeys: not a valid public nkey"
ERR_INVALID_SEED = "nkeys: invalid seed"


def _crc16_table():
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return table


_CRC16_TABLE = _crc16_table()


def crc16(data):
    """CRC-16/XMODEM (polynomial 0x1021, initial 0), as nkeys uses it."""
    crc = 0
    table = _CRC16_TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[((crc >> 8) ^ byte) & 0xFF]
    return crc


def _b32encode(data):
    return base64.b32encode(data).decode("ascii").rstrip("=")


# Go's base32 decoder skips CR and LF anywhere in its input; no other byte outside the
# alphabet is accepted, and the unpadded length must be one a whole number of bytes gives.
_B32_TEXT = re.compile(r"[A-Z2-7]*")


def _b32decode(text):
    text = text.replace("\r", "").replace("\n", "")
    if not _B32_TEXT.fullmatch(text) or len(text) % 8 in (1, 3, 6):
        raise NkeyError(ERR_INVALID_ENCODING)
    try:
        return base64.b32decode(text + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        raise NkeyError(ERR_INVALID_ENCODING) from None


def encode(prefix, raw):
    """Go nkeys: Encode. `raw` key bytes with a one-byte type prefix, as text."""
    data = bytes([prefix]) + raw
    data += crc16(data).to_bytes(2, "little")
    return _b32encode(data)


def encode_seed(public_prefix, raw):
    """Go nkeys: EncodeSeed. A 32-byte seed for keys of type `public_prefix` (`SU...` for users)."""
    if public_prefix not in _PUBLIC_PREFIXES:
        raise NkeyError(ERR_INVALID_PREFIX_BYTE)
    if len(raw) != KEY_LEN:
        raise NkeyError(ERR_INVALID_SEED)
    data = bytes([PREFIX_BYTE_SEED | (public_prefix >> 5), (public_prefix & 31) << 3]) + raw
    data += crc16(data).to_bytes(2, "little")
    return _b32encode(data)


def decode_raw(text):
    """Go nkeys: decode. The bytes of `text` before its CRC (prefix included), checked."""
    raw = _b32decode(text)
    if len(raw) < 4:
        raise NkeyError(ERR_INVALID_ENCODING)
    if crc16(raw[:-2]) != int.from_bytes(raw[-2:], "little"):
        raise NkeyError(ERR_INVALID_CHECKSUM)
    return raw[:-2]


def decode(expected_prefix, text):
    """Go nkeys: Decode. The key bytes of `text`, which must be of type `expected_prefix`.

    Not in Go: the key must be 32 bytes, an Ed25519 key. Go accepts any length here and its
    ed25519.Verify panics later on a wrong one.
    """
    raw = decode_raw(text)
    prefix = raw[0] & 0xF8
    if prefix not in _VALID_PREFIXES or prefix != expected_prefix:
        raise NkeyError(ERR_INVALID_PREFIX_BYTE)
    if len(raw) - 1 != KEY_LEN:
        raise NkeyError(ERR_INVALID_ENCODING)
    return raw[1:]


def _is_valid_public_key(prefix, text):
    try:
        decode(prefix, text)
    except NkeyError:
        return False
    return True


def is_valid_public_user_key(text):
    """Go nkeys: IsValidPublicUserKey."""
    return _is_valid_public_key(PREFIX_BYTE_USER, text)


def is_valid_public_account_key(text):
    """Go nkeys: IsValidPublicAccountKey."""
    return _is_valid_public_key(PREFIX_BYTE_ACCOUNT, text)


def is_valid_public_operator_key(text):
    """Go nkeys: IsValidPublicOperatorKey."""
    return _is_valid_public_key(PREFIX_BYTE_OPERATOR, text)


def from_public_key(text):
    """Go nkeys: FromPublicKey. (prefix byte, 32 key bytes) of a public key of any type."""
    raw = decode_raw(text)
    prefix = raw[0]
    if prefix not in _PUBLIC_PREFIXES:
        raise NkeyError(ERR_INVALID_PUBLIC_KEY)
    if len(raw) - 1 != KEY_LEN:
        raise NkeyError(ERR_INVALID_PUBLIC_KEY)
    return prefix, raw[1:]


def decode_seed(text):
    """Go nkeys: DecodeSeed. (public key prefix byte, 32 seed bytes)."""
    raw = decode_raw(text)
    if len(raw) < 2 or raw[0] & 0xF8 != PREFIX_BYTE_SEED:
        raise NkeyError(ERR_INVALID_SEED)
    public_prefix = ((raw[0] & 7) << 5) | ((raw[1] & 0xF8) >> 3)
    if public_prefix not in _PUBLIC_PREFIXES or len(raw) - 2 != KEY_LEN:
        raise NkeyError(ERR_INVALID_SEED)
    return public_prefix, raw[2:]


def verify(public_key, data, sig):
    """Go nkeys: FromPublicKey(public_key).Verify(data, sig), as a bool. Bytes `data` and `sig`."""
    try:
        _, key = from_public_key(public_key)
    except NkeyError:
        return False
    if len(sig) != SIGNATURE_LEN:
        return False
    try:
        nacl.signing.VerifyKey(key).verify(data, sig)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError, TypeError):
        return False
    return True


class KeyPair:
    """A signing key with its nkey texts (for tests, tools and the server's identity)."""

    def __init__(self, prefix, signing_key):
        self.prefix = prefix
        self.signing_key = signing_key

    @classmethod
    def create(cls, prefix):
        """Go nkeys: CreatePair."""
        return cls(prefix, nacl.signing.SigningKey.generate())

    @classmethod
    def from_seed(cls, seed):
        """Go nkeys: FromSeed."""
        prefix, raw = decode_seed(seed)
        return cls(prefix, nacl.signing.SigningKey(raw))

    @property
    def public_key(self):
        return encode(self.prefix, bytes(self.signing_key.verify_key))

    @property
    def seed(self):
        return encode_seed(self.prefix, bytes(self.signing_key))

    def sign(self, data):
        return self.signing_key.sign(data).signature


def create_server_keypair():
    """A fresh server identity: (signing key, public key text starting with 'N', 56 chars)."""
    key = nacl.signing.SigningKey.generate()
    return key, encode(PREFIX_BYTE_SERVER, bytes(key.verify_key))


def generate_nonce():
    """Go: Server.generateNonce. 11 random bytes as 15 characters of unpadded base64url."""
    return base64.urlsafe_b64encode(os.urandom(NONCE_RAW_LEN)).rstrip(b"=").decode("ascii")


# Go's base64 decoders skip CR and LF; anything else outside the alphabet fails.
_B64_RAW_URL = re.compile(rb"[A-Za-z0-9_-]*")
_B64_STD = re.compile(rb"[A-Za-z0-9+/]*={0,2}")


def b64_raw_url_decode(text):
    """Go: base64.RawURLEncoding.DecodeString. None when `text` is not unpadded base64url."""
    b = text.encode("utf-8", "surrogatepass").replace(b"\r", b"").replace(b"\n", b"")
    if _B64_RAW_URL.fullmatch(b) and len(b) % 4 != 1:
        try:
            return base64.urlsafe_b64decode(b + b"=" * (-len(b) % 4))
        except (binascii.Error, ValueError):
            pass
    return None


def decode_sig(sig):
    """The signature in CONNECT `sig`: unpadded base64url, or else padded standard base64, as
    Go's processClientOrLeafAuthentication tries them. None when it is neither."""
    raw = b64_raw_url_decode(sig)
    if raw is not None:
        return raw
    b = sig.encode("utf-8", "surrogatepass").replace(b"\r", b"").replace(b"\n", b"")
    if _B64_STD.fullmatch(b) and len(b) % 4 == 0:
        try:
            return base64.b64decode(b, validate=True)
        except (binascii.Error, ValueError):
            pass
    return None
