"""Subject transforms and weighted subject mappings.

Ports the transform and mapping part of nats-server v2.9.10 `server/accounts.go` (MapDest,
mapping, AddWeightedMappings, RemoveMapping, selectMappedSubject, transformTokenize,
transformUntokenize, indexPlaceHolders and the transform type: newTransform, Match,
transformSubject, transform, reverse), `ValidateMappingDestination`, `subjectInfo` and
`isSubsetMatchTokenized` of `server/sublist.go`, the mapping errors of `server/errors.go`, and
`parseAccountMappings` / `parseAccountMapDest` of `server/opts.go`.

Subjects are `str`. A subject read from the wire is decoded as UTF-8 with "surrogateescape"
(lossless for any bytes) and a mapped subject is encoded back the same way: partition hashes
and the split/slice functions then work on the bytes Go works on, so non-ASCII subjects map
byte-for-byte as in Go.

Everything is computed when a transform is made (tokens, function arguments, source token
indexes); the per-message path (`select_mapped_subject`, `Mapping.select`,
`SubjectTransform.transform`) splits the subject once and uses no regular expression.
No socket, no gevent import.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .gofmt import NumError, atoi, go_quote

PWCS = "*"  # Go: pwcs
FWCS = ">"  # Go: fwcs
TSEP = "."  # Go: tsep

# -- errors (Go: errors.go) -----------------------------------------------------------------

ERR_BAD_SUBJECT = "invalid subject"
ERR_NO_TRANSFORMS = "no matching transforms available"
ERR_INVALID_MAPPING_DESTINATION = "invalid mapping destination"
ERR_INVALID_MAPPING_DESTINATION_SUBJECT = ERR_INVALID_MAPPING_DESTINATION + ": invalid subject"
ERR_MAPPING_DESTINATION_NOT_USING_ALL_WILDCARDS = (
    ERR_INVALID_MAPPING_DESTINATION + ": not using all of the token wildcard(s)")
ERR_UNKNOWN_MAPPING_DESTINATION_FUNCTION = ERR_INVALID_MAPPING_DESTINATION + ": unknown function"
ERR_MAPPING_DESTINATION_FUNCTION_WILDCARD_INDEX_OUT_OF_RANGE = (
    ERR_INVALID_MAPPING_DESTINATION + ": wildcard index out of range")
ERR_MAPPING_DESTINATION_FUNCTION_NOT_ENOUGH_ARGUMENTS = (
    ERR_INVALID_MAPPING_DESTINATION + ": not enough arguments passed to the function")
ERR_MAPPING_DESTINATION_FUNCTION_INVALID_ARGUMENT = (
    ERR_INVALID_MAPPING_DESTINATION + ": function argument is invalid or in the wrong format")
ERR_MAPPING_DESTINATION_FUNCTION_TOO_MANY_ARGUMENTS = (
    ERR_INVALID_MAPPING_DESTINATION + ": too many arguments passed to the function")


class TransformError(ValueError):
    """A bad transform or mapping. `err` is Go's sentinel text; `token`, when given, is the
    destination token at fault (Go: mappingDestinationErr, printed "<err> in <token>").

    `invalid_destination` is Go's errors.Is(err, ErrInvalidMappingDestination).
    """

    def __init__(self, err, token=None):
        super().__init__(err if token is None else f"{err} in {token}")
        self.err = err

    @property
    def invalid_destination(self):
        return self.err.startswith(ERR_INVALID_MAPPING_DESTINATION)


# -- mapping functions ------------------------------------------------------------------------

# Go's transform function types, in Go's order.
NO_TRANSFORM = 0
BAD_TRANSFORM = 1
PARTITION = 2
WILDCARD = 3
SPLIT_FROM_LEFT = 4
SPLIT_FROM_RIGHT = 5
SLICE_FROM_LEFT = 6
SLICE_FROM_RIGHT = 7
SPLIT = 8

# Go's regular expressions, with \s spelled as RE2 means it (Python's \s also takes \v and
# Unicode spaces). Go tries them in this order; only the first letter of each word may be
# upper case.
_WS = r"[\t\n\f\r ]"


def _function_re(name):
    return re.compile(r"\{\{" + _WS + "*" + name + _WS + r"*\((.*)\)" + _WS + r"*\}\}")


_WILDCARD_RE = _function_re("[wW]ildcard")
_PARTITION_RE = _function_re("[pP]artition")
_SPLIT_FROM_LEFT_RE = _function_re("[sS]plit[fF]rom[lL]eft")
_SPLIT_FROM_RIGHT_RE = _function_re("[sS]plit[fF]rom[rR]ight")
_SLICE_FROM_LEFT_RE = _function_re("[sS]lice[fF]rom[lL]eft")
_SLICE_FROM_RIGHT_RE = _function_re("[sS]lice[fF]rom[rR]ight")
_SPLIT_RE = _function_re("[sS]plit")
_FUNCTION_RES = (_PARTITION_RE, _WILDCARD_RE, _SPLIT_FROM_LEFT_RE, _SPLIT_FROM_RIGHT_RE,
                 _SLICE_FROM_LEFT_RE, _SLICE_FROM_RIGHT_RE, _SPLIT_RE)
_COMMA_SEPARATOR_RE = re.compile("," + _WS + "*")


def _is_function_token(t):
    return len(t) > 4 and t[:2] == "{{" and t[-2:] == "}}"


def _int32(n):
    """Go: int32(n), which wraps."""
    return (n + 2 ** 31) % 2 ** 32 - 2 ** 31


def _arg_int(token, arg):
    """Go: strconv.Atoi(strings.Trim(arg, " ")), a bad one reported against `token`."""
    try:
        return atoi(arg.strip(" "))
    except NumError:
        raise TransformError(ERR_MAPPING_DESTINATION_FUNCTION_INVALID_ARGUMENT, token) from None


def get_mapping_function_args(function_re, token):
    """Go: getMappingFunctionArgs. The comma-separated arguments, or None when `token` is not
    a call of that function."""
    m = function_re.search(token)
    if m is None:
        return None
    return _COMMA_SEPARATOR_RE.split(m.group(1))


def transform_index_int_args_helper(token, args, transform_type):
    """Go: transformIndexIntArgsHelper. For functions of (wildcard index, integer)."""
    if len(args) < 2:
        raise TransformError(ERR_MAPPING_DESTINATION_FUNCTION_NOT_ENOUGH_ARGUMENTS, token)
    if len(args) > 2:
        raise TransformError(ERR_MAPPING_DESTINATION_FUNCTION_TOO_MANY_ARGUMENTS, token)
    i = _arg_int(token, args[0])
    n = _arg_int(token, args[1])
    return transform_type, [i], _int32(n), ""


def index_place_holders(token):
    """Go: indexPlaceHolders. What a destination token does:
    (type, wildcard indexes, integer argument, string argument). Raises TransformError.

    `$n` (the old form) and `{{wildcard(n)}}` copy a wildcard; `{{partition(n, i...)}}`
    hashes wildcards into n partitions; `{{splitfromleft(i, n)}}`, `{{splitfromright(i, n)}}`,
    `{{slicefromleft(i, n)}}`, `{{slicefromright(i, n)}}` and `{{split(i, delimiter)}}` cut a
    wildcard into tokens. Anything else is a literal token.
    """
    if len(token) > 1:
        if token[0] == "$":
            try:
                return WILDCARD, [atoi(token[1:])], -1, ""
            except NumError:
                # Other things rely on tokens starting with $: a literal, not an error.
                return NO_TRANSFORM, [-1], -1, ""
        if _is_function_token(token):
            args = get_mapping_function_args(_WILDCARD_RE, token)
            if args is not None:
                if len(args) == 1 and args[0] == "":
                    raise TransformError(ERR_MAPPING_DESTINATION_FUNCTION_NOT_ENOUGH_ARGUMENTS, token)
                if len(args) > 1:
                    raise TransformError(ERR_MAPPING_DESTINATION_FUNCTION_TOO_MANY_ARGUMENTS, token)
                return WILDCARD, [_arg_int(token, args[0])], -1, ""
            args = get_mapping_function_args(_PARTITION_RE, token)
            if args is not None:
                if len(args) < 2:
                    raise TransformError(ERR_MAPPING_DESTINATION_FUNCTION_NOT_ENOUGH_ARGUMENTS, token)
                n = _arg_int(token, args[0])
                return PARTITION, [_arg_int(token, a) for a in args[1:]], _int32(n), ""
            for function_re, transform_type in ((_SPLIT_FROM_LEFT_RE, SPLIT_FROM_LEFT),
                                                (_SPLIT_FROM_RIGHT_RE, SPLIT_FROM_RIGHT),
                                                (_SLICE_FROM_LEFT_RE, SLICE_FROM_LEFT),
                                                (_SLICE_FROM_RIGHT_RE, SLICE_FROM_RIGHT)):
                args = get_mapping_function_args(function_re, token)
                if args is not None:
                    return transform_index_int_args_helper(token, args, transform_type)
            args = get_mapping_function_args(_SPLIT_RE, token)
            if args is not None:
                if len(args) < 2:
                    raise TransformError(ERR_MAPPING_DESTINATION_FUNCTION_NOT_ENOUGH_ARGUMENTS, token)
                if len(args) > 2:
                    raise TransformError(ERR_MAPPING_DESTINATION_FUNCTION_TOO_MANY_ARGUMENTS, token)
                i = _arg_int(token, args[0])
                if " " in args[1] or TSEP in args[1]:
                    raise TransformError(ERR_MAPPING_DESTINATION_FUNCTION_INVALID_ARGUMENT, token)
                return SPLIT, [i], -1, args[1]
            raise TransformError(ERR_UNKNOWN_MAPPING_DESTINATION_FUNCTION, token)
    return NO_TRANSFORM, [-1], -1, ""


def validate_mapping_destination(subject):
    """Go: ValidateMappingDestination. Raises TransformError for a bad destination."""
    sfwc = False
    for t in subject.split(TSEP):
        if not t or sfwc:
            raise TransformError(ERR_INVALID_MAPPING_DESTINATION_SUBJECT, t)
        if _is_function_token(t):
            if not any(r.search(t) for r in _FUNCTION_RES):
                raise TransformError(ERR_UNKNOWN_MAPPING_DESTINATION_FUNCTION, t)
            continue
        if t == FWCS:
            sfwc = True
        elif any(c in t for c in "\t\n\f\r "):
            raise TransformError(ERR_INVALID_MAPPING_DESTINATION_SUBJECT)


# -- subjects (Go: sublist.go) ------------------------------------------------------------------


def subject_info(subject):
    """Go: subjectInfo. (valid, tokens, number of `*`, has `>`); no whitespace check."""
    if not subject:
        return False, None, 0, False
    npwcs = 0
    sfwc = False
    tokens = subject.split(TSEP)
    for t in tokens:
        if not t or sfwc:
            return False, None, 0, False
        if t == FWCS:
            sfwc = True
        elif t == PWCS:
            npwcs += 1
    return True, tokens, npwcs, sfwc


def subject_has_wildcard(subject):
    """Go: subjectHasWildcard: a `*` or `>` token."""
    return any(t == PWCS or t == FWCS for t in subject.split(TSEP))


def subset_pattern(test):
    """What is_subset_match needs to know of the tokens `test` of a valid subject, worked
    out once: (number of tokens, ends in `>`, (index, literal token) pairs, `*` indexes)."""
    return (len(test), test[-1] == FWCS, tuple((i, t) for i, t in enumerate(test) if t != PWCS and t != FWCS),
            tuple(i for i, t in enumerate(test) if t == PWCS))


def is_subset_match(tokens, pattern):
    """Go: isSubsetMatchTokenized. Whether the subject `tokens` (which may hold wildcards) is
    within the subject of `pattern` (from subset_pattern): foo.* is within >, *.* and foo.*,
    not within foo.bar. A token that is `*` meets only a `*`; one that is `>` or empty meets
    nothing but the part under a trailing `>`."""
    n, fwc, literals, pwcs = pattern
    if len(tokens) < n if fwc else len(tokens) != n:
        return False
    for i, t in literals:
        if tokens[i] != t:
            return False
    for i in pwcs:
        t = tokens[i]
        if not t or t == FWCS:
            return False
    return True


# -- transforms -------------------------------------------------------------------------------


def get_hash_partition(key, num_buckets):
    """Go: transform.getHashPartition: FNV-1a (32 bit) of `key` (bytes) modulo `num_buckets`
    as a uint32. Go 2.9.10 panics (divides by zero) on 0 buckets; newer releases answer "0",
    as this does."""
    if num_buckets == 0:
        return "0"
    h = 0x811C9DC5
    for b in key:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return str(h % (num_buckets & 0xFFFFFFFF))


def _split_from_left(tok, position):
    if 0 < position < len(tok):
        return [tok[:position], tok[position:]]
    return [tok]  # too small to split at the requested position: don't split


def _split_from_right(tok, position):
    n = len(tok)
    if 0 < position < n:
        return [tok[:n - position], tok[n - position:]]
    return [tok]


def _slice_from_left(tok, size):
    n = len(tok)
    if not 0 < size < n:
        return [tok]  # too small to slice at the requested size: don't slice
    rem = n % size
    out = [tok[i:i + size] for i in range(0, n - rem, size)]
    if rem:
        out.append(tok[n - rem:])
    return out


def _slice_from_right(tok, size):
    n = len(tok)
    if not 0 < size < n:
        return [tok]
    rem = n % size
    out = [tok[:rem]] if rem else []
    out.extend(tok[i:i + size] for i in range(rem, n, size))
    return out


_CUTTERS = {SPLIT_FROM_LEFT: _split_from_left, SPLIT_FROM_RIGHT: _split_from_right,
            SLICE_FROM_LEFT: _slice_from_left, SLICE_FROM_RIGHT: _slice_from_right}


def _cut(cutter, tok, n):
    """Go cuts a token's bytes, which only differ from its characters when it is not ASCII."""
    if tok.isascii():
        return TSEP.join(cutter(tok, n))
    return b".".join(cutter(tok.encode("utf-8", "surrogateescape"), n)).decode("utf-8", "surrogateescape")


def _split(tok, delim):
    """Go: the Split case of transform.transform: empty pieces are dropped."""
    splits = tok.split(delim) if delim else list(tok)  # Go's strings.Split(s, "") gives each rune
    out = []
    last = len(splits) - 1
    for j, piece in enumerate(splits):
        out.append(piece)
        if j < last and splits[j + 1] and not (j == 0 and not piece):
            out.append(TSEP)
    return "".join(out)


class SubjectTransform:
    """Go: transform (made by newTransform / NewSubjectTransformer). Maps subjects matching
    `src` to `dest`, whose `$n` and `{{function(...)}}` tokens take the source's wildcards.

    Per destination token, as Go names them: dtokmftypes (function type) and
    dtokmftokindexesargs (source token indexes), both empty when the source has no wildcards.
    """

    __slots__ = ("src", "dest", "stoks", "dtokmftypes", "dtokmftokindexesargs", "_pattern", "_template",
                 "_funcs", "_fwc_from")

    def __init__(self, src, dest):
        """Go: newTransform. Raises TransformError (ERR_BAD_SUBJECT, or one of the
        ERR_*MAPPING_DESTINATION* texts)."""
        sv, stokens, npwcs, has_fwc = subject_info(src)
        dv, dtokens, dnpwcs, d_has_fwc = subject_info(dest)
        # Both valid, `>` on both sides or neither, and no `*` in the destination.
        if not sv or not dv or dnpwcs > 0 or has_fwc != d_has_fwc:
            raise TransformError(ERR_BAD_SUBJECT)
        types, indexes, int_args, string_args = [], [], [], []
        # Destination tokens are only read for placeholders when the source has wildcards.
        if npwcs > 0 or has_fwc:
            # Wildcard number (from 1) -> index of that `*` among the source tokens.
            sti = {}
            for i, t in enumerate(stokens):
                if t == PWCS:
                    sti[len(sti) + 1] = i
            nphs = 0
            for t in dtokens:
                ttype, wildcard_indexes, int_arg, string_arg = index_place_holders(t)
                if ttype == NO_TRANSFORM:
                    types.append(NO_TRANSFORM)
                    indexes.append([-1])
                    int_args.append(-1)
                    string_args.append("")
                    continue
                nphs += 1
                stis = []
                for wi in wildcard_indexes:
                    if wi > npwcs:
                        raise TransformError(ERR_MAPPING_DESTINATION_FUNCTION_WILDCARD_INDEX_OUT_OF_RANGE,
                                             f"{t}: [{wi}]")
                    stis.append(sti.get(wi, 0))  # Go's map gives 0 for $0 or $-1
                types.append(ttype)
                indexes.append(stis)
                int_args.append(int_arg)
                string_args.append(string_arg)
            if nphs < npwcs:
                raise TransformError(ERR_MAPPING_DESTINATION_NOT_USING_ALL_WILDCARDS, dest)
        self.src = src
        self.dest = dest
        self.stoks = stokens
        self.dtokmftypes = types
        self.dtokmftokindexesargs = indexes
        self._pattern = subset_pattern(stokens)
        # What transform() uses: the destination's literal tokens up to a trailing `>` (which
        # takes the source's tokens from `_fwc_from` on), with a hole at each function token
        # and, for each hole, (position, type, source token indexes, int arg, string arg).
        n = len(types)  # 0 when the source has no wildcards: transform() gives `dest`
        self._fwc_from = -1
        if types and dtokens[-1] == FWCS:
            n -= 1
            self._fwc_from = len(stokens) - 1
        self._template = tuple(dtokens[i] if types[i] == NO_TRANSFORM else "" for i in range(n))
        self._funcs = tuple((i, types[i], indexes[i], int_args[i], string_args[i])
                            for i in range(n) if types[i] != NO_TRANSFORM)

    def __repr__(self):
        return f"SubjectTransform({self.src!r}, {self.dest!r})"

    def match(self, subject):
        """Go: transform.Match. The mapped subject for the literal `subject`; raises
        TransformError(ERR_BAD_SUBJECT) for a non-literal one and ERR_NO_TRANSFORMS when it
        does not match `src`."""
        # A `>` to `>` transform maps anything to itself. (Go also takes an empty src or
        # dest here, which newTransform never makes.)
        if self.src == FWCS and self.dest == FWCS:
            return subject
        tokens = subject.split(TSEP)
        for t in tokens:
            if not t or t == PWCS or t == FWCS:
                raise TransformError(ERR_BAD_SUBJECT)
        if self.src == FWCS or is_subset_match(tokens, self._pattern):
            return self.transform(tokens)
        raise TransformError(ERR_NO_TRANSFORMS)

    def transform_subject(self, subject):
        """Go: transformSubject: transform without checking that `subject` matches."""
        return self.transform(subject.split(TSEP))

    def transform(self, tokens):
        """Go: transform.transform. The destination for the source subject's `tokens`."""
        if not self.dtokmftypes:
            return self.dest
        out = list(self._template)
        for pos, mftype, idxs, int_arg, string_arg in self._funcs:
            if mftype == WILDCARD:
                out[pos] = tokens[idxs[0]]
            elif mftype == PARTITION:
                key = "".join([tokens[i] for i in idxs]).encode("utf-8", "surrogateescape")
                out[pos] = get_hash_partition(key, int_arg)
            elif mftype == SPLIT:
                out[pos] = _split(tokens[idxs[0]], string_arg)
            else:
                out[pos] = _cut(_CUTTERS[mftype], tokens[idxs[0]], int_arg)
        if self._fwc_from >= 0:
            # The source's tokens from its `>` on (none: Go leaves the separator before it).
            out.extend(tokens[self._fwc_from:] or ("",))
        return TSEP.join(out)

    def reverse(self):
        """Go: transform.reverse. The transform back from dest to src, or None when there is
        none."""
        if not self.dtokmftokindexesargs:
            try:
                return SubjectTransform(self.dest, self.src)
            except TransformError:
                return None
        nsrc, phs = transform_untokenize(self.dest)
        nda = []
        for t in self.stoks:
            if t == PWCS:
                if not phs:
                    return None
                nda.append(phs.pop(0))
            else:
                nda.append(t)
        try:
            return SubjectTransform(nsrc, TSEP.join(nda))
        except TransformError:
            return None


def new_transform(src, dest):
    """Go: newTransform / NewSubjectTransformer."""
    return SubjectTransform(src, dest)


def transform_tokenize(subject):
    """Go: transformTokenize. Each `*` becomes its placeholder: foo.*.* -> foo.$1.$2."""
    out = []
    i = 1
    for t in subject.split(TSEP):
        if t == PWCS:
            out.append(f"${i}")
            i += 1
        else:
            out.append(t)
    return TSEP.join(out)


def transform_untokenize(subject):
    """Go: transformUntokenize. (subject with `$n` placeholders as `*`, the placeholders)."""
    phs = []
    out = []
    for t in subject.split(TSEP):
        if len(t) > 1 and t[0] == "$" and "1" <= t[1] <= "9":
            phs.append(t)
            out.append(PWCS)
        else:
            out.append(t)
    return TSEP.join(out), phs


# -- mappings (Go: Account.AddWeightedMappings, selectMappedSubject) ---------------------------


@dataclass
class MapDest:
    """Go: MapDest. One destination of a mapping: weight 0-100, optionally only for
    messages published in the cluster named `cluster`."""

    subject: str
    weight: int
    cluster: str = ""


class Destination:
    """Go: destination. A transform and its cumulative weight (the last one is 100 unless the
    mapping drops some messages)."""

    __slots__ = ("tr", "weight")

    def __init__(self, tr, weight):
        self.tr = tr
        self.weight = weight

    def __repr__(self):
        return f"Destination({self.tr.dest!r}, {self.weight})"


class Mapping:
    """Go: mapping. Published subjects matching `src` go to one of `dests`, or of
    `cdests[cluster name]` when the server's cluster has its own list."""

    __slots__ = ("src", "wc", "pattern", "dests", "cdests")

    def __init__(self, src, dests, cdests=None):
        self.src = src
        self.wc = subject_has_wildcard(src)
        self.pattern = subset_pattern(src.split(TSEP))
        self.dests = dests
        self.cdests = cdests or {}

    def __repr__(self):
        return f"Mapping({self.src!r}, {self.dests!r}, {self.cdests!r})"

    def select(self, subject, cluster_name, prand, tokens=None):
        """Go: Account.selectMappedSubject for this mapping alone: (new subject, True) when
        `subject` matches `src`, else (subject, False). The new subject is "" when the draw
        falls in the share the mapping drops. `prand` (a random.Random; Go keeps one per
        account) draws among weighted destinations. `tokens` is `subject` split on dots, if
        the caller has it."""
        if not self.wc:
            if self.src != subject:
                return subject, False
        else:
            if tokens is None:
                tokens = subject.split(TSEP)
            if not is_subset_match(tokens, self.pattern):
                return subject, False
        dests = self.dests
        if self.cdests:
            # Fall back to the main list when the cluster has none.
            dests = self.cdests.get(cluster_name) or dests
        if len(dests) == 1 and dests[0].weight == 100:
            d = dests[0]
        else:
            w = int(prand.random() * 100)  # Go: prand.Int31n(100)
            for d in dests:
                if w < d.weight:
                    break
            else:
                return "", True
        tr = d.tr
        if not tr.dtokmftokindexesargs:
            return tr.dest, True
        return tr.transform(tokens if tokens is not None else subject.split(TSEP)), True


def select_mapped_subject(mappings, subject, cluster_name, prand):
    """Go: Account.selectMappedSubject. The first of `mappings` that `subject` matches
    chooses its destination: (new subject, True); (subject, False) when none matches.
    Splits the subject at most once, however many mappings there are."""
    tokens = None
    for m in mappings:
        if not m.wc:
            # For a literal src a subset match is equality: no need to split the subject.
            if m.src == subject:
                return m.select(subject, cluster_name, prand)
            continue
        if tokens is None:
            tokens = subject.split(TSEP)
        if is_subset_match(tokens, m.pattern):
            return m.select(subject, cluster_name, prand, tokens)
    return subject, False


def _process_destinations(m, dests, seen):
    """Go: AddWeightedMappings' processDestinations. Unless the destinations add up to 100 or
    name the source itself (a mapping that wants loss), the source takes the rest; then
    weights become cumulative, smallest first."""
    ltw = sum(d.weight for d in dests)
    if ltw != 100 and m.src not in seen:
        dest = transform_tokenize(m.src) if m.wc else m.src
        dests.append(Destination(SubjectTransform(m.src, dest), 100 - ltw if dests else 100))
    dests.sort(key=lambda d: d.weight)
    lw = 0
    for d in dests:
        d.weight += lw
        lw = d.weight
    return dests


def add_weighted_mappings(mappings, src, dests):
    """Go: Account.AddWeightedMappings. Checks `dests` (MapDest list) and puts the Mapping
    for `src` in the list `mappings`, replacing one with the same src in place, else at the
    end. Returns `mappings`; raises TransformError with Go's texts (`mappings` unchanged)."""
    from .opts import _is_valid_config_subject  # Go: IsValidSubject; opts imports this module
    if not _is_valid_config_subject(src):
        raise TransformError(ERR_BAD_SUBJECT)
    m = Mapping(src, [])
    seen = set()
    tw = 0
    for d in dests:
        if d.subject in seen:
            raise TransformError(f"duplicate entry for {go_quote(d.subject)}")
        seen.add(d.subject)
        if not 0 <= d.weight <= 100:
            raise TransformError("individual weights need to be <= 100")
        tw += d.weight
        if tw > 100:
            raise TransformError("total weight needs to be <= 100")
        validate_mapping_destination(d.subject)
        dest = Destination(SubjectTransform(src, d.subject), d.weight)
        if d.cluster:
            m.cdests.setdefault(d.cluster, []).append(dest)
        else:
            m.dests.append(dest)
    m.dests = _process_destinations(m, m.dests, seen)
    for cluster, cdests in m.cdests.items():
        m.cdests[cluster] = _process_destinations(m, cdests, seen)
    for i, em in enumerate(mappings):
        if em.src == src:
            mappings[i] = m
            return mappings
    mappings.append(m)
    return mappings


def add_mapping(mappings, src, dest):
    """Go: Account.AddMapping. All of `src` to `dest`."""
    return add_weighted_mappings(mappings, src, [MapDest(dest, 100)])


def remove_mapping(mappings, src):
    """Go: Account.RemoveMapping. Like Go, moves the last mapping into the freed place."""
    for i, m in enumerate(mappings):
        if m.src == src:
            mappings[i] = mappings[-1]
            mappings.pop()
            return True
    return False


# -- configuration (Go: opts.go) --------------------------------------------------------------


def parse_account_map_dest(tk, errors):
    """Go: parseAccountMapDest. A MapDest from a `{dest, weight, cluster}` map token, or None
    after appending a ConfigErr to `errors`."""
    from .opts import ConfigErr, _want
    mv = tk.value
    if not isinstance(mv, dict):
        errors.append(ConfigErr(tk, "Expected an entry for the mapping destination"))
        return None
    mdest = MapDest("", 0)
    has_weight = False
    try:
        for k, vtk in mv.items():
            key = k.lower()
            v = vtk.value
            if key in ("dest", "destination"):
                mdest.subject = _want(k, vtk, "str")
            elif key == "weight":
                if isinstance(v, str):
                    ws = v[:-1] if v.endswith("%") else v
                    try:
                        weight = atoi(ws)
                    except NumError:
                        raise ConfigErr(vtk, f"Invalid weight {go_quote(ws)} for mapping destination") from None
                elif isinstance(v, int) and not isinstance(v, bool):
                    weight = v
                else:
                    shown = str(v).lower() if isinstance(v, bool) else vtk.plain()
                    raise ConfigErr(vtk, f"Unknown entry type for weight of {shown}")
                if not 0 <= weight <= 100:
                    raise ConfigErr(vtk, f"Invalid weight {weight} for mapping destination")
                mdest.weight = weight
                has_weight = True
            elif key == "cluster":
                mdest.cluster = _want(k, vtk, "str")
            else:
                raise ConfigErr(vtk, f"Unknown field {go_quote(k)} for mapping destination")
    except ConfigErr as e:
        errors.append(e)
        return None
    if not has_weight:
        errors.append(ConfigErr(tk, f"Missing weight for mapping destination {go_quote(mdest.subject)}"))
        return None
    return mdest


def parse_account_mappings(tk, errors):
    """Go: parseAccountMappings. [(source subject, [MapDest])] of a `mappings` (or `maps`)
    block, at the top level or in an account: each key a source subject, each value a
    destination subject, a `{dest, weight, cluster}` map, or a list of such maps. Each
    mapping is checked as add_weighted_mappings will take it; problems are appended to
    `errors` as ConfigErr with Go's texts, and a mapping with any problem is left out."""
    from .opts import ConfigErr, _describe, _is_valid_config_subject
    am = tk.value
    if not isinstance(am, dict):
        errors.append(ConfigErr(tk, f"Expected mappings to be a map, got {_describe(am)}"))
        return []
    out = []
    for subj, mtk in am.items():
        if not _is_valid_config_subject(subj):
            errors.append(ConfigErr(mtk, f"Subject {go_quote(subj)} is not a valid subject"))
            continue
        v = mtk.value
        if isinstance(v, str):
            dests = [MapDest(v, 100)]
            to = go_quote(v)
        else:
            n = len(errors)
            entries = v if isinstance(v, list) else [mtk]
            dests = [parse_account_map_dest(etk, errors) for etk in entries]
            if len(errors) > n:
                continue
            # Go panics here (its message takes the value for a string); name the subjects.
            to = go_quote(dests[0].subject) if len(dests) == 1 else (
                "[" + " ".join(go_quote(d.subject) for d in dests) + "]")
        try:
            add_weighted_mappings([], subj, dests)
        except TransformError as e:
            errors.append(ConfigErr(mtk, f"Error adding mapping for {go_quote(subj)} to {to} : {e}"))
            continue
        out.append((subj, dests))
    return out
