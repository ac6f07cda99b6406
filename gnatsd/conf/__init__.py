"""The NATS config format. Ports nats-server `conf/` (lex.go, parse.go).

`parse(text)` and `parse_file(path)` return an ordered mapping of key -> `Token` (value
plus file, line and column; maps and arrays hold tokens too), or raise `ParseErrors`
listing every syntax error as `file:line:col: message`. `to_plain` strips the tokens.
`Parser` is the same without raising: its `errors` list and `mapping` are both kept.
Option processing (`gnatsd.opts.process_config_file`) gives the keys their meaning.
"""
from __future__ import annotations

from .lex import Item, ItemType, lex
from .parse import ParseError, ParseErrors, Parser, Token, parse, parse_file, read_config_file, to_plain

__all__ = ["Item", "ItemType", "lex", "ParseError", "ParseErrors", "Parser", "Token", "parse", "parse_file",
           "read_config_file", "to_plain"]
