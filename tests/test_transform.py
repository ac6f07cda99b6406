"""Tests for gnatsd/transform.py: subject transforms, weighted mappings and the `mappings`
config block.

Ported from nats-server v2.9.10: `TestSubjectTransforms`, `TestPlaceHolderIndex`,
`TestAccountMultiWeightedRouteMappings`, `TestAccountSimpleWeightedRouteMapping`,
`TestAccountRouteMappingsWithLossInjection`, `TestAccountRouteMappingsWithOriginClusterFilter`,
`TestGlobalAccountRouteMappingsConfiguration` (server/accounts_test.go),
`TestValidateDestinationSubject` (server/sublist_test.go) and `TestAccountSubjectMapping`
(test/accounts_cycles_test.go). GO_RESULTS and GO_P10_PARTITIONS were recorded from the
nats-server 2.9.10 binary: a config with GO_MAPPINGS, one subscriber on `>`, one PUB per
subject (None: Go delivered nothing, the mapped subject has an empty token); the config
error texts likewise come from `nats-server -t`.
"""
from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gnatsd.conf.parse import parse
from gnatsd.transform import (
    PARTITION,
    SLICE_FROM_LEFT,
    SPLIT,
    SPLIT_FROM_LEFT,
    SPLIT_FROM_RIGHT,
    WILDCARD,
    MapDest,
    TransformError,
    add_mapping,
    add_weighted_mappings,
    get_hash_partition,
    index_place_holders,
    is_subset_match,
    new_transform,
    parse_account_mappings,
    remove_mapping,
    select_mapped_subject,
    subset_pattern,
    transform_tokenize,
    transform_untokenize,
    validate_mapping_destination,
)

# -- transforms (Go: TestSubjectTransforms) -----------------------------------------------------


@pytest.mark.parametrize("src,dest", [
    ("foo.*.*", "bar.$2"),  # must place all pwcs
    ("foo", ""),  # must be valid subjects
    ("foo..", "bar"),
    ("foo.*", "bar.*"),  # wildcards in src must be matched by placements in dest
    ("foo.*", "bar.$2"),  # bad pwc token identifier
    ("foo.*", "bar.$1.>"),  # fwcs have to match
    ("foo.>", "bar.baz"),
    ("foo.*", "foo.$foo"),  # invalid $ value
    ("foo.*", "foo.{{wildcard(2)}}"),  # out of range wildcard index
    ("foo.*", "foo.{{unimplemented(1)}}"),  # unknown mapping function
    ("foo.*", "foo.{{partition(10)}}"),  # not enough arguments
    ("foo.*", "foo.{{wildcard(foo)}}"),  # invalid argument
    ("foo.*", "foo.{{wildcard()}}"),  # not enough arguments
    ("foo.*", "foo.{{wildcard(1,2)}}"),  # too many arguments
    ("foo.*", "foo.{{ wildcard5) }}"),  # bad mapping function
    ("foo.*", "foo.{{splitLeft(2,2}}"),
])
def test_subject_transforms_should_err(src, dest):
    with pytest.raises(TransformError) as ei:
        new_transform(src, dest)
    assert str(ei.value) == "invalid subject" or ei.value.invalid_destination


@pytest.mark.parametrize("src,dest", [
    ("foo", "bar"),
    ("foo.*.bar.*.baz", "req.$2.$1"),
    ("baz.>", "mybaz.>"),
    ("*", "{{splitfromleft(1,1)}}"),
])
def test_subject_transforms_should_be_ok(src, dest):
    tr = new_transform(src, dest)
    assert (tr.src, tr.dest) == (src, dest)


@pytest.mark.parametrize("src,dest,sample,expected", [
    ("foo", "bar", "foo", "bar"),
    ("foo.*.bar.*.baz", "req.$2.$1", "foo.A.bar.B.baz", "req.B.A"),
    ("baz.>", "my.pre.>", "baz.1.2.3", "my.pre.1.2.3"),
    ("baz.>", "foo.bar.>", "baz.1.2.3", "foo.bar.1.2.3"),
    ("*", "foo.bar.$1", "foo", "foo.bar.foo"),
    ("*", "{{splitfromleft(1,3)}}", "12345", "123.45"),
    ("*", "{{SplitFromRight(1,3)}}", "12345", "12.345"),
    ("*", "{{SliceFromLeft(1,3)}}", "1234567890", "123.456.789.0"),
    ("*", "{{SliceFromRight(1,3)}}", "1234567890", "1.234.567.890"),
    ("*", "{{split(1,-)}}", "-abc-def--ghi-", "abc.def.ghi"),
    ("*", "{{split(1,-)}}", "abc-def--ghi-", "abc.def.ghi"),
    # combo + split with several delimiters in a row and at the start or end
    ("*.*", "{{split(2,-)}}.{{splitfromleft(1,2)}}", "foo.-abc-def--ghij-", "abc.def.ghij.fo.o"),
    # not in Go's test
    (">", ">", "a.b.c", "a.b.c"),
    (">", "pre.>", "a.b", "pre.a.b"),
    ("foo.>", ">", "foo.a.b", "a.b"),
    ("*.*", "{{ wildcard( 2 ) }}.{{Wildcard(1)}}", "a.b", "b.a"),
])
def test_subject_transforms_should_match(src, dest, sample, expected):
    assert new_transform(src, dest).match(sample) == expected


def test_match_errors():
    tr = new_transform("foo.*", "bar.$1")
    for bad in ("foo.*", "foo.>", "foo..x", ""):
        with pytest.raises(TransformError, match="^invalid subject$"):
            tr.match(bad)
    for other in ("bar.x", "foo", "foo.x.y"):
        with pytest.raises(TransformError, match="^no matching transforms available$"):
            tr.match(other)
    # `>` to `>` takes anything as it is, as in Go.
    assert new_transform(">", ">").match("foo.*") == "foo.*"


def test_transform_subject_does_not_match():
    tr = new_transform("foo.*", "bar.$1")
    assert tr.transform_subject("xyz.1") == "bar.1"
    # Too few tokens for the `>`: Go leaves the separator written before it.
    assert new_transform("baz.>", "my.pre.>").transform_subject("baz") == "my.pre."


def test_transform_error_texts():
    cases = {
        ("foo.*", "bar.*"): "invalid subject",
        ("foo.*", "foo.{{wildcard(2)}}"):
            "invalid mapping destination: wildcard index out of range in {{wildcard(2)}}: [2]",
        ("foo.*.*", "foo.$1"):
            "invalid mapping destination: not using all of the token wildcard(s) in foo.$1",
        ("foo.*", "foo.{{unimplemented(1)}}"):
            "invalid mapping destination: unknown function in {{unimplemented(1)}}",
        ("foo.*", "foo.{{SPLIT(1,-)}}"): "invalid mapping destination: unknown function in {{SPLIT(1,-)}}",
        ("foo.*", "foo.{{split(1,- )}}"):
            "invalid mapping destination: function argument is invalid or in the wrong format in {{split(1,- )}}",
        ("foo.*", "foo.{{split(1,a,b)}}"):
            "invalid mapping destination: too many arguments passed to the function in {{split(1,a,b)}}",
        ("foo.*", "foo.{{splitfromleft(1)}}"):
            "invalid mapping destination: not enough arguments passed to the function in {{splitfromleft(1)}}",
        ("foo.*", "foo.{{partition(10,1,x)}}"):
            "invalid mapping destination: function argument is invalid or in the wrong format "
            "in {{partition(10,1,x)}}",
    }
    for (src, dest), text in cases.items():
        with pytest.raises(TransformError) as ei:
            new_transform(src, dest)
        assert str(ei.value) == text


def test_function_tokens_need_wildcards_in_src():
    """Go reads destination placeholders only when the source has wildcards."""
    assert new_transform("foo", "bar.$1.{{wildcard(1)}}").match("foo") == "bar.$1.{{wildcard(1)}}"


# -- placeholders and destinations (Go: TestPlaceHolderIndex, TestValidateDestinationSubject) ---


@pytest.mark.parametrize("token,expected", [
    ("$1", (WILDCARD, [1], -1, "")),
    ("{{partition(10,1,2,3)}}", (PARTITION, [1, 2, 3], 10, "")),
    ("{{ Partition (10,1,2,3) }}", (PARTITION, [1, 2, 3], 10, "")),
    ("{{wildcard(2)}}", (WILDCARD, [2], -1, "")),
    ("{{SplitFromLeft(2,1)}}", (SPLIT_FROM_LEFT, [2], 1, "")),
    ("{{SplitFromRight(3,2)}}", (SPLIT_FROM_RIGHT, [3], 2, "")),
    ("{{SliceFromLeft(2,2)}}", (SLICE_FROM_LEFT, [2], 2, "")),
    # not in Go's test
    ("{{split(1, -)}}", (SPLIT, [1], -1, "-")),
    ("$foo", (0, [-1], -1, "")),
    ("$", (0, [-1], -1, "")),
    ("{{partition(4294967299,1)}}", (PARTITION, [1], 3, "")),  # Go's int32() wraps
])
def test_place_holder_index(token, expected):
    assert index_place_holders(token) == expected


@pytest.mark.parametrize("subject", [
    "foo", "foo.bar", "*", ">", "foo.*", "foo.>", "foo.*.>", "foo.*.bar", "foo.bar.>",
    "foo.{{wildcard(1)}}", "foo.{{ wildcard(1) }}", "foo.{{wildcard( 1 )}}", "foo.{{partition(2,1)}}",
    "foo.{{SplitFromLeft(2,1)}}", "foo.{{SplitFromRight(2,1)}}",
])
def test_validate_destination_subject_ok(subject):
    validate_mapping_destination(subject)


@pytest.mark.parametrize("subject,text", [
    ("foo.{{unknown(1)}}", "invalid mapping destination: unknown function in {{unknown(1)}}"),
    ("foo..}", "invalid mapping destination: invalid subject in "),
    ("foo. bar}", "invalid mapping destination: invalid subject"),
    ("foo.>.bar", "invalid mapping destination: invalid subject in bar"),
])
def test_validate_destination_subject_errors(subject, text):
    with pytest.raises(TransformError) as ei:
        validate_mapping_destination(subject)
    assert str(ei.value) == text and ei.value.invalid_destination


# -- what the Go server maps to ------------------------------------------------------------------

GO_MAPPINGS = {
    "p10.*.*": "p10.$1.$2.{{partition(10,1,2)}}",
    "p3.*": "p3.{{partition(3,1)}}.$1",
    "p7.*.*": "p7.{{ Partition (7, 2,1) }}.$1",
    "pn.*": "pn.{{partition(-3,1)}}",
    "pbig.*": "pbig.{{partition(4294967299,1)}}",
    "sfl.*": "sfl.{{splitfromleft(1,2)}}",
    "sfr.*": "sfr.{{SplitFromRight(1,2)}}",
    "sll.*": "sll.{{SliceFromLeft(1,2)}}",
    "slr.*": "slr.{{sliceFromRight(1,2)}}",
    "spe.*": "spe.{{split(1,)}}",
    "spd.*": "spd.{{split(1,-)}}",
    "spm.*": "spm.{{split(1,ab)}}",
    "z0.*": "z0.$0",
    "zm.*": "zm.$-1",
    "zc.*": "zc.{{foo}}{{wildcard(1)}}",
    "fw.>": "x.>",
    "fw2.*.>": "y.$1.>",
    "fw3.*.*.>": "{{wildcard(2)}}.$1.>",
    "lit.*": "lit.$1.$foo.$",
}

# The partition Go gave `p10.{i}.{100-i}` for i in 0..99 (test/accounts_cycles_test.go's subjects).
GO_P10_PARTITIONS = ("40444820043840064064544804688238244826009224602688"
                     "70468424463668822264308648080474682400449828684824")

GO_RESULTS = [
    ("p3.a", "p3.1.a"),
    ("p3.b", "p3.1.b"),
    ("p3.hello", "p3.0.hello"),
    ("p3.\u00fcn\u00efcode", "p3.1.\u00fcn\u00efcode"),
    ("p3.\u65e5\u672c", "p3.0.\u65e5\u672c"),
    ("p3.12345", "p3.0.12345"),
    ("p3.foo-bar", "p3.1.foo-bar"),
    ("p3." + "x" * 40, "p3.2." + "x" * 40),
    ("p7.a.0", "p7.1.a"),
    ("p7.b.1", "p7.2.b"),
    ("p7.hello.2", "p7.3.hello"),
    ("p7.\u00fcn\u00efcode.3", "p7.2.\u00fcn\u00efcode"),
    ("p7.\u65e5\u672c.4", "p7.0.\u65e5\u672c"),
    ("p7.12345.5", "p7.2.12345"),
    ("p7.foo-bar.6", "p7.3.foo-bar"),
    ("p7." + "x" * 40 + ".7", "p7.0." + "x" * 40),
    # A negative partition count: Go's uint32() of it.
    ("pn.a", "pn.3826002220"),
    ("pn.b", "pn.3876335077"),
    ("pn.hello", "pn.1335831723"),
    ("pn.\u00fcn\u00efcode", "pn.1173504043"),
    ("pn.\u65e5\u672c", "pn.2670128721"),
    ("pn.12345", "pn.1136836824"),
    ("pn.foo-bar", "pn.906524791"),
    ("pn." + "x" * 40, "pn.2226015845"),
    ("pbig.a", "pbig.1"),
    ("pbig.b", "pbig.1"),
    ("pbig.hello", "pbig.0"),
    ("pbig.\u00fcn\u00efcode", "pbig.1"),
    ("pbig.\u65e5\u672c", "pbig.0"),
    ("pbig.12345", "pbig.0"),
    ("pbig.foo-bar", "pbig.1"),
    ("pbig." + "x" * 40, "pbig.2"),
    # Go cuts bytes: a cut inside a UTF-8 sequence leaves its halves (surrogate escapes here).
    ("sfl.a", "sfl.a"),
    ("sfl.ab", "sfl.ab"),
    ("sfl.abc", "sfl.ab.c"),
    ("sfl.abcde", "sfl.ab.cde"),
    ("sfl.a\u00e9bc", "sfl.a\udcc3.\udca9bc"),
    ("sfl.\u00e9\u00e9\u00e9", "sfl.\u00e9.\u00e9\u00e9"),
    ("sfl.\u65e5\u672cx", "sfl.\udce6\udc97.\udca5\u672cx"),
    ("sfr.a", "sfr.a"),
    ("sfr.ab", "sfr.ab"),
    ("sfr.abc", "sfr.a.bc"),
    ("sfr.abcde", "sfr.abc.de"),
    ("sfr.a\u00e9bc", "sfr.a\u00e9.bc"),
    ("sfr.\u00e9\u00e9\u00e9", "sfr.\u00e9\u00e9.\u00e9"),
    ("sfr.\u65e5\u672cx", "sfr.\u65e5\udce6\udc9c.\udcacx"),
    ("sll.a", "sll.a"),
    ("sll.ab", "sll.ab"),
    ("sll.abc", "sll.ab.c"),
    ("sll.abcde", "sll.ab.cd.e"),
    ("sll.a\u00e9bc", "sll.a\udcc3.\udca9b.c"),
    ("sll.\u00e9\u00e9\u00e9", "sll.\u00e9.\u00e9.\u00e9"),
    ("sll.\u65e5\u672cx", "sll.\udce6\udc97.\udca5\udce6.\udc9c\udcac.x"),
    ("slr.a", "slr.a"),
    ("slr.ab", "slr.ab"),
    ("slr.abc", "slr.a.bc"),
    ("slr.abcde", "slr.a.bc.de"),
    ("slr.a\u00e9bc", "slr.a.\u00e9.bc"),
    ("slr.\u00e9\u00e9\u00e9", "slr.\u00e9.\u00e9.\u00e9"),
    ("slr.\u65e5\u672cx", "slr.\udce6.\udc97\udca5.\udce6\udc9c.\udcacx"),
    # split with an empty delimiter: one token per character
    ("spe.a", "spe.a"),
    ("spe.ab", "spe.a.b"),
    ("spe.abc", "spe.a.b.c"),
    ("spe.abcde", "spe.a.b.c.d.e"),
    ("spe.a\u00e9bc", "spe.a.\u00e9.b.c"),
    ("spe.\u00e9\u00e9\u00e9", "spe.\u00e9.\u00e9.\u00e9"),
    ("spe.\u65e5\u672cx", "spe.\u65e5.\u672c.x"),
    ("spd.-abc-def--ghi-", "spd.abc.def.ghi"),
    ("spd.abc", "spd.abc"),
    ("spd.-", None),
    ("spd.--", None),
    ("spd.a-", "spd.a"),
    ("spd.-a", "spd.a"),
    ("spd.a--b", "spd.a.b"),
    ("spd.a-b-c", "spd.a.b.c"),
    ("spm.xabyabz", "spm.x.y.z"),
    ("spm.ab", None),
    ("spm.abab", None),
    ("spm.xab", "spm.x"),
    # $0 and $-1 take source token 0 (Go's map lookup of a missing wildcard gives 0)
    ("z0.q", "z0.z0"),
    ("zm.q", "zm.zm"),
    ("zc.q", "zc.q"),
    ("fw.1", "x.1"),
    ("fw.1.2.3", "x.1.2.3"),
    ("fw2.a.b", "y.a.b"),
    ("fw2.a.b.c", "y.a.b.c"),
    ("fw3.a.b.c.d", "b.a.c.d"),
    ("lit.q", "lit.q.$foo.$"),
]


PRAND = random.Random(0)  # Go: Account.prand; these mappings have one destination each


@pytest.fixture(scope="module")
def go_mappings():
    mappings = []
    for src, dest in GO_MAPPINGS.items():
        add_mapping(mappings, src, dest)
    return mappings


def test_partitions_as_go(go_mappings):
    """Go: TestAccountSubjectMapping's subjects, with the partition numbers Go gives."""
    for i in range(100):
        subject = f"p10.{i}.{100 - i}"
        assert select_mapped_subject(go_mappings, subject, "", PRAND) == (f"{subject}.{GO_P10_PARTITIONS[i]}", True)
    tr = new_transform("foo.*.*", "foo.$1.{{wildcard(2)}}.{{partition(10,1,2)}}")
    assert [tr.match(f"foo.{i}.{100 - i}").rsplit(".", 1)[1] for i in range(100)] == list(GO_P10_PARTITIONS)


@pytest.mark.parametrize("subject,expected", GO_RESULTS)
def test_mapped_as_go(go_mappings, subject, expected):
    mapped, changed = select_mapped_subject(go_mappings, subject, "", PRAND)
    assert changed
    if expected is None:
        assert "" in mapped.split(".")  # an empty token: delivered nowhere
    else:
        assert mapped == expected


def test_hash_partition():
    # FNV-1a 32: offset basis for no bytes, and a known vector ("a" -> 0xe40c292c).
    assert get_hash_partition(b"", 2 ** 31 - 1) == str(0x811C9DC5 % (2 ** 31 - 1))
    assert get_hash_partition(b"a", -1) == str(0xE40C292C % 0xFFFFFFFF)
    # Go 2.9.10 divides by zero (the server panics); newer releases answer "0".
    assert get_hash_partition(b"a", 0) == "0"
    assert new_transform("a.*", "a.{{partition(0,1)}}").match("a.b") == "a.0"


def _go_is_subset_match_tokenized(tokens, test):
    """Go's isSubsetMatchTokenized, line by line: the oracle for is_subset_match."""
    for i, t2 in enumerate(test):
        if i >= len(tokens):
            return False
        if not t2:
            return False
        if t2 == ">":
            return True
        t1 = tokens[i]
        if not t1 or t1 == ">":
            return False
        if t1 == "*":
            if t2 != "*":
                return False
            continue
        if t2 != "*" and t1 != t2:
            return False
    return len(tokens) == len(test)


_subject_tokens = st.lists(st.sampled_from(["a", "b", "*", ">", ""]), min_size=1, max_size=5)
_pattern_tokens = st.lists(st.sampled_from(["a", "b", "*"]), min_size=1, max_size=4).flatmap(
    lambda ts: st.sampled_from([ts, ts + [">"]]))


@given(_subject_tokens, _pattern_tokens)
def test_is_subset_match_as_go(tokens, test):
    assert is_subset_match(tokens, subset_pattern(test)) == _go_is_subset_match_tokenized(tokens, test)


# -- reverse and tokenize ----------------------------------------------------------------------


def test_tokenize_untokenize():
    assert transform_tokenize("foo.*.*") == "foo.$1.$2"
    assert transform_tokenize("*.bar.>") == "$1.bar.>"
    assert transform_untokenize("foo.$2.$1.$foo.$0.>") == ("foo.*.*.$foo.$0.>", ["$2", "$1"])


def test_reverse():
    tr = new_transform("foo.*.*", "bar.$2.$1")
    rtr = tr.reverse()
    assert (rtr.src, rtr.dest) == ("bar.*.*", "foo.$2.$1")
    assert rtr.match(tr.match("foo.a.b")) == "foo.a.b"
    lit = new_transform("foo", "bar").reverse()
    assert (lit.src, lit.dest) == ("bar", "foo")
    # A literal source: the plain swap, where "$1" is a literal token.
    assert new_transform("foo", "bar.$1").reverse().match("bar.$1") == "foo"
    assert new_transform("foo.*", "bar.{{wildcard(1)}}").reverse() is None  # no `$n` to put back
    fwc = new_transform("a.*.>", "b.$1.>").reverse()
    assert fwc.match("b.x.y.z") == "a.x.y.z"


_token = st.text(alphabet="abcxyz019-_\u00e9", min_size=1, max_size=6)


@given(st.lists(_token, min_size=3, max_size=3))
def test_reverse_round_trip(tokens):
    """For placeholders in order, as Go makes them for imports (transformTokenize). Like Go's,
    the reverse of a permutation other than a swap is not its inverse."""
    tr = new_transform("s.*.*.*", "d.$1.x.$2.$3")
    subject = "s." + ".".join(tokens)
    assert tr.reverse().match(tr.match(subject)) == subject


# -- weighted mappings (Go: accounts_test.go) ----------------------------------------------------


def test_multi_weighted_route_mappings_validation():
    """Go: TestAccountMultiWeightedRouteMappings, the shouldErr / shouldNotErr part."""
    mappings = []

    def should_err(*dests, text):
        with pytest.raises(TransformError) as ei:
            add_weighted_mappings(mappings, "foo", list(dests))
        assert str(ei.value) == text

    should_err(MapDest("bar", 150), text="individual weights need to be <= 100")
    add_weighted_mappings(mappings, "foo", [MapDest("bar", 50)])
    add_weighted_mappings(mappings, "foo", [MapDest("bar", 50), MapDest("baz", 50)])
    should_err(MapDest("bar", 50), MapDest("bar", 50), text='duplicate entry for "bar"')
    should_err(MapDest("bar", 50), MapDest("baz", 60), text="total weight needs to be <= 100")
    # Same subject for two clusters is a duplicate too.
    should_err(MapDest("bar", 50), MapDest("bar", 50, "c1"), text='duplicate entry for "bar"')
    assert len(mappings) == 1  # replaced in place, failures leave it
    assert [(d.tr.dest, d.weight) for d in mappings[0].dests] == [("bar", 50), ("baz", 100)]
    assert remove_mapping(mappings, "foo") and mappings == []
    assert not remove_mapping(mappings, "foo")
    with pytest.raises(TransformError, match="^invalid subject$"):
        add_mapping(mappings, "foo..bar", "x")
    with pytest.raises(TransformError, match="^invalid subject$"):
        add_mapping(mappings, "foo bar", "x")


def test_remainder_goes_to_source():
    mappings = []
    assert add_weighted_mappings(mappings, "foo", [MapDest("bar", 50), MapDest("baz", 30)]) is mappings
    assert [(d.tr.dest, d.weight) for d in mappings[0].dests] == [("foo", 20), ("baz", 50), ("bar", 100)]
    add_weighted_mappings(mappings, "foo.*.>", [MapDest("bar.$1.>", 40)])
    assert [(d.tr.dest, d.weight) for d in mappings[1].dests] == [("bar.$1.>", 40), ("foo.$1.>", 100)]
    # Naming the source itself means the rest is dropped.
    add_weighted_mappings(mappings, "loss", [MapDest("loss", 80)])
    assert [(d.tr.dest, d.weight) for d in mappings[2].dests] == [("loss", 80)]
    add_weighted_mappings(mappings, "none", [])
    assert [(d.tr.dest, d.weight) for d in mappings[3].dests] == [("none", 100)]
    assert [m.src for m in mappings] == ["foo", "foo.*.>", "loss", "none"]


def _draws(mappings, subject, n, cluster="", seed=1):
    prand = random.Random(seed)  # seeded: the same counts on every run
    return Counter(select_mapped_subject(mappings, subject, cluster, prand)[0] for _ in range(n))


def test_weighted_selection_statistics():
    """Go: TestAccountMultiWeightedRouteMappings' draws: each destination within 20 % of
    its share."""
    mappings = []
    add_weighted_mappings(mappings, "foo", [MapDest("bar", 50), MapDest("baz", 30)])
    total = 5000
    counts = _draws(mappings, "foo", total)
    for subject, weight in (("foo", 20), ("bar", 50), ("baz", 30)):
        expected = total * weight // 100
        assert abs(counts[subject] - expected) <= expected // 5, counts
    assert sum(counts.values()) == total


def test_weighted_wildcard_selection():
    """Go: TestGlobalAccountRouteMappingsConfiguration's foo.* mapping (40/20/40)."""
    mappings = []
    add_weighted_mappings(mappings, "foo.*", [MapDest("bar.v1.$1", 40), MapDest("baz.v2.$1", 20)])
    counts = _draws(mappings, "foo.22", 1000)
    assert set(counts) == {"bar.v1.22", "baz.v2.22", "foo.22"}
    assert counts["bar.v1.22"] > counts["baz.v2.22"] and counts["foo.22"] > counts["baz.v2.22"]


def test_loss_injection():
    """Go: TestAccountRouteMappingsWithLossInjection."""
    mappings = []
    add_weighted_mappings(mappings, "foo", [MapDest("foo", 80)])
    add_weighted_mappings(mappings, "bar", [MapDest("bar", 0)])
    counts = _draws(mappings, "foo", 1000)
    assert 0 < counts[""] < 1000 and counts[""] + counts["foo"] == 1000
    assert _draws(mappings, "bar", 1000) == {"": 1000}


def test_origin_cluster_filter():
    """Go: TestAccountRouteMappingsWithOriginClusterFilter."""
    mappings = []
    m = add_weighted_mappings(mappings, "foo", [MapDest("bar", 100, "SYN")])[0]
    assert [(d.tr.dest, d.weight) for d in m.dests] == [("foo", 100)]
    assert [(d.tr.dest, d.weight) for d in m.cdests["SYN"]] == [("bar", 100)]
    assert _draws(mappings, "foo", 100) == {"foo": 100}
    assert _draws(mappings, "foo", 100, "OTHER") == {"foo": 100}
    assert _draws(mappings, "foo", 100, "SYN") == {"bar": 100}


def test_select_first_match_wins():
    mappings = []
    add_mapping(mappings, "foo.*.*", "bar.$2.$1")
    add_mapping(mappings, "foo.>", "baz.>")
    add_mapping(mappings, "lit", "other")
    assert select_mapped_subject(mappings, "foo.1.2", "", PRAND) == ("bar.2.1", True)
    assert select_mapped_subject(mappings, "foo.1.2.3", "", PRAND) == ("baz.1.2.3", True)
    assert select_mapped_subject(mappings, "lit", "", PRAND) == ("other", True)
    assert select_mapped_subject(mappings, "nope", "", PRAND) == ("nope", False)
    # A published subject with a wildcard only meets the same wildcard (Go: isSubsetMatch).
    assert select_mapped_subject(mappings, "foo.*.x", "", PRAND) == ("bar.x.*", True)
    # Mapping.select on its own.
    assert mappings[1].select("foo.a", "", PRAND) == ("baz.a", True)
    assert mappings[1].select("foo.a.b", "", PRAND, ["foo", "a", "b"]) == ("baz.a.b", True)
    assert mappings[1].select("bar.a", "", PRAND) == ("bar.a", False)
    assert mappings[2].select("lit", "", PRAND) == ("other", True)
    assert mappings[2].select("lit2", "", PRAND) == ("lit2", False)


# -- the mappings config block (Go: parseAccountMappings) --------------------------------------


def _parse(text):
    errors = []
    entries = parse_account_mappings(parse(text, "m.conf", env={})["mappings"], errors)
    return entries, errors


def test_parse_mappings():
    """Go: TestGlobalAccountRouteMappingsConfiguration's block."""
    entries, errors = _parse("""
        mappings = {
            foo: bar
            foo.*: [ { dest: bar.v1.$1, weight: 40% }, { destination: baz.v2.$1, weight: 20 } ]
            bar.*.*: RAB.$2.$1
            c: { Dest: d, WEIGHT: "100", cluster: SYN }
            e: []
        }""")
    assert errors == []
    assert entries == [
        ("foo", [MapDest("bar", 100)]),
        ("foo.*", [MapDest("bar.v1.$1", 40), MapDest("baz.v2.$1", 20)]),
        ("bar.*.*", [MapDest("RAB.$2.$1", 100)]),
        ("c", [MapDest("d", 100, "SYN")]),
        ("e", []),
    ]
    mappings = []
    for src, dests in entries:
        add_weighted_mappings(mappings, src, dests)
    assert [(d.tr.dest, d.weight) for d in mappings[1].dests] == [
        ("baz.v2.$1", 20), ("bar.v1.$1", 60), ("foo.$1", 100)]
    assert [(d.tr.dest, d.weight) for d in mappings[3].cdests["SYN"]] == [("d", 100)]
    assert [(d.tr.dest, d.weight) for d in mappings[4].dests] == [("e", 100)]
    assert select_mapped_subject(mappings, "foo", "", PRAND) == ("bar", True)
    assert select_mapped_subject(mappings, "bar.11.22", "", PRAND) == ("RAB.22.11", True)


@pytest.mark.parametrize("block,text", [
    # nats-server 2.9.10's texts
    ('{ "foo.*": "bar.$2" }', 'Error adding mapping for "foo.*" to "bar.$2" : invalid mapping '
                              'destination: wildcard index out of range in $2: [2]'),
    ('{ "foo.*": "bar.*" }', 'Error adding mapping for "foo.*" to "bar.*" : invalid subject'),
    ('{ "foo": "" }', 'Error adding mapping for "foo" to "" : invalid mapping destination: '
                      'invalid subject in '),
    ('{ "foo": "bar. x" }', 'Error adding mapping for "foo" to "bar. x" : invalid mapping '
                            'destination: invalid subject'),
    ('{ "foo.*": "foo.{{partition(10,2)}}" }', 'Error adding mapping for "foo.*" to '
     '"foo.{{partition(10,2)}}" : invalid mapping destination: wildcard index out of range in '
     '{{partition(10,2)}}: [2]'),
    ('{ "foo.>": "bar" }', 'Error adding mapping for "foo.>" to "bar" : invalid subject'),
    ('{ "foo bar": "x" }', 'Subject "foo bar" is not a valid subject'),
    ('{ "foo..": bar }', 'Subject "foo.." is not a valid subject'),
    ('{ foo: 1 }', 'Expected an entry for the mapping destination'),
    ('{ foo: {dest: a} }', 'Missing weight for mapping destination "a"'),
    ('{ foo: [ {dest: "bar", weight: 150} ] }', 'Invalid weight 150 for mapping destination'),
    ('{ foo: {dest: bar, weight: -1} }', 'Invalid weight -1 for mapping destination'),
    ('{ foo: {dest: bar, weight: "101%"} }', 'Invalid weight 101 for mapping destination'),
    ('{ foo: {dest: bar, weight: "abc"} }', 'Invalid weight "abc" for mapping destination'),
    ('{ foo: {dest: a, weight: "50%%"} }', 'Invalid weight "50%" for mapping destination'),
    ('{ foo: {dest: a, weight: "99999999999999999999"} }',
     'Invalid weight "99999999999999999999" for mapping destination'),
    ('{ foo: {dest: bar, weight: true} }', 'Unknown entry type for weight of true'),
    ('{ foo: {dest: a, weight: 1.5} }', 'Unknown entry type for weight of 1.5'),
    ('{ foo: {dest: a, weight: 5, cluster: x, foo: 1} }',
     'Unknown field "foo" for mapping destination'),
    # Where Go panics ("interface conversion: ..."), gnatsd's words
    ('{ foo: [ {dest: bar, weight: 50}, {dest: baz, weight: 60} ] }',
     'Error adding mapping for "foo" to ["bar" "baz"] : total weight needs to be <= 100'),
    ('{ foo: [ {dest: bar, weight: 50}, {dest: bar, weight: 10, cluster: c} ] }',
     'Error adding mapping for "foo" to ["bar" "bar"] : duplicate entry for "bar"'),
    ('{ "foo.*": {dest: "bar.$3", weight: 50} }', 'Error adding mapping for "foo.*" to '
     '"bar.$3" : invalid mapping destination: wildcard index out of range in $3: [3]'),
    ('{ foo: {dest: 1, weight: 1} }', 'dest: expected a string, got integer 1'),
    ('{ foo: {weight: 50} }', 'Error adding mapping for "foo" to "" : invalid mapping '
                              'destination: invalid subject in '),
    ('foo', 'Expected mappings to be a map, got string "foo"'),
])
def test_parse_mappings_errors(block, text):
    entries, errors = _parse(f"mappings = {block}")
    assert [e.reason for e in errors] == [text]
    assert errors[0].source().startswith("m.conf:1:")
    assert entries == []


def test_parse_mappings_keeps_good_entries():
    entries, errors = _parse('mappings = { a: b, "c.*": "d.$2", e: [1, {dest: f}], g: h }')
    assert entries == [("a", [MapDest("b", 100)]), ("g", [MapDest("h", 100)])]
    assert [e.reason for e in errors] == [
        'Error adding mapping for "c.*" to "d.$2" : invalid mapping destination: wildcard index out of '
        'range in $2: [2]',
        "Expected an entry for the mapping destination",
        'Missing weight for mapping destination "f"',
    ]
