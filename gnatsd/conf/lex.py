"""The config lexer. Ports nats-server `conf/lex.go`.

Like Go's lexer it is a state machine: each state is a method that consumes some input,
may emit items, and returns the next state; a stack of states says where to go once a
value is done (`lex_top_value_end` at the top level, `lex_map_value_end` in a map,
`lex_array_value_end` in an array). The state names are Go's, in snake case.

What it reads: `key: value`, `key = value` and `key value`; `#` and `//` comments; `;` or
`,` after a value; maps (`{ ... }`) and arrays (`[ ... ]`), nested, their entries separated
by commas or new lines; bare, single- and double-quoted strings (Go's escapes in
double-quoted and bare ones; quoted strings may span lines); booleans
(true/false/yes/no/on/off); integers with size suffixes (`1K` is 1000, `1KB`/`1KiB` 1024,
...); floats; Zulu datetimes; `( ... )` blocks (a string up to a `)` alone on its line);
`include path` and `$VARIABLE` references (resolved by the parser); JSON (a top-level
`{ ... }` around the whole file).

Departures from Go, each to make a mistake easier to find or to accept a file Go should:
- Go stops at the first error; this lexer records it and recovers (to the end of the line,
  inside the innermost open map or array), so that every error in a file is reported at
  once (Go's configErr spirit). Errors inside a string (a bad escape) do not even stop the
  string.
- Columns are 1-based on every line (Go's are 0-based on the first line only).
- An unterminated quoted string, map, array or block is reported where it opens, not at
  the end of the file. When an error follows a quoted string that spans lines, the message
  points at that string: a missing closing quote is the likely cause.
- A value starts on its key's line; only a map or an array may open on the next line
  (Go also takes `port` and `4222` on two lines as `port: 4222`, and, inside maps, any
  value on the line after `key:`). A key alone is an error, not ignored.
- A value may be missing neither before `;`, `,` or `}` (Go reads an empty string).
- A number followed by letters is a string, after a fraction or a minus sign too (`1.5s`,
  `-1s`), as Go already does for positive integers (`10s`); a number may end an array
  (`[1, 2]`: Go 2.9.10 reads `2]` as the start of a string and fails).
- Quoted keys may not span lines; `}` at the top level is only accepted to close a
  top-level `{` (JSON).
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
_HEX2 = re.compile(r"[0-9a-fA-F]{2}")
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", '"': '"', "\\": "\\"}

_MAP = "map"
_ARRAY = "array"


def is_whitespace(r):
    """Go: isWhitespace (spaces and tabs, not new lines)."""
    return r == " " or r == "\t"


def is_digit(r):
    """An ASCII digit (str.isdigit also accepts other scripts' digits)."""
    return "0" <= r <= "9" and r != EOF


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
    if r == "\r":
        return "carriage return"
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
        self.last_key = None  # the last KEY item, to name it in messages
        # Not in Go: the open maps and arrays, innermost last, as [kind, index of the
        # opening character, depth of the state stack when it opened], to recover from an
        # error inside one and to say where an unterminated one opens.
        self.containers = []
        self.top_braces = 0  # open top-level '{' (JSON)
        self.last_array_at = -1  # where the last array closed opened, for the IPv6 hint
        # A quoted string that spans lines and just closed, until its line ends well:
        # (opening quote, closing quote, emitted count, stack, containers, top braces), to
        # go back there.
        self.multiline = None
        self.eof_explained = False  # an unterminated string or block already explains the EOF
        self.last_recover = -1  # where the last recovery skipped nothing (lex_recover)
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
        """The next character, not consumed (and `backup` still undoes the last `next`)."""
        return self.input[self.pos] if self.pos < len(self.input) else EOF

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
        item = Item(typ, val, line, col)
        self.emitted.append(item)
        if typ == ItemType.KEY:
            self.last_key = item
        self.start = self.pos
        self.tok_start = self.pos
        return item

    def add_current_string_part(self, offset):
        self.string_parts.append(self.input[self.start:self.pos - offset])
        self.start = self.pos

    def add_string_part(self, s):
        self.string_parts.append(s)
        self.start = self.pos
        return self.string_state

    def report(self, message, at=None):
        """Record an error at `at` (default: the character just read); lexing goes on."""
        if at is None:
            at = max(self.pos - self.width, 0)
        if self.multiline is not None:
            line, col = self.location(self.multiline[0])
            message += (f" (the quoted string that opens at {line}:{col} spans several lines: "
                        "is its closing quote missing?)")
            self.multiline = None
        line, col = self.location(at)
        self.emitted.append(Item(ItemType.ERROR, message, line, col))

    def errorf(self, message, at=None):
        """Record an error, then recover (Go stops here)."""
        if self.multiline is not None:
            return self.unclosed_multiline_string()
        self.report(message, at)
        return self.lex_recover

    def unclosed_multiline_string(self):
        """Not in Go: an error on the line where a quoted string that spans lines closes
        most likely means that its opening quote was never closed, and that the string ran
        on to the next quote. Go back to the opening quote, report it, and go on with the
        line after it."""
        opened, closed, count, stack, containers, top_braces = self.multiline
        self.multiline = None
        quote = self.input[opened]
        line, col = self.location(closed)
        del self.emitted[count:]
        self.stack, self.containers, self.top_braces = stack, containers, top_braces
        self.report(f"unterminated quoted string (missing closing {quote}): the next {quote} is at {line}:{col}, "
                    "and what follows it there is not valid", at=opened)
        self.pos = opened + 1
        self.width = 0
        return self.lex_recover

    def lex_recover(self):
        """Not in Go: skip the rest of the line, then go on at the top level or in the
        innermost open map or array. A `}` or `]` on the skipped line still closes the
        innermost open map or array (and any container opened inside it)."""
        self.string_parts = []
        # At the start of a line there is nothing to skip, unless the last recovery was
        # here too: the error was about this very character, and must not come back forever.
        at_line_start = self.pos > 0 and self.input[self.pos - 1] == "\n"
        if not at_line_start or self.pos == self.last_recover:
            self.last_recover = -1
            depth = 0
            while True:
                r = self.next()
                if r == EOF or r == "\n":
                    break
                if r == DQ_STRING or r == SQ_STRING:
                    self._skip_quoted_on_line(r)
                elif r == COMMENT_HASH_START or (r == COMMENT_SLASH_START and self.peek() == COMMENT_SLASH_START):
                    while self.peek() not in ("\n", EOF):
                        self.next()
                elif r == MAP_START or r == ARRAY_START:
                    depth += 1
                elif r == MAP_END or r == ARRAY_END:
                    if depth:
                        depth -= 1
                    else:
                        self._close_containers(_MAP if r == MAP_END else _ARRAY)
        else:
            self.last_recover = self.pos
        self.ignore()
        if self.containers:
            kind, _, depth = self.containers[-1]
            del self.stack[depth:]
            return self.lex_map_key_start if kind == _MAP else self.lex_array_value
        self.stack = []
        return self.lex_top

    def _close_containers(self, kind):
        """Recovery: a closer of `kind` closes the innermost container of that kind and
        those open inside it; with none open, it is ignored."""
        for i in range(len(self.containers) - 1, -1, -1):
            if self.containers[i][0] == kind:
                while len(self.containers) > i:
                    closed = self.containers.pop()[0]
                    self.ignore()
                    self.emit(ItemType.MAP_END if closed == _MAP else ItemType.ARRAY_END, at=self.pos - 1)
                return

    def _skip_quoted_on_line(self, quote):
        """Recovery: skip a quoted string that closes on this line; an unclosed quote is
        skipped alone."""
        start = self.pos
        while True:
            c = self.peek()
            if c == EOF or c == "\n":
                self.pos = start
                return
            self.next()
            if c == quote:
                return
            if c == "\\" and quote == DQ_STRING and self.peek() not in ("\n", EOF):
                self.next()

    def items(self):
        state = self.lex_top
        while state is not None:
            state = state()
        return self.emitted

    def lex_eof(self):
        """Not in Go: the end of the input; every map or array still open is an error."""
        if not self.eof_explained:
            for kind, at, _ in self.containers:
                opener = MAP_START if kind == _MAP else ARRAY_START
                closer = MAP_END if kind == _MAP else ARRAY_END
                self.report(f"unterminated {kind}: {opener!r} is never closed (missing {closer!r})", at=at)
        self.containers = []
        self.emit(ItemType.EOF)
        return None

    def _key_name(self):
        return repr(self.last_key.val) if self.last_key is not None else "the key"

    # -- top level ------------------------------------------------------------------------

    def lex_top(self):
        """Go: lexTop. Only a key (or a comment) can start here."""
        r = self.next()
        if is_space(r):
            self.ignore()
            return self.lex_top
        if r == TOP_OPT_START:
            self.top_braces += 1
            self.ignore()
            return self.lex_top
        if r == TOP_OPT_TERM:
            if self.top_braces:
                self.top_braces -= 1
                self.ignore()
                return self.lex_top
            return self.errorf("unexpected '}': no map is open here")
        if r == ARRAY_END:
            return self.errorf("unexpected ']': no array is open here")
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
            return self.lex_eof
        self.backup()
        self.push(self.lex_top_value_end)
        return self.lex_key_start

    def lex_top_value_end(self):
        """Go: lexTopValueEnd. After a value only a comment or the end of the line may follow."""
        r = self.next()
        if r == COMMENT_HASH_START:
            self.multiline = None
            self.push(self.lex_top)
            return self.lex_comment_start
        if r == COMMENT_SLASH_START and self.peek() == COMMENT_SLASH_START:
            self.multiline = None
            self.next()
            self.push(self.lex_top)
            return self.lex_comment_start
        if is_whitespace(r):
            return self.lex_top_value_end
        if r == TOP_OPT_TERM:
            if not self.top_braces:
                return self.errorf("unexpected '}': no map is open here")
            self.top_braces -= 1
            r = OPT_VAL_TERM
        if is_nl(r) or r == EOF or r == OPT_VAL_TERM or r == TOP_OPT_VAL_TERM:
            self.multiline = None
            self.ignore()
            return self.lex_top
        return self.value_end_error(r, "expected the value to end with a new line, a comment or ';'")

    def value_end_error(self, r, expected):
        """Something other than a terminator after a value."""
        last = self.emitted[-1] if self.emitted else None
        if r == ":" and last is not None and last.typ == ItemType.ARRAY_END and self.last_array_at >= 0:
            text = self.input[self.last_array_at:self.pos - 1]
            return self.errorf(f"quote an IPv6 address with its port, as in \"{text}:4222\"", at=self.last_array_at)
        at = self.pos - self.width
        if r == MAP_END or r == ARRAY_END:
            self.backup()  # a closer still closes its map or array
        return self.errorf(f"{expected}, but got {describe(r)} (quote a value that contains spaces)", at=at)

    # -- keys (at the top level and in maps) ----------------------------------------------

    def _key_end_state(self):
        return self.lex_map_key_end if self.containers else self.lex_key_end

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
        """Go: lexDubQuotedKey, lexQuotedKey, lexMapDubQuotedKey and lexMapQuotedKey."""
        r = self.peek()
        if r == self.quote:
            self.emit(ItemType.KEY, at=self.tok_start - 1)
            self.next()
            self.ignore()
            return self._key_end_state()
        if r == EOF or is_nl(r):
            self.pos = self.tok_start  # the recovery reads the rest of the line again
            return self.errorf("unterminated quoted key", at=self.tok_start - 1)
        self.next()
        return self.lex_quoted_key

    def lex_key(self):
        """Go: lexKey and lexMapKey. A key ends at white space, a separator or the end of
        the input."""
        r = self.peek()
        if is_space(r):
            return self.key_check_keyword(self._key_end_state())
        if is_key_separator(r) or r == EOF:
            self.emit(ItemType.KEY)
            return self._key_end_state()
        self.next()
        return self.lex_key

    def key_check_keyword(self, fall_through):
        """Go: keyCheckKeyword. `include` followed by a space is a directive, not a key."""
        if self.input[self.start:self.pos].lower() == "include":
            self.include_at = self.start
            self.ignore()
            if self.containers:
                self.push(self.lex_map_value_end)
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
            return self.value_on_next_line(r)
        self.backup()
        return self.lex_value

    def value_on_next_line(self, r, message=None, at=None):
        """Not in Go: a key at the end of its line. Its value may be a map or an array that
        opens on a following line; anything else is an error (`message` at `at`, by default
        "key has no value" at the key)."""
        if r != EOF:
            j = self.pos
            while j < len(self.input) and self.input[j].isspace():
                j += 1
            if j < len(self.input) and self.input[j] in (MAP_START, ARRAY_START):
                self.pos = j
                self.ignore()
                return self.lex_value
        if message is not None:
            return self.errorf(message, at=at)
        key = self.last_key
        at = self._index_of(key) if key is not None else None
        return self.errorf(f"key {self._key_name()} has no value", at=at)

    def _index_of(self, item):
        return self._line_starts[item.line - 1] + item.pos - 1

    # -- include --------------------------------------------------------------------------

    def lex_include_start(self):
        """Go: lexIncludeStart."""
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
            return self.errorf("expected a file name after 'include'", at=at)
        if r in (ARRAY_START, MAP_START, BLOCK_START):
            return self.errorf(f"expected a file name after 'include', but found {r!r}")
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
        if r == ARRAY_START:
            self.containers.append([_ARRAY, self.pos - 1, len(self.stack)])
            self.ignore()
            self.emit(ItemType.ARRAY_START, at=self.pos - 1)
            return self.lex_array_value
        if r == MAP_START:
            self.containers.append([_MAP, self.pos - 1, len(self.stack)])
            self.ignore()
            self.emit(ItemType.MAP_START, at=self.pos - 1)
            return self.lex_map_key_start
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
            return self.errorf("floats must start with a digit (quote a value that starts with '.', such as a path)")
        if is_nl(r) or r == EOF:
            if self.last_key is not None and self.emitted[-1] is self.last_key:
                return self.value_on_next_line(r, f"expected a value for {self._key_name()} but found {describe(r)}",
                                               self.pos - self.width)
            return self.errorf(f"expected a value for {self._key_name()} but found {describe(r)}")
        if r in (OPT_VAL_TERM, ARRAY_VAL_TERM, MAP_END, ARRAY_END):
            self.backup()  # a closer still closes its map or array
            return self.errorf(f"expected a value for {self._key_name()} but found {describe(r)}", at=self.pos)
        self.backup()
        self.string_state = self.lex_string
        return self.lex_string

    def is_bool(self):
        return self.input[self.start:self.pos].lower() in _BOOLS

    def is_variable(self):
        """Go: isVariable. A bare string starting with `$` refers to a variable."""
        if self.start < len(self.input) and self.input[self.start] == "$":
            self.start += 1
            return True
        return False

    def _quoted_string_end(self):
        opened = self.tok_start - 1
        if "\n" in self.input[opened:self.pos]:
            self.multiline = (opened, self.pos - 1, len(self.emitted), list(self.stack),
                              [c[:] for c in self.containers], self.top_braces)
        self.backup()
        self.emit(ItemType.STRING)
        self.next()
        self.ignore()
        return self.pop()

    def _unterminated_string(self, quote):
        self.eof_explained = True
        return self.errorf(f"unterminated quoted string (missing closing {quote})", at=self.tok_start - 1)

    def lex_quoted_string(self):
        """Go: lexQuotedString. Single quotes: no escapes."""
        r = self.next()
        if r == SQ_STRING:
            return self._quoted_string_end()
        if r == EOF:
            return self._unterminated_string(SQ_STRING)
        return self.lex_quoted_string

    def lex_dub_quoted_string(self):
        """Go: lexDubQuotedString. Double quotes: Go's escapes."""
        r = self.next()
        if r == "\\":
            self.add_current_string_part(1)
            return self.lex_string_escape
        if r == DQ_STRING:
            return self._quoted_string_end()
        if r == EOF:
            return self._unterminated_string(DQ_STRING)
        return self.lex_dub_quoted_string

    def lex_string(self):
        """Go: lexString. A bare string, ended by white space, a new line, `;`, `,`, `]` or `}`."""
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
        """Go: lexBlock. Everything up to a `)` alone on its line is one string, which
        keeps the new lines after '(' and before ')'."""
        r = self.next()
        if r == EOF:
            self.eof_explained = True
            return self.errorf("unterminated block: '(' needs a ')' alone on a later line", at=self.tok_start - 1)
        if (r == BLOCK_END and self.pos >= 2 and self.input[self.pos - 2] == "\n"
                and self.input[self.pos:self.pos + 1] in ("\n", "\r", EOF)):
            close = self.pos - 1
            self.pos = close
            self.emit(ItemType.STRING)
            self.pos = close + 1
            self.ignore()
            return self.pop()
        return self.lex_block

    def lex_string_escape(self):
        """Go: lexStringEscape. A bad escape is reported; the string goes on without it."""
        r = self.next()
        if r == "x":
            return self.lex_string_binary
        if r in _ESCAPES and r != EOF:
            return self.add_string_part(_ESCAPES[r])
        self.report(f"invalid escape character {describe(r)}; only \\xXX, \\t, \\n, \\r, \\\" and \\\\ "
                    "are allowed (use single quotes for a string without escapes)")
        if r == EOF or is_nl(r):
            self.backup()
        self.start = self.pos
        return self.string_state

    def lex_string_binary(self):
        """Go: lexStringBinary: two hexadecimal digits after `\\x`."""
        digits = self.input[self.pos:self.pos + 2]
        if not _HEX2.fullmatch(digits):
            self.report(f"expected two hexadecimal digits after '\\x', but got {digits!r}", at=self.pos - 1)
            self.start = self.pos
            return self.string_state
        self.pos += 2
        self.add_string_part(chr(int(digits, 16)))
        return self.string_state

    # -- arrays ---------------------------------------------------------------------------

    def lex_array_value(self):
        """Go: lexArrayValue. New lines, white space and comments may come before a value."""
        r = self.next()
        if is_space(r):
            self.ignore()
            return self.lex_array_value
        if r == COMMENT_HASH_START or (r == COMMENT_SLASH_START and self.peek() == COMMENT_SLASH_START):
            if r == COMMENT_SLASH_START:
                self.next()
            self.push(self.lex_array_value)
            return self.lex_comment_start
        if r == ARRAY_VAL_TERM:
            return self.errorf("unexpected ',' in an array: a value is missing")
        if r == ARRAY_END:
            return self.lex_array_end
        if r == EOF:
            return self.lex_eof
        self.backup()
        self.push(self.lex_array_value_end)
        return self.lex_value

    def lex_array_value_end(self):
        """Go: lexArrayValueEnd. A value ends with ',', a new line or ']'."""
        r = self.next()
        if is_whitespace(r):
            self.ignore()
            return self.lex_array_value_end
        if r == COMMENT_HASH_START or (r == COMMENT_SLASH_START and self.peek() == COMMENT_SLASH_START):
            if r == COMMENT_SLASH_START:
                self.next()
            self.multiline = None
            self.push(self.lex_array_value_end)
            return self.lex_comment_start
        if r == ARRAY_VAL_TERM or is_nl(r):
            self.multiline = None
            self.ignore()
            return self.lex_array_value
        if r == ARRAY_END:
            return self.lex_array_end
        if r == EOF:
            return self.lex_eof
        return self.value_end_error(r, "expected ',' or ']' after an array value")

    def lex_array_end(self):
        """Go: lexArrayEnd. Assumes the ']' was just read."""
        self.last_array_at = self.containers.pop()[1]
        self.ignore()
        self.emit(ItemType.ARRAY_END, at=self.pos - 1)
        return self.pop()

    # -- maps -----------------------------------------------------------------------------

    def lex_map_key_start(self):
        """Go: lexMapKeyStart."""
        r = self.peek()
        if is_space(r):
            self.next()
            self.ignore()
            return self.lex_map_key_start
        if r == MAP_END:
            self.next()
            return self.lex_map_end
        if r == COMMENT_HASH_START or (r == COMMENT_SLASH_START and self.input[self.pos + 1:self.pos + 2] == "/"):
            self.next()
            if r == COMMENT_SLASH_START:
                self.next()
            self.push(self.lex_map_key_start)
            return self.lex_comment_start
        if r == EOF:
            return self.lex_eof
        if r == ARRAY_END:
            self.next()
            return self.errorf("unexpected ']' in a map", at=self.pos - 1)
        if r == MAP_VAL_TERM or r == OPT_VAL_TERM:
            self.next()
            return self.errorf(f"unexpected {r!r} in a map: a key is missing")
        return self.lex_key_start

    def lex_map_key_end(self):
        """Go: lexMapKeyEnd."""
        r = self.next()
        if is_whitespace(r):
            self.ignore()
            return self.lex_map_key_end
        self.push(self.lex_map_value_end)
        if is_key_separator(r):
            self.ignore()
            return self.lex_value
        if is_nl(r) or r == EOF:
            return self.value_on_next_line(r)
        self.backup()
        return self.lex_value

    def lex_map_value_end(self):
        """Go: lexMapValueEnd. A value ends with ',', ';', a new line or '}'."""
        r = self.next()
        if is_whitespace(r):
            self.ignore()
            return self.lex_map_value_end
        if r == COMMENT_HASH_START or (r == COMMENT_SLASH_START and self.peek() == COMMENT_SLASH_START):
            if r == COMMENT_SLASH_START:
                self.next()
            self.multiline = None
            self.push(self.lex_map_value_end)
            return self.lex_comment_start
        if r == OPT_VAL_TERM or r == MAP_VAL_TERM or is_nl(r):
            self.multiline = None
            self.ignore()
            return self.lex_map_key_start
        if r == MAP_END:
            return self.lex_map_end
        if r == EOF:
            return self.lex_eof
        return self.value_end_error(r, "expected ',' or '}' after a map value")

    def lex_map_end(self):
        """Go: lexMapEnd. Assumes the '}' was just read."""
        self.containers.pop()
        self.ignore()
        self.emit(ItemType.MAP_END, at=self.pos - 1)
        return self.pop()

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
        """Go: lexCommentStart (no COMMENT_START/TEXT items: nothing reads them)."""
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
