"""Values as Go prints them in the monitoring JSON and its error texts.

The Go server's monitoring output is whatever Go's standard library makes of its structs, so
tools that read it (dashboards, the nats CLI, exporters) see Go's formats. This module gives
the same text for the same values:

- `marshal_indent` / `marshal`: encoding/json's MarshalIndent(v, "", "  ") and Marshal,
  including the HTML-safe string escapes and Go's float formatting (2, not 2.0).
- `format_time`: a time.Time in JSON, RFC 3339 with nanoseconds, trailing zeros trimmed.
- `duration_string`: time.Duration.String (`1m2s`, `371µs`, `1.5ms`).
- `my_uptime`: monitor.go's myUptime (`1d2h3m4s`, whole seconds).
- `parse_bool`, `atoi`, `parse_uint`: strconv's parsers, raising `NumError` with strconv's
  message text, which the HTTP handlers pass on in their 400 answers.

No socket, no gevent, no Flask: plain functions.
"""
from __future__ import annotations

import re
import time
from decimal import Decimal

# -- JSON -----------------------------------------------------------------------------------


class GoMap(dict):
    """A Go map in JSON: encoding/json writes map keys sorted; struct fields keep their order."""

    __slots__ = ()


_ESCAPES = {
    '"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
    "<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029",
}
_NEEDS_ESCAPE = re.compile('[\x00-\x1f"\\\\<>&\u2028\u2029]')


def _escape(m):
    ch = m.group(0)
    e = _ESCAPES.get(ch)
    return e if e is not None else "\\u%04x" % ord(ch)


def quote(s):
    """A JSON string as Go writes it: <, >, & and control characters as \\u00XX (lower-case hex)."""
    if _NEEDS_ESCAPE.search(s) is None:
        return '"' + s + '"'
    return '"' + _NEEDS_ESCAPE.sub(_escape, s) + '"'


def go_float(f):
    """Go's float64 in JSON: shortest digits, plain notation between 1e-6 and 1e21."""
    if f != f or f in (float("inf"), float("-inf")):
        raise ValueError(f"json: unsupported value: {f!r}")
    if f == 0:
        return "0" if str(f)[0] != "-" else "-0"
    r = repr(f)
    if "e" not in r:  # repr's plain notation is Go's, less a trailing ".0"
        return r[:-2] if r.endswith(".0") else r
    a = abs(f)
    if a < 1e-6 or a >= 1e21:
        # Go's 'e' format with the exponent's leading zero dropped: 1e-07 -> 1e-7.
        mant, _, exp = r.partition("e")
        sign = exp[0] if exp[0] in "+-" else "+"
        digits = exp.lstrip("+-").lstrip("0") or "0"
        if len(digits) < 2 and sign == "+":
            digits = digits.rjust(2, "0")
        return f"{mant}e{sign}{digits}"
    return format(Decimal(r).normalize(), "f")


_KEYS = {}  # (key, text before it) -> the key's text, up to and including the colon
_MAX_KEYS = 4096


def _key_text(key, before, sep):
    """`before`, the quoted key and `sep`. Struct field names repeat in every entry of a list
    (a /connz page writes each 20 times per connection): kept, not quoted again."""
    text = _KEYS.get((key, before))
    if text is None:
        text = before + quote(key) + sep
        if len(_KEYS) < _MAX_KEYS:
            _KEYS[(key, before)] = text
    return text


def _encode(v, out, nl):
    # Order matters: bool is an int, GoMap is a dict. The exact str and int types first: most
    # values are one of them.
    t = type(v)
    if t is str:
        out.append(quote(v))
    elif t is int:
        out.append(str(v))
    elif v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, str):
        out.append(quote(v))
    elif isinstance(v, int):
        out.append(str(v))
    elif isinstance(v, float):
        out.append(go_float(v))
    elif isinstance(v, dict):
        if not v:
            out.append("{}")
            return
        items = sorted(v.items()) if isinstance(v, GoMap) else v.items()
        inner = nl + "  " if nl else ""
        sep = ": " if nl else ":"
        out.append("{")
        before, later = inner, "," + inner
        for key, value in items:
            out.append(_key_text(key, before, sep))
            before = later
            t = type(value)  # the common cases inline: a quarter faster on CPython
            if t is str:
                out.append(quote(value))
            elif t is int:
                out.append(str(value))
            else:
                _encode(value, out, inner)
        out.append(nl)
        out.append("}")
    elif isinstance(v, (list, tuple)):
        if not v:
            out.append("[]")
            return
        inner = nl + "  " if nl else ""
        out.append("[")
        first = True
        for value in v:
            if not first:
                out.append(",")
            first = False
            out.append(inner)
            _encode(value, out, inner)
        out.append(nl)
        out.append("]")
    else:
        raise TypeError(f"cannot encode {type(v).__name__} as JSON")


def marshal_indent(v):
    """Go: json.MarshalIndent(v, "", "  "). Returns str."""
    out = []
    _encode(v, out, "\n")
    return "".join(out)


def iter_marshal_indent(v, every=128):
    """marshal_indent's text in pieces: a list directly under the top-level object is cut
    after every `every` elements, so that the caller can let other greenlets run while a
    long /connz or /subsz answer is written. "".join() of the pieces is marshal_indent(v)."""
    if not isinstance(v, dict) or not v or isinstance(v, GoMap):
        yield marshal_indent(v)
        return
    out = ["{"]
    first = True
    for key, value in v.items():
        if not first:
            out.append(",")
        first = False
        out.append("\n  ")
        out.append(quote(key))
        out.append(": ")
        if isinstance(value, (list, tuple)) and len(value) > every:
            out.append("[")
            for i, item in enumerate(value):
                if i:
                    out.append(",")
                out.append("\n    ")
                _encode(item, out, "\n    ")
                if i % every == every - 1:
                    yield "".join(out)
                    out = []
            out.append("\n  ]")
        else:
            _encode(value, out, "\n  ")
    out.append("\n}")
    yield "".join(out)


def marshal(v):
    """Go: json.Marshal(v). Returns str."""
    out = []
    _encode(v, out, "")
    return "".join(out)


# -- times and durations ---------------------------------------------------------------------

NS = 1_000_000_000


def time_ns(t):
    """Float seconds since the epoch (time.time()) -> int nanoseconds, at the microsecond
    precision a float of that size carries (no invented digits)."""
    return round(t * 1_000_000) * 1000


_SECONDS = {}  # whole seconds format_time wrote -> their text (a /connz page repeats a few)
_MAX_SECONDS = 1024


def format_time(ns):
    """Go: a UTC time.Time in JSON (RFC 3339 with nanoseconds, trailing zeros trimmed)."""
    secs, frac = divmod(ns, NS)
    base = _SECONDS.get(secs)
    if base is None:
        base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
        if len(_SECONDS) >= _MAX_SECONDS:
            _SECONDS.clear()
        _SECONDS[secs] = base
    if frac:
        return f"{base}.{frac:09d}".rstrip("0") + "Z"
    return base + "Z"


def _with_fraction(u, digits):
    whole, frac = divmod(u, 10 ** digits)
    if not frac:
        return str(whole)
    return f"{whole}." + f"{frac:0{digits}d}".rstrip("0")


def duration_string(ns):
    """Go: time.Duration.String for an int number of nanoseconds."""
    if ns == 0:
        return "0s"
    u = -ns if ns < 0 else ns
    if u < NS:
        if u < 1000:
            s = f"{u}ns"
        elif u < 1_000_000:
            s = _with_fraction(u, 3) + "\u00b5s"
        else:
            s = _with_fraction(u, 6) + "ms"
    else:
        secs, frac = divmod(u, NS)
        s = str(secs % 60)
        if frac:
            s += "." + f"{frac:09d}".rstrip("0")
        s += "s"
        mins = secs // 60
        if mins:
            s = f"{mins % 60}m" + s
            hours = mins // 60
            if hours:
                s = f"{hours}h" + s
    return "-" + s if ns < 0 else s


def rtt_string(rtt):
    """Go: client.getRTT().String() for an RTT in float seconds. Between 1µs and 1ms it is
    truncated to whole microseconds; 0 (not measured yet) is "0s"."""
    ns = int(rtt * NS)
    if 1000 < ns < 1_000_000:
        ns -= ns % 1000
    return duration_string(ns)


def my_uptime(seconds):
    """Go: myUptime. Whole seconds, shown as years, days, hours, minutes and seconds."""
    tsecs = int(seconds)
    if tsecs < 0:
        return f"{tsecs}s"
    tmins, s = divmod(tsecs, 60)
    thrs, m = divmod(tmins, 60)
    tdays, h = divmod(thrs, 24)
    tyrs, d = divmod(tdays, 365)
    if tyrs:
        return f"{tyrs}y{d}d{h}h{m}m{s}s"
    if tdays:
        return f"{tdays}d{h}h{m}m{s}s"
    if thrs:
        return f"{thrs}h{m}m{s}s"
    if tmins:
        return f"{tmins}m{s}s"
    return f"{tsecs}s"


# -- strconv ------------------------------------------------------------------------------------


class NumError(ValueError):
    """Go: strconv.NumError. str() is Go's text: `strconv.Atoi: parsing "x": invalid syntax`."""

    def __init__(self, func, num, err):
        self.func = func
        self.num = num
        self.err = err
        super().__init__(f"strconv.{func}: parsing {go_quote(num)}: {err}")


_SYNTAX = "invalid syntax"
_RANGE = "value out of range"
_UINT64_MAX = 2 ** 64 - 1
_INT64_CUTOFF = 2 ** 63


def go_quote(s):
    """Go: strconv.Quote for a str."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(ch)])
        elif ch.isprintable() and not (0xD800 <= o < 0xE000):
            out.append(ch)
        elif o < 0x80:
            out.append("\\x%02x" % o)
        elif o < 0x10000:
            out.append("\\u%04x" % o)
        else:
            out.append("\\U%08x" % o)
    out.append('"')
    return "".join(out)


_TRUE = frozenset(("1", "t", "T", "TRUE", "true", "True"))
_FALSE = frozenset(("0", "f", "F", "FALSE", "false", "False"))


def parse_bool(s):
    """Go: strconv.ParseBool."""
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise NumError("ParseBool", s, _SYNTAX)


def _parse_uint10(s, func, s0):
    """Go: strconv.ParseUint(s, 10, 64)'s loop: the first problem met, in order, wins."""
    if not s:
        raise NumError(func, s0, _SYNTAX)
    n = 0
    for ch in s:
        if not "0" <= ch <= "9":
            raise NumError(func, s0, _SYNTAX)
        n = n * 10 + (ord(ch) - 48)
        if n > _UINT64_MAX:
            raise NumError(func, s0, _RANGE)
    return n


def parse_uint(s):
    """Go: strconv.ParseUint(s, 10, 64)."""
    return _parse_uint10(s, "ParseUint", s)


def atoi(s):
    """Go: strconv.Atoi on a 64-bit platform."""
    body = s
    neg = False
    if body[:1] in ("+", "-"):
        neg = body[0] == "-"
        body = body[1:]
    un = _parse_uint10(body, "Atoi", s)
    if not neg and un >= _INT64_CUTOFF:
        raise NumError("Atoi", s, _RANGE)
    if neg and un > _INT64_CUTOFF:
        raise NumError("Atoi", s, _RANGE)
    return -un if neg else un
