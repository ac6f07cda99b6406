"""Client authentication. Ports nats-server `server/auth.go` (configureAuthorization,
checkAuthentication, isClientAuthorized) for the single user and the token that the command
line configures; users, nkeys, JWTs and permissions build on this.
"""
from __future__ import annotations

import hmac


def auth_required(opts):
    """Go: configureAuthorization. True when any client credential is configured."""
    return bool(opts.username or opts.authorization)


def check_authentication(opts, copts):
    """Go: isClientAuthorized. `copts` is the client's decoded CONNECT."""
    if opts.authorization:
        return _same(copts.get("auth_token", ""), opts.authorization)
    if opts.username:
        return _same(copts.get("user", ""), opts.username) and _same(copts.get("pass", ""), opts.password)
    return True


def _same(given, expected):
    # Constant time, as Go's comparePasswords, so timing does not leak the secret.
    return hmac.compare_digest(given.encode(), expected.encode())
