"""JSON as Go's encoding/json reads it into a struct, for CONNECT and a client's INFO.
(Writing Go's JSON is `gofmt.marshal`.)

Go decodes into a typed struct: keys match case-insensitively, the last duplicate wins,
unknown keys are ignored, `null` leaves a field unchanged, and a value of the wrong type is an
error. Clients see the difference (a CONNECT with `"verbose":"yes"` closes the connection), so
gnatsd decodes the same way. No socket, no gevent import.
"""
from __future__ import annotations

import json
import sys

MAX_DEEP_BRACKETS = 4096
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT64_MAX = 2**64 - 1

# Field kinds for decode_struct.
BOOL, STRING, INT, UINT, STRINGS, PERMISSION = "bool", "string", "int", "uint64", "[]string", "SubjectPermission"


def _no_constant(name):
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


def decode_struct(data, fields, into):
    """Decode `data` (bytes) over the dict `into`, as Go's json.Unmarshal into a struct.

    `fields` maps lower-case JSON keys to a kind above. Raises ValueError on bad JSON, on a
    value of the wrong type, or on nesting too deep to decode.
    """
    # Go reads the bytes as UTF-8, replacing invalid sequences; it refuses a BOM or UTF-16,
    # both of which json.loads(bytes) would accept.
    text = data.decode("utf-8", "replace")
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        value = _loads_deep(text)
    if value is None:
        return into
    if not isinstance(value, dict):
        raise ValueError(f"json: cannot unmarshal {_kind(value)} into Go value of type struct")
    for key, item in value.items():
        key = key.lower()
        kind = fields.get(key)
        if kind is None or item is None:
            continue
        if not _fits(item, kind):
            raise ValueError(f"json: cannot unmarshal {_kind(item)} into Go struct field .{key} of type {kind}")
        into[key] = item
    return into


def _loads_deep(text):
    """Decode JSON nested deeper than CPython's recursion limit allows (PyPy needs no help).

    Go accepts up to 10,000 levels. The number of brackets bounds the depth; up to
    MAX_DEEP_BRACKETS (what a default 4 KiB control line can hold) the limit is raised for this
    one decode, past it the JSON is refused, so the C stack stays small.
    """
    brackets = text.count("[") + text.count("{")
    if brackets > MAX_DEEP_BRACKETS:
        raise ValueError("JSON nested too deeply")
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(old + brackets + 100)
    try:
        return json.loads(text, parse_constant=_no_constant)
    finally:
        sys.setrecursionlimit(old)


def _fits(item, kind):
    if kind == BOOL:
        return type(item) is bool
    if kind == STRING:
        return type(item) is str
    if kind == INT:
        return type(item) is int and INT64_MIN <= item <= INT64_MAX
    if kind == UINT:
        return type(item) is int and 0 <= item <= UINT64_MAX
    if kind == STRINGS:
        return type(item) is list and all(s is None or type(s) is str for s in item)
    if kind == PERMISSION:  # Go: SubjectPermission{Allow, Deny []string}
        if type(item) is not dict:
            return False
        return all(v is None or _fits(v, STRINGS) for k, v in item.items() if k.lower() in ("allow", "deny"))
    raise AssertionError(kind)


def _kind(item):
    if isinstance(item, bool):
        return "bool"
    if isinstance(item, (int, float)):
        return "number"
    if isinstance(item, str):
        return "string"
    if isinstance(item, list):
        return "array"
    return "object"
