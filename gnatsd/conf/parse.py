"""The config parser. Ports nats-server `conf/parse.go`.

`Parser` turns the lexer's items into an ordered mapping of key -> `Token`. Like Go's
pedantic mode (ParseFileWithChecks) every value is wrapped in a token that remembers the
file and the position of its key, so that option processing can report
`file:line:col: message` (Go: configErr). A map's token holds a dict of key -> Token, an
array's a list of Tokens; `to_plain` strips the tokens.

Values are converted as Go's processItem does: strings stay strings, booleans
(true/yes/on, false/no/off) become bool, integers take a size suffix (`k` 1000, `kb`/`ki`/
`kib` 1024, and so on up to `e`/`eb`), floats become float, Zulu datetimes become
`datetime`.

`$NAME` is looked up as Go's lookupVariable does: in the maps being built, innermost
first (so a key defined earlier in the same map or an enclosing one), then in the
environment, whose value is parsed as a config value (`22` is an integer). A `$2a$...`
bcrypt hash is a plain string. A token that a variable reference used is marked
`used_variable`, so that option processing does not call its key unknown.

`include path` parses another file, relative to the directory of the including one, and
merges its keys where the directive stands (the top level or a map). As in Go, the
included file is parsed on its own: it does not see the including file's variables, while
its keys, variables included, become visible to what follows the directive.

Departures from Go:
- Parsing does not stop at the first error: all of them are collected, each at its own
  file:line:col (an error in an included file names that file).
- An include loop is an error (Go recurses until it runs out of stack), and so is an
  environment variable that refers to itself.
- An absolute include path is used as is (Go joins it to the including file's directory,
  so `include /etc/nats/x.conf` cannot work there).
- `$2b$`, `$2x$` and `$2y$` bcrypt hashes are strings too (Go: only `$2a$`).
"""
from __future__ import annotations

import datetime as _dt
import math
import os
import re

from .lex import Item, ItemType, lex

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

# Go: bcryptPrefix. A bare `$2a$11$...` is a bcrypt hash, not a variable.
_BCRYPT_PREFIX = re.compile(r"2[abxy]\$")
# Go: pkey, the key an environment variable's value is parsed under.
_ENV_KEY = "pk"


class Token:
    """Go: conf token. A value with where it came from.

    `line`/`pos` are those of the key in a map (Go moves a value's position to its key,
    "more useful when reporting errors"), of the value itself in an array. `item` is the
    value's lexer item, whose `val` is the raw text (`2m` for the integer 2000000, which
    lets durations tell minutes from mega); for a map or an array it is the item that
    opened it. `value` is a scalar, a dict of key -> Token or a list of Tokens.
    """

    __slots__ = ("item", "value", "line", "pos", "source_file", "used_variable")

    def __init__(self, item, value, line, pos, source_file=""):
        self.item = item
        self.value = value
        self.line = line
        self.pos = pos
        self.source_file = source_file
        self.used_variable = False  # Go: usedVariable, a variable reference used it

    @property
    def typ(self):
        return self.item.typ

    def source(self):
        """Go: configErr.Source: `file:line:col`."""
        return f"{self.source_file}:{self.line}:{self.pos}"

    def plain(self):
        """The value without tokens (dicts, lists and scalars)."""
        return to_plain(self)

    def __repr__(self):
        return f"Token({self.value!r} at {self.source()})"


def to_plain(value):
    """A token, or a dict or list of tokens, with every token replaced by its value."""
    if isinstance(value, Token):
        value = value.value
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    return value


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


def convert_scalar(it):
    """Go: processItem for a scalar item: its Python value. Raises ValueError."""
    typ = it.typ
    if typ == ItemType.STRING:
        return it.val
    if typ == ItemType.BOOL:
        return it.val.lower() in ("true", "yes", "on")
    if typ == ItemType.INTEGER:
        return convert_integer(it.val)
    if typ == ItemType.FLOAT:
        value = float(it.val)
        if math.isinf(value):
            raise ValueError(f"float {it.val!r} is out of the range")
        return value
    if typ == ItemType.DATETIME:
        try:
            return _dt.datetime.strptime(it.val, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
        except ValueError:
            raise ValueError(f"expected a Zulu formatted datetime, but got {it.val!r}") from None
    raise ValueError(f"unexpected {typ.name.lower()} {it.val!r}")


class _Frame:
    """A map or an array being built (Go: one entry of the ctxs stack, with the key that
    awaits its value, Go's keys/ikeys stacks)."""

    __slots__ = ("container", "key", "opened")

    def __init__(self, container, opened):
        self.container = container
        self.key = None
        self.opened = opened  # the MAP_START / ARRAY_START item


class Parser:
    """Go: parser. Collects errors in `errors` instead of stopping at the first one.

    `env` (default `os.environ`) is where `$NAME` references not defined in the file are
    looked up. `files` lists the files read, this one first, then the included ones in
    the order they were read.
    """

    def __init__(self, data, source_file="", env=None, _includes=(), _env_refs=None):
        self.data = data
        self.source_file = source_file
        self.env = os.environ if env is None else env
        self.mapping = {}
        self.errors = []
        self.files = [source_file]
        self._frames = [_Frame(self.mapping, None)]
        self._includes = _includes  # (display path, real path) of the files that include this one
        self._env_refs = set() if _env_refs is None else _env_refs  # environment variables being expanded

    def error(self, line, pos, reason, source_file=None):
        self.errors.append(ParseError(self.source_file if source_file is None else source_file, line, pos, reason))

    def parse(self):
        for it in lex(self.data):
            if it.typ == ItemType.EOF:
                break
            self.process_item(it)
        return self.mapping

    def process_item(self, it):
        """Go: processItem."""
        typ = it.typ
        frame = self._frames[-1]
        if typ == ItemType.ERROR:
            self.error(it.line, it.pos, it.val)
        elif typ == ItemType.KEY:
            frame.key = it
        elif typ == ItemType.MAP_START:
            self._frames.append(_Frame({}, it))
        elif typ == ItemType.ARRAY_START:
            self._frames.append(_Frame([], it))
        elif typ == ItemType.MAP_END or typ == ItemType.ARRAY_END:
            if len(self._frames) == 1:  # the lexer never does this; keep the parser honest
                self.error(it.line, it.pos, f"unexpected {typ.name.lower()}")
                return
            done = self._frames.pop()
            self.set_value(Token(done.opened, done.container, done.opened.line, done.opened.pos, self.source_file))
        elif typ == ItemType.INCLUDE:
            self.process_include(it)
        elif typ == ItemType.VARIABLE:
            tk = self.lookup_variable(it)
            if tk is None:
                frame.key = None
            else:
                self.set_value(tk)
        else:
            try:
                value = convert_scalar(it)
            except ValueError as e:
                at = frame.key if isinstance(frame.container, dict) and frame.key is not None else it
                frame.key = None
                self.error(at.line, at.pos, f"{at.val}: {e}" if at is not it else str(e))
                return
            self.set_value(Token(it, value, it.line, it.pos, self.source_file))

    def set_value(self, tk):
        """Go: setValue. In a map a later definition of a key replaces the earlier one."""
        frame = self._frames[-1]
        if isinstance(frame.container, list):
            frame.container.append(tk)
            return
        key, frame.key = frame.key, None
        if key is None:  # the lexer only emits values after keys; keep the parser honest
            self.error(tk.line, tk.pos, f"value {tk.item.val!r} without a key")
            return
        tk.line, tk.pos = key.line, key.pos
        frame.container.pop(key.val, None)
        frame.container[key.val] = tk

    # -- variables ------------------------------------------------------------------------

    def lookup_variable(self, it):
        """Go: lookupVariable. A new token for the value `$NAME` refers to, at the
        reference's position, or None after recording an error."""
        name = it.val
        if _BCRYPT_PREFIX.match(name):
            item = Item(ItemType.STRING, "$" + name, it.line, it.pos)
            return Token(item, item.val, it.line, it.pos, self.source_file)
        for frame in reversed(self._frames):
            if isinstance(frame.container, dict) and name in frame.container:
                ref = frame.container[name]
                ref.used_variable = True
                return Token(ref.item, ref.value, it.line, it.pos, self.source_file)
        if name in self.env:
            return self.lookup_env(it, name)
        self.error(it.line, it.pos, f"variable reference for '${name}' can not be found: define {name} earlier "
                                    f"in this file (or in an enclosing map), or set the environment variable {name}")
        return None

    def lookup_env(self, it, name):
        """An environment variable's value, parsed as a config value would be."""
        raw = self.env[name]
        if name in self._env_refs:
            self.error(it.line, it.pos, f"variable reference for '${name}': the environment variable {name} "
                                        "refers to itself")
            return None
        self._env_refs.add(name)
        try:
            sub = Parser(f"{_ENV_KEY}={raw}", f"${name}", env=self.env, _includes=self._includes,
                         _env_refs=self._env_refs)
            mapping = sub.parse()
        finally:
            self._env_refs.discard(name)
        if sub.errors or _ENV_KEY not in mapping:
            why = sub.errors[0].reason if sub.errors else "no value"
            self.error(it.line, it.pos, f"variable reference for '${name}' could not be parsed: the environment "
                                        f"variable {name}={raw!r}: {why}")
            return None
        tk = mapping[_ENV_KEY]
        _relocate(tk.value, it.line, it.pos, self.source_file)
        return Token(tk.item, tk.value, it.line, it.pos, self.source_file)

    # -- include --------------------------------------------------------------------------

    def process_include(self, it):
        """Go: processItem's itemInclude case: parse the file and merge its keys here."""
        frame = self._frames[-1]
        path = it.val
        # Go: filepath.Join, which also cleans the path
        full = os.path.normpath(path if os.path.isabs(path) else os.path.join(os.path.dirname(self.source_file), path))
        real = os.path.realpath(full)
        chain = self._includes + ((self.source_file or "<config>", os.path.realpath(self.source_file)
                                   if self.source_file else ""),)
        for i, (_, seen) in enumerate(chain):
            if seen == real:
                loop = " includes ".join([shown for shown, _ in chain[i:]] + [full])
                self.error(it.line, it.pos, f"include {path!r}: include loop ({loop})")
                return
        try:
            text = read_config_file(full)
        except OSError as e:
            self.error(it.line, it.pos, f"include {path!r}: {e.strerror or e}")
            return
        sub = Parser(text, full, env=self.env, _includes=chain, _env_refs=self._env_refs)
        mapping = sub.parse()
        self.errors.extend(sub.errors)
        self.files.extend(sub.files)
        if not isinstance(frame.container, dict):  # the lexer only reads include where keys go
            self.error(it.line, it.pos, f"include {path!r} is only allowed where a key may stand")
            return
        for k, tk in mapping.items():
            frame.container.pop(k, None)
            frame.container[k] = tk


def _relocate(value, line, pos, source_file):
    """Give every token inside a value parsed from an environment variable the position of
    the reference (their own is in the variable's text)."""
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for tk in items:
        tk.line, tk.pos, tk.source_file = line, pos, source_file
        _relocate(tk.value, line, pos, source_file)


def parse(data, source_file="", env=None):
    """The ordered key -> Token mapping of config text. Raises ParseErrors."""
    p = Parser(data, source_file, env=env)
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


def parse_file(path, env=None):
    """Go: ParseFileWithChecks. Raises OSError or ParseErrors."""
    path = os.fspath(path)
    return parse(read_config_file(path), path, env=env)
