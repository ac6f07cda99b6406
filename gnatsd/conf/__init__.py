"""The NATS config format. Ports nats-server `conf/` (lex.go, parse.go).

For now only its flat part: top-level `key: value` lines. `parse(text)` and
`parse_file(path)` return an ordered mapping of key -> `Token` (value plus file, line and
column), or raise `ParseErrors` listing every syntax error as `file:line:col: message`.
Option processing (`gnatsd.opts.process_config_file`) gives the keys their meaning.
"""
from __future__ import annotations

from .lex import Item, ItemType, lex
from .parse import ParseError, ParseErrors, Parser, Token, parse, parse_file, read_config_file

__all__ = ["Item", "ItemType", "lex", "ParseError", "ParseErrors", "Parser", "Token", "parse", "parse_file",
           "read_config_file"]
