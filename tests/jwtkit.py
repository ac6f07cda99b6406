"""Test keys and JWTs signed the way nats-io/jwt v2 encodes them (Go: ClaimsData.doEncode),
without the `nsc` tool: header `{"typ":"JWT","alg":"ed25519-nkey"}`, claims as compact JSON,
an Ed25519 signature over `header.claims` by the issuer's key, all base64url without padding.
"""
from __future__ import annotations

import base64
import hashlib
import json
import time

from gnatsd.nkeys import (
    PREFIX_BYTE_ACCOUNT, PREFIX_BYTE_OPERATOR, PREFIX_BYTE_USER, KeyPair,
)

NO_LIMITS = {"subs": -1, "data": -1, "payload": -1}
ACCOUNT_LIMITS = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": True,
                  "conn": -1, "leaf": -1}


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def operator_key():
    return KeyPair.create(PREFIX_BYTE_OPERATOR)


def account_key():
    return KeyPair.create(PREFIX_BYTE_ACCOUNT)


def user_key():
    return KeyPair.create(PREFIX_BYTE_USER)


def encode(kind, subject, signer, nats=None, header=None, **claims):
    """A v2 JWT of `kind` about `subject`, signed by KeyPair `signer`. `claims` go beside the
    standard ones (exp, nbf, name, iat to override the time of issue)."""
    body = {"jti": "", "iat": int(time.time()), "iss": signer.public_key, "name": subject[:8], "sub": subject}
    body.update(claims)
    body["jti"] = base64.b32encode(hashlib.sha512(json.dumps(body).encode()).digest()[:32]).decode().rstrip("=")
    n = dict(nats or {})
    n.setdefault("type", kind)
    n.setdefault("version", 2)
    body["nats"] = n
    h = b64(json.dumps(header or {"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    p = b64(json.dumps(body, separators=(",", ":")).encode())
    signed = f"{h}.{p}"
    return f"{signed}.{b64(signer.sign(signed.encode()))}"


def operator_jwt(op, **nats):
    return encode("operator", op.public_key, op, nats)


def account_jwt(signer, acc_pub, claims=None, **nats):
    nats.setdefault("limits", dict(ACCOUNT_LIMITS))
    return encode("account", acc_pub, signer, nats, **(claims or {}))


def user_jwt(signer, user_pub, claims=None, **nats):
    """A user JWT with no limits unless `nats` says otherwise (as nsc writes them)."""
    for k, v in NO_LIMITS.items():
        nats.setdefault(k, v)
    return encode("user", user_pub, signer, nats, **(claims or {}))


def activation_jwt(signer, importer_pub, subject, kind, claims=None, **nats):
    nats.update(subject=subject, kind=kind)
    return encode("activation", importer_pub, signer, nats, **(claims or {}))


def creds(user_jwt_text, user):
    """A .creds file as nsc writes it (Go: jwt.FormatUserConfig)."""
    return (f"-----BEGIN NATS USER JWT-----\n{user_jwt_text}\n------END NATS USER JWT------\n\n"
            "************************* IMPORTANT *************************\n"
            "NKEY Seed printed below can be used to sign and prove identity.\n"
            "NKEYs are sensitive and should be treated as secrets.\n\n"
            f"-----BEGIN USER NKEY SEED-----\n{user.seed}\n------END USER NKEY SEED------\n\n"
            "*************************************************************\n")
