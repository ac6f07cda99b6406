"""The config lexer. Ports nats-server `conf/lex.go` for the flat part of the format.

Like Go's lexer it is a state machine: each state is a method that consumes some input,
may emit items, and returns the next state; a stack of states says where to go once a
value is done (at the top level, `lex_top_value_end`). That shape is kept on purpose so the
full NATS format can grow here: maps and arrays push their own "value end" states, exactly
as Go's lexMapValueEnd and lexArrayValueEnd do.

What this lexer reads today: `key: value`, `key = value` and `key value` lines; `#` and
`//` comments; `;` or `,` after a value; bare, single- and double-quoted strings (with
Go's escapes in double-quoted and bare ones); booleans (true/false/yes/no/on/off);
integers with size suffixes (`1K` is 1000, `1KB`/`1KiB` 1024, ...); floats; Zulu datetimes;
`( ... )` blocks. Maps (`{`), arrays (`[`), `include` and `$VARIABLE` references are
recognised and skipped as a whole, and emitted as their own item so that the parser can
say clearly that they arrive with the full config format.

Departures from Go, each to make a mistake easier to find:
- Go stops at the first error; this lexer records it, skips to the end of the line and
  goes on, so that every error in a file is reported at once (Go's configErr spirit).
- Columns are 1-based on every line (Go's are 0-based on the first line only).
- A quoted string may not span lines: an unterminated quote is reported where it opens,
  instead of swallowing the lines up to the next quote.
- A number followed by letters is a string, after a fraction or a minus sign too (`1.5s`,
  `-1s`), as Go already does for positive integers (`10s`).
"""
from __future__ import annotations

import bisect
import enum
import re

EOF = ""  # what next() returns past the end of the input


class ItemType(enum.IntEnum):
    """Go: itemType."""

    ERROR = 0
    NIL = 1
    EOF = 2
    KEY = 3
    TEXT = 4
    STRING = 5
    BOOL = 6
    INTEGER = 7
    FLOAT = 8
    DATETIME = 9
    ARRAY_START = 10
    ARRAY_END = 11
    MAP_START = 12
    MAP_END = 13
    COMMENT_START = 14
    VARIABLE = 15
    INCLUDE = 16


class Item:
    """Go: item. `val` is the raw text (escapes resolved); `line`/`pos` are 1-based."""

    __slots__ = ("typ", "val", "line", "pos")

    def __init__(self, typ, val, line, pos):
        self.typ = typ
        self.val = val
        self.line = line
        self.pos = pos

    def __repr__(self):
        return f"Item({self.typ.name}, {self.val!r}, {self.line}:{self.pos})"


MAP_START = "{"
MAP_END = "}"
KEY_SEP_EQUAL = "="
KEY_SEP_COLON = ":"
ARRAY_START = "["
ARRAY_END = "]"
ARRAY_VAL_TERM = ","
MAP_VAL_TERM = ","
COMMENT_HASH_START = "#"
COMMENT_SLASH_START = "/"
DQ_STRING = '"'
SQ_STRING = "'"
OPT_VAL_TERM = ";"
TOP_OPT_START = "{"
TOP_OPT_VAL_TERM = ","
TOP_OPT_TERM = "}"
BLOCK_START = "("
BLOCK_END = ")"

_BOOLS = frozenset(("true", "false", "yes", "no", "on", "off"))
_NUMBER_SUFFIXES = frozenset("kKmMgGtTpPeE")
_DATE_AFTER_YEAR = re.compile(r"[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def is_whitespace(r):
    """Go: isWhitespace (spaces and tabs, not new lines)."""
    return r == " " or r == "\t"


def is_digit(r):
    """An ASCII digit (str.isdigit also accepts other scripts' digits)."""
    return "0" <= r <= "9"


def is_nl(r):
    return r == "\n" or r == "\r"


def is_space(r):
    """Go: unicode.IsSpace."""
    return r != EOF and r.isspace()


def is_key_separator(r):
    return r == KEY_SEP_EQUAL or r == KEY_SEP_COLON


def is_number_suffix(r):
    return r in _NUMBER_SUFFIXES and r != EOF


def is_value_end(r):
    """What may follow a number or bare string: Go's terminators in lexString."""
    return (is_nl(r) or r == EOF or is_whitespace(r) or r == OPT_VAL_TERM or r == MAP_VAL_TERM
            or r == MAP_END or r == ARRAY_END)


def describe(r):
    """A character for an error message (Go: escapeSpecial)."""
    if r == EOF:
        return "end of file"
    if r == "\n":
        return "new line"
    return repr(r)


class Lexer:
    """Go: lexer. `items()` runs the state machine to the end and returns the items."""

    def __init__(self, text):
        self.input = text
        self.start = 0  # start of the pending item's text
        self.tok_start = 0  # where the pending item begins, for its position
        self.pos = 0
        self.width = 0
        self.stack = []
        self.emitted = []
        self.string_parts = []  # pieces of a string with escapes (Go: stringParts)
        self.string_state = None  # the state to return to after an escape (Go: stringStateFn)
        self.quote = None  # the quote of a quoted key
        self.include_at = 0  # where an `include` directive starts
        self._line_starts = [0]
        for i, c in enumerate(text):
            if c == "\n":
                self._line_starts.append(i + 1)

    # -- machinery (Go: next, backup, peek, ignore, emit, errorf) -------------------------

    def location(self, index):
        """(line, column), both 1-based, of an index into the input."""
        line = bisect.bisect_right(self._line_starts, index)
        return line, index - self._line_starts[line - 1] + 1

    def next(self):
        if self.pos >= len(self.input):
            self.width = 0
            return EOF
        r = self.input[self.pos]
        self.pos += 1
        self.width = 1
        return r

    def backup(self):
        self.pos -= self.width

    def peek(self):
        r = self.next()
        self.backup()
        return r

    def ignore(self):
        self.start = self.pos
        self.tok_start = self.pos

    def push(self, state):
        self.stack.append(state)

    def pop(self):
        if not self.stack:
            return self.errorf("BUG in lexer: no states to pop")
        return self.stack.pop()

    def emit(self, typ, at=None):
        val = "".join(self.string_parts) + self.input[self.start:self.pos]
        self.string_parts = []
        line, col = self.location(self.tok_start if at is None else at)
        self.emitted.append(Item(typ, val, line, col))
        self.start = self.pos
        self.tok_start = self.pos

    def add_current_string_part(self, offset):
        self.string_parts.append(self.input[self.start:self.pos - offset])
        self.start = self.pos

    def add_string_part(self, s):
        self.string_parts.append(s)
        self.start = self.pos
        return self.string_state

    def errorf(self, message, at=None):
        """Record an error at `at` (default: the character just read), then recover."""
        if at is None:
            at = max(self.pos - self.width, 0)
        line, col = self.location(at)
        self.emitted.append(Item(ItemType.ERROR, message, line, col))
        return self.lex_recover

    def lex_recover(self):
        """Not in Go: skip the rest of the line and start over at the top level."""
        if not (self.pos > 0 and self.input[self.pos - 1] == "\n"):
            while True:
                r = self.next()
                if r == EOF or r == "\n":
                    break
        self.stack = []
        self.string_parts = []
        self.ignore()
        return self.lex_top

    def items(self):
        state = self.lex_top
        while state is not None:
            state = state()
        return self.emitted

    # -- top level ------------------------------------------------------------------------

    def lex_top(self):
        """Go: lexTop. Only a key (or a comment) can start here."""
        r = self.next()
        if is_space(r) or r == TOP_OPT_START:
            self.ignore()
            return self.lex_top
        if r == COMMENT_HASH_START:
            self.push(self.lex_top)
            return self.lex_comment_start
        if r == COMMENT_SLASH_START:
            if self.next() == COMMENT_SLASH_START:
                self.push(self.lex_top)
                return self.lex_comment_start
            self.backup()
            return self.errorf("unexpected '/': comments start with '#' or '//'")
        if r == EOF:
            self.emit(ItemType.EOF)
            return None
        self.backup()
        self.push(self.lex_top_value_end)
        return self.lex_key_start

    def lex_top_value_end(self):
        """Go: lexTopValueEnd. After a value only a comment or the end of the line may follow."""
        r = self.next()
        if r == COMMENT_HASH_START:
            self.push(self.lex_top)
            return self.lex_comment_start
        if r == COMMENT_SLASH_START and self.peek() == COMMENT_SLASH_START:
            self.next()
            self.push(self.lex_top)
            return self.lex_comment_start
        if is_whitespace(r):
            return self.lex_top_value_end
        if is_nl(r) or r == EOF or r == OPT_VAL_TERM or r == TOP_OPT_VAL_TERM or r == TOP_OPT_TERM:
            self.ignore()
            return self.lex_top
        return self.errorf(f"expected the value to end with a new line, a comment or ';', but got {describe(r)} "
                           "(quote a value that contains spaces)")

    # -- keys -----------------------------------------------------------------------------

    def lex_key_start(self):
        """Go: lexKeyStart."""
        r = self.peek()
        if is_key_separator(r):
            self.next()
            return self.errorf(f"unexpected key separator {r!r}: a key is missing")
        if is_space(r):
            self.next()
            self.ignore()
            return self.lex_key_start
        if r == DQ_STRING or r == SQ_STRING:
            self.next()
            self.ignore()
            self.quote = r
            return self.lex_quoted_key
        self.ignore()
        self.next()
        return self.lex_key

    def lex_quoted_key(self):
        """Go: lexDubQuotedKey and lexQuotedKey."""
        r = self.peek()
        if r == self.quote:
            self.emit(ItemType.KEY, at=self.tok_start - 1)
            self.next()
            self.ignore()
            return self.lex_key_end
        if r == EOF or is_nl(r):
            return self.errorf("unterminated quoted key", at=self.tok_start - 1)
        self.next()
        return self.lex_quoted_key

    def lex_key(self):
        """Go: lexKey. A key ends at white space, a separator or the end of the input."""
        r = self.peek()
        if is_space(r):
            return self.key_check_keyword(self.lex_key_end)
        if is_key_separator(r) or r == EOF:
            self.emit(ItemType.KEY)
            return self.lex_key_end
        self.next()
        return self.lex_key

    def key_check_keyword(self, fall_through):
        """Go: keyCheckKeyword. `include` followed by a space is a directive, not a key."""
        if self.input[self.start:self.pos].lower() == "include":
            self.include_at = self.start
            self.ignore()
            return self.lex_include_start
        self.emit(ItemType.KEY)
        return fall_through

    def lex_key_end(self):
        """Go: lexKeyEnd. Skip spaces, then an optional separator, then the value."""
        r = self.next()
        if is_whitespace(r):
            self.ignore()
            return self.lex_key_end
        if is_key_separator(r):
            self.ignore()
            return self.lex_value
        if is_nl(r) or r == EOF:
            key = self.emitted[-1]
            return self.errorf(f"key {key.val!r} has no value", at=self._index_of(key))
        self.backup()
        return self.lex_value

    def _index_of(self, item):
        return self._line_starts[item.line - 1] + item.pos - 1

    # -- include --------------------------------------------------------------------------

    def lex_include_start(self):
        r = self.next()
        if is_whitespace(r):
            self.ignore()
            return self.lex_include_start
        self.backup()
        return self.lex_include

    def lex_include(self):
        """Go: lexInclude and its string states: the path, quoted or bare."""
        at = self.include_at
        r = self.next()
        if r == DQ_STRING or r == SQ_STRING:
            self.ignore()
            while True:
                c = self.next()
                if c == r:
                    self.backup()
                    self.emit(ItemType.INCLUDE, at=at)
                    self.next()
                    self.ignore()
                    return self.pop()
                if c == EOF or is_nl(c):
                    return self.errorf("unterminated quoted include path", at=self.tok_start - 1)
        if is_nl(r) or r == EOF:
            return self.errorf("expected a file name after 'include'")
        while not (is_nl(r) or r == EOF or r == OPT_VAL_TERM or r == MAP_END or is_whitespace(r)):
            r = self.next()
        self.backup()
        self.emit(ItemType.INCLUDE, at=at)
        return self.pop()

    # -- values ---------------------------------------------------------------------------

    def lex_value(self):
        """Go: lexValue. White space may precede a value, a new line may not."""
        r = self.next()
        if is_whitespace(r):
            self.ignore()
            return self.lex_value
        if r == ARRAY_START or r == MAP_START:
            return self.lex_skip_nested(r)
        if r == SQ_STRING:
            self.ignore()
            return self.lex_quoted_string
        if r == DQ_STRING:
            self.ignore()
            self.string_state = self.lex_dub_quoted_string
            return self.lex_dub_quoted_string
        if r == "-":
            return self.lex_neg_number_start
        if r == BLOCK_START:
            self.ignore()
            return self.lex_block
        if is_digit(r):
            self.backup()
            return self.lex_number_start
        if r == ".":
            return self.errorf("floats must start with a digit")
        if is_nl(r) or r == EOF:
            key = self.emitted[-1] if self.emitted else None
            name = repr(key.val) if key is not None and key.typ == ItemType.KEY else "the key"
            return self.errorf(f"expected a value for {name} but found {describe(r)}")
        self.backup()
        self.string_state = self.lex_string
        return self.lex_string

    def lex_skip_nested(self, opener):
        """Not in Go yet: skip a whole map or array (nesting, strings and comments included)
        and emit it as one MAP_START / ARRAY_START item for the parser to refuse."""
        at = self.pos - 1
        depth = 1
        while depth:
            r = self.next()
            if r == EOF:
                kind = "map" if opener == MAP_START else "array"
                self.backup()
                return self.errorf(f"unterminated {kind}: {opener!r} is never closed", at=at)
            if r == DQ_STRING or r == SQ_STRING:
                while True:
                    c = self.next()
                    if c == EOF or c == r or is_nl(c):
                        break
                    if c == "\\" and r == DQ_STRING:
                        self.next()
            elif r == COMMENT_HASH_START or (r == COMMENT_SLASH_START and self.peek() == COMMENT_SLASH_START):
                while self.peek() not in ("\n", EOF):
                    self.next()
            elif r == MAP_START or r == ARRAY_START:
                depth += 1
            elif r == MAP_END or r == ARRAY_END:
                depth -= 1
        if opener == ARRAY_START and self.peek() == ":":
            return self.errorf(f"quote an IPv6 address with its port, as in \"{self.input[at:self.pos]}:4222\"",
                               at=at)
        self.emit(ItemType.MAP_START if opener == MAP_START else ItemType.ARRAY_START, at=at)
        return self.pop()

    def is_bool(self):
        return self.input[self.start:self.pos].lower() in _BOOLS

    def is_variable(self):
        """Go: isVariable. A bare string starting with `$` refers to a variable."""
        if self.start < len(self.input) and self.input[self.start] == "$":
            self.start += 1
            return True
        return False

    def lex_quoted_string(self):
        """Go: lexQuotedString. Single quotes: no escapes."""
        r = self.next()
        if r == SQ_STRING:
            self.backup()
            self.emit(ItemType.STRING)
            self.next()
            self.ignore()
            return self.pop()
        if r == EOF or is_nl(r):
            return self.errorf("unterminated quoted string (missing closing ')", at=self.tok_start - 1)
        return self.lex_quoted_string

    def lex_dub_quoted_string(self):
        """Go: lexDubQuotedString. Double quotes: Go's escapes."""
        r = self.next()
        if r == "\\":
            self.add_current_string_part(1)
            return self.lex_string_escape
        if r == DQ_STRING:
            self.backup()
            self.emit(ItemType.STRING)
            self.next()
            self.ignore()
            return self.pop()
        if r == EOF or is_nl(r):
            return self.errorf('unterminated quoted string (missing closing ")', at=self.tok_start - 1)
        return self.lex_dub_quoted_string

    def lex_string(self):
        """Go: lexString. A bare string, ended by white space, a new line, `;` or `,`."""
        r = self.next()
        if r == "\\":
            self.add_current_string_part(1)
            return self.lex_string_escape
        if is_value_end(r):
            self.backup()
            if self.string_parts:
                self.emit(ItemType.STRING)
            elif self.is_bool():
                self.emit(ItemType.BOOL)
            elif self.is_variable():
                self.emit(ItemType.VARIABLE)
            else:
                self.emit(ItemType.STRING)
            return self.pop()
        return self.lex_string

    def lex_block(self):
        """Go: lexBlock. Everything up to a `)` alone on its line is one string."""
        r = self.next()
        if r == EOF:
            return self.errorf("unterminated block: '(' needs a ')' alone on a later line", at=self.tok_start - 1)
        if r == BLOCK_END and self.pos >= 2 and self.input[self.pos - 2] == "\n" and self.peek() in ("\n", EOF):
            close = self.pos - 1
            self.pos = close - 1  # the block ends before the new line that precedes ')'
            self.emit(ItemType.STRING)
            self.pos = close + 1
            self.ignore()
            return self.pop()
        return self.lex_block

    def lex_string_escape(self):
        """Go: lexStringEscape."""
        r = self.next()
        if r == "x":
            return self.lex_string_binary
        simple = {"t": "\t", "n": "\n", "r": "\r", '"': '"', "\\": "\\"}
        if r in simple and r != EOF:
            return self.add_string_part(simple[r])
        return self.errorf(f"invalid escape character {describe(r)}; only \\xXX, \\t, \\n, \\r, \\\" and \\\\ "
                           "are allowed (use single quotes for a string without escapes)")

    def lex_string_binary(self):
        """Go: lexStringBinary: two hexadecimal digits after `\\x`."""
        digits = self.input[self.pos:self.pos + 2]
        if len(digits) < 2 or not re.fullmatch(r"[0-9a-fA-F]{2}", digits):
            return self.errorf(f"expected two hexadecimal digits after '\\x', but got {digits!r}")
        self.pos += 2
        self.add_string_part(chr(int(digits, 16)))
        return self.string_state

    # -- numbers --------------------------------------------------------------------------

    def lex_number_start(self):
        """Go: lexNumberOrDateOrStringOrIPStart."""
        r = self.next()
        if not is_digit(r):
            return self.errorf(f"expected a digit but got {describe(r)}")
        return self.lex_number

    def lex_number(self):
        """Go: lexNumberOrDateOrStringOrIP: an integer, float, datetime, IP or a string that
        starts with a digit (`10s`)."""
        r = self.next()
        if r == "-":
            if self.pos - self.start != 5:
                return self.errorf("dates must be in full ISO8601 Zulu form (2006-01-02T15:04:05Z)")
            return self.lex_date_after_year
        if is_digit(r):
            return self.lex_number
        if r == ".":
            return self.lex_float_start
        if is_number_suffix(r):
            return self.lex_convenient_number
        if not is_value_end(r):
            self.string_state = self.lex_string
            return self.lex_string
        self.backup()
        self.emit(ItemType.INTEGER)
        return self.pop()

    def lex_convenient_number(self):
        """Go: lexConvenientNumber: a size suffix (`1k`, `1MB`, `1GiB`)."""
        r = self.next()
        if r != EOF and r in "bBiI":
            return self.lex_convenient_number
        self.backup()
        if is_value_end(r):
            self.emit(ItemType.INTEGER)
            return self.pop()
        self.string_state = self.lex_string
        return self.lex_string

    def lex_date_after_year(self):
        """Go: lexDateAfterYear."""
        m = _DATE_AFTER_YEAR.match(self.input, self.pos)
        if not m:
            return self.errorf("dates must be in full ISO8601 Zulu form (2006-01-02T15:04:05Z)")
        self.pos = m.end()
        self.emit(ItemType.DATETIME)
        return self.pop()

    def lex_neg_number_start(self):
        """Go: lexNegNumberStart."""
        r = self.next()
        if not is_digit(r):
            return self.errorf(f"expected a digit after '-' but got {describe(r)}")
        return self.lex_neg_number

    def lex_neg_number(self):
        """Go: lexNegNumber."""
        r = self.next()
        if is_digit(r):
            return self.lex_neg_number
        if r == ".":
            return self.lex_float_start
        if is_number_suffix(r):
            return self.lex_convenient_number
        if not is_value_end(r):  # not in Go, which stops here: `-1s` is a string, like `1s`
            self.string_state = self.lex_string
            return self.lex_string
        self.backup()
        self.emit(ItemType.INTEGER)
        return self.pop()

    def lex_float_start(self):
        """Go: lexFloatStart."""
        r = self.next()
        if not is_digit(r):
            return self.errorf(f"floats must have a digit after the '.', but got {describe(r)}")
        return self.lex_float

    def lex_float(self):
        """Go: lexFloat. A second '.' makes it an IP address (`127.0.0.1:4222`)."""
        r = self.next()
        if is_digit(r):
            return self.lex_float
        if r == ".":
            return self.lex_ip_addr
        if not is_value_end(r):
            self.string_state = self.lex_string
            return self.lex_string
        self.backup()
        self.emit(ItemType.FLOAT)
        return self.pop()

    def lex_ip_addr(self):
        """Go: lexIPAddr."""
        r = self.next()
        if is_digit(r) or r in (".", ":", "-"):
            return self.lex_ip_addr
        if not is_value_end(r):
            self.string_state = self.lex_string
            return self.lex_string
        self.backup()
        self.emit(ItemType.STRING)
        return self.pop()

    # -- comments -------------------------------------------------------------------------

    def lex_comment_start(self):
        self.ignore()
        return self.lex_comment

    def lex_comment(self):
        """Go: lexComment: up to (not including) the new line."""
        r = self.peek()
        if is_nl(r) or r == EOF:
            self.ignore()
            return self.pop()
        self.next()
        return self.lex_comment


def lex(text):
    """All the items of `text`, ending with an EOF item (errors included, in order)."""
    return Lexer(text).items()
