"""NKeys: Ed25519 keys encoded as base32 text with a type prefix and a CRC16.

Ports the parts of `github.com/nats-io/nkeys` the server needs (its identity key) and
`server/nkey.go`. Authentication with nkeys builds on this (issue: auth).
"""
from __future__ import annotations

import base64

import nacl.signing

PREFIX_BYTE_SERVER = 13 << 3  # 'N'


def crc16(data):
    """CRC-16/XMODEM, as nkeys uses it."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def encode(prefix, raw):
    """Encode `raw` key bytes with a one-byte type prefix: base32, no padding."""
    data = bytes([prefix]) + raw
    data += crc16(data).to_bytes(2, "little")
    return base64.b32encode(data).decode().rstrip("=")


def create_server_keypair():
    """A fresh server identity: (signing key, public key text starting with 'N', 56 chars)."""
    key = nacl.signing.SigningKey.generate()
    return key, encode(PREFIX_BYTE_SERVER, bytes(key.verify_key))
