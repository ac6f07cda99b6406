"""The config parser. Ports nats-server `conf/parse.go` for the flat part of the format.

`parse` turns the lexer's items into an ordered mapping of key -> `Token`. Like Go's
pedantic mode (ParseFileWithChecks) every value is wrapped in a token that remembers the
file and the position of its key, so that option processing can report
`file:line:col: message` (Go: configErr).

Values are converted as Go's processItem does: strings stay strings, booleans
(true/yes/on, false/no/off) become bool, integers take a size suffix (`k` 1000, `kb`/`ki`/
`kib` 1024, and so on up to `e`/`eb`), floats become float, Zulu datetimes become
`datetime`. Maps, arrays, `include` and `$VARIABLE` references are refused with a message
saying they arrive with the full config format; when that lands, `Parser` grows a context
stack (Go: pushContext/popContext) and these branches become real.

Unlike Go, parsing does not stop at the first error: all of them are collected.
"""
from __future__ import annotations

import datetime as _dt
import os

from .lex import ItemType, lex

_SIZE_SUFFIXES = {
    "": 1,
    "k": 1000, "kb": 1024, "ki": 1024, "kib": 1024,
    "m": 1000 ** 2, "mb": 1024 ** 2, "mi": 1024 ** 2, "mib": 1024 ** 2,
    "g": 1000 ** 3, "gb": 1024 ** 3, "gi": 1024 ** 3, "gib": 1024 ** 3,
    "t": 1000 ** 4, "tb": 1024 ** 4, "ti": 1024 ** 4, "tib": 1024 ** 4,
    "p": 1000 ** 5, "pb": 1024 ** 5, "pi": 1024 ** 5, "pib": 1024 ** 5,
    "e": 1000 ** 6, "eb": 1024 ** 6, "ei": 1024 ** 6, "eib": 1024 ** 6,
}
INT64_MIN = -(2 ** 63)
INT64_MAX = 2 ** 63 - 1

FULL_FORMAT_LATER = "arrive with the full NATS config format; gnatsd's flat config parser does not read them yet"


class Token:
    """Go: conf token. A value with where it came from.

    `line`/`pos` are those of the key (Go moves a value's position to its key, "more useful
    when reporting errors"); `item` is the value's lexer item, whose `val` is the raw text
    (`2m` for the integer 2000000, which lets durations tell minutes from mega).
    """

    __slots__ = ("item", "value", "line", "pos", "source_file")

    def __init__(self, item, value, line, pos, source_file=""):
        self.item = item
        self.value = value
        self.line = line
        self.pos = pos
        self.source_file = source_file

    @property
    def typ(self):
        return self.item.typ

    def source(self):
        """Go: configErr.Source: `file:line:col`."""
        return f"{self.source_file}:{self.line}:{self.pos}"

    def __repr__(self):
        return f"Token({self.value!r} at {self.source()})"


class ParseError(ValueError):
    """One syntax error in a config file, at `file:line:col`."""

    def __init__(self, source_file, line, pos, reason):
        super().__init__(reason)
        self.source_file = source_file
        self.line = line
        self.pos = pos
        self.reason = reason

    def source(self):
        return f"{self.source_file}:{self.line}:{self.pos}"

    def __str__(self):
        return f"{self.source()}: {self.reason}"


class ParseErrors(ValueError):
    """All the syntax errors of a config file; `str()` gives one `file:line:col: message` a line."""

    def __init__(self, errors):
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = list(errors)


def convert_integer(raw):
    """Go: processItem's itemInteger case. Raises ValueError with a message."""
    i = 1 if raw[:1] == "-" else 0
    while i < len(raw) and "0" <= raw[i] <= "9":
        i += 1
    digits, suffix = raw[:i], raw[i:].strip().lower()
    num = int(digits)
    if not INT64_MIN <= num <= INT64_MAX:
        raise ValueError(f"integer {raw!r} is out of the range")
    if suffix not in _SIZE_SUFFIXES:
        raise ValueError(f"invalid size suffix in {raw!r}: use K, M, G, T, P, E (powers of 1000) "
                         "or KB, MB, GB, ... / KiB, MiB, GiB, ... (powers of 1024)")
    num *= _SIZE_SUFFIXES[suffix]
    if not INT64_MIN <= num <= INT64_MAX:
        raise ValueError(f"integer {raw!r} is out of the range")
    return num


class Parser:
    """Go: parser. Collects errors in `errors` instead of stopping at the first one."""

    def __init__(self, data, source_file=""):
        self.data = data
        self.source_file = source_file
        self.mapping = {}
        self.errors = []
        self._key = None  # the key item awaiting its value (Go: keys / ikeys stacks)

    def error(self, line, pos, reason):
        self.errors.append(ParseError(self.source_file, line, pos, reason))

    def parse(self):
        for it in lex(self.data):
            if it.typ == ItemType.EOF:
                break
            self.process_item(it)
        return self.mapping

    def process_item(self, it):
        """Go: processItem."""
        typ = it.typ
        if typ == ItemType.ERROR:
            self.error(it.line, it.pos, it.val)
            self._key = None
            return
        if typ == ItemType.KEY:
            self._key = it
            return
        if typ == ItemType.INCLUDE:
            self.error(it.line, it.pos, f"include {it.val!r}: include directives {FULL_FORMAT_LATER}")
            return
        key, self._key = self._key, None
        if key is None:  # the lexer only emits values after keys; keep the parser honest
            self.error(it.line, it.pos, f"value {it.val!r} without a key")
            return
        name = key.val
        try:
            if typ == ItemType.STRING:
                value = it.val
            elif typ == ItemType.BOOL:
                value = it.val.lower() in ("true", "yes", "on")
            elif typ == ItemType.INTEGER:
                value = convert_integer(it.val)
            elif typ == ItemType.FLOAT:
                value = float(it.val)
            elif typ == ItemType.DATETIME:
                value = _dt.datetime.strptime(it.val, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
            elif typ == ItemType.MAP_START:
                raise ValueError(f"{name}: maps ({{ ... }}) {FULL_FORMAT_LATER}")
            elif typ == ItemType.ARRAY_START:
                raise ValueError(f"{name}: arrays ([ ... ]) {FULL_FORMAT_LATER}")
            elif typ == ItemType.VARIABLE:
                raise ValueError(f"{name}: variable references (${it.val}) {FULL_FORMAT_LATER}")
            else:
                raise ValueError(f"{name}: unexpected {typ.name.lower()} {it.val!r}")
        except ValueError as e:
            self.error(key.line, key.pos, str(e))
            return
        # Go: setValue. A later definition of the same key replaces the earlier one.
        self.mapping.pop(name, None)
        self.mapping[name] = Token(it, value, key.line, key.pos, self.source_file)


def parse(data, source_file=""):
    """The ordered key -> Token mapping of config text. Raises ParseErrors."""
    p = Parser(data, source_file)
    mapping = p.parse()
    if p.errors:
        raise ParseErrors(p.errors)
    return mapping


def read_config_file(path):
    """The text of a config file; OSError with a plain message when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise OSError(f"cannot read config file {path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise OSError(e.errno, f"cannot read config file {path}: {e.strerror or e}") from None


def parse_file(path):
    """Go: ParseFileWithChecks. Raises OSError or ParseErrors."""
    return parse(read_config_file(path), os.fspath(path))
