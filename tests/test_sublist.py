"""Tests for gnatsd/sublist.py, ported from nats-server `server/sublist_test.go` (v2.9.10).

Go runs most cases twice, on a sublist with and without its match cache. gnatsd's Sublist
always caches, so the `sl` fixture gives either a plain Sublist ("cache") or one whose cache
is emptied before every match ("nocache"), which forces the trie walk each time.

The property tests at the end compare Sublist.match with a brute-force matcher over random
interleavings of insert, remove and match, which also checks that the cache stays coherent,
bounded, and that results already handed out never change.
"""
from __future__ import annotations

import sys
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gnatsd import sublist as sublist_mod
from gnatsd.sublist import (
    EMPTY_RESULT,
    SL_CACHE_MAX,
    Sublist,
    SublistError,
    is_valid_literal_subject,
    is_valid_subject,
    subject_matches,
)


class Sub:
    """Go: subscription, reduced to what the sublist reads. Hashed by identity, like Go's *subscription."""

    __slots__ = ("subject", "queue", "name")

    def __init__(self, subject, queue=None, name=None):
        self.subject = subject.encode() if isinstance(subject, str) else subject
        self.queue = queue.encode() if isinstance(queue, str) else queue
        self.name = name

    def __repr__(self):
        return f"Sub({self.subject!r}, {self.queue!r}, {self.name!r})"


def new_sub(subject):
    return Sub(subject)


def new_qsub(subject, queue):
    return Sub(subject, queue or None)


class NoCacheSublist(Sublist):
    """Go: NewSublistNoCache, approximated: every match walks the trie."""

    def match(self, subject):
        self.cache.clear()
        return Sublist.match(self, subject)


@pytest.fixture(params=["cache", "nocache"])
def sl(request):
    return Sublist() if request.param == "cache" else NoCacheSublist()


def m(s, subject):
    return s.match(subject.encode() if isinstance(subject, str) else subject)


# Go: verifyCount, verifyLen, verifyQLen, verifyMember, verifyQMember, findQSlot, numLevels.


def verify_member(subs, sub):
    assert any(s is sub for s in subs), f"{sub!r} not found in {list(subs)!r}"


def find_qslot(queue, qsubs):
    for i, group in enumerate(qsubs):
        if group and group[0].queue == queue:
            return i
    return -1


def verify_qmember(qsubs, sub):
    i = find_qslot(sub.queue, qsubs)
    assert i >= 0, f"no queue group {sub.queue!r} in result"
    verify_member(qsubs[i], sub)


def num_levels(s):
    """Go: numLevels / visitLevel: the depth of the trie, counting only non-empty levels."""

    def visit(level, depth):
        if level is None or level.num_nodes() == 0:
            return depth
        depth += 1
        best = depth
        for node in (*level.nodes.values(), level.pwc, level.fwc):
            if node is not None:
                best = max(best, visit(node.next, depth))
        return best

    return visit(s.root, 0)


# -- ports of sublist_test.go ---------------------------------------------------------------


def test_sublist_init():
    s = Sublist()
    assert s.count == 0
    assert s.all_subs() == []


def test_sublist_insert_count(sl):
    sl.insert(new_sub("foo"))
    sl.insert(new_sub("bar"))
    sl.insert(new_sub("foo.bar"))
    assert sl.count == 3


def test_sublist_simple(sl):
    sub = new_sub("foo")
    sl.insert(sub)
    r = m(sl, "foo")
    assert len(r.psubs) == 1
    verify_member(r.psubs, sub)


def test_sublist_simple_multi_tokens(sl):
    sub = new_sub("foo.bar.baz")
    sl.insert(sub)
    r = m(sl, "foo.bar.baz")
    assert len(r.psubs) == 1
    verify_member(r.psubs, sub)


def test_sublist_partial_wildcard(sl):
    lsub = new_sub("a.b.c")
    psub = new_sub("a.*.c")
    sl.insert(lsub)
    sl.insert(psub)
    r = m(sl, "a.b.c")
    assert len(r.psubs) == 2
    verify_member(r.psubs, lsub)
    verify_member(r.psubs, psub)


def test_sublist_partial_wildcard_at_end(sl):
    lsub = new_sub("a.b.c")
    psub = new_sub("a.b.*")
    sl.insert(lsub)
    sl.insert(psub)
    r = m(sl, "a.b.c")
    assert len(r.psubs) == 2
    verify_member(r.psubs, lsub)
    verify_member(r.psubs, psub)


def test_sublist_full_wildcard(sl):
    lsub = new_sub("a.b.c")
    fsub = new_sub("a.>")
    sl.insert(lsub)
    sl.insert(fsub)
    r = m(sl, "a.b.c")
    assert len(r.psubs) == 2
    verify_member(r.psubs, lsub)
    verify_member(r.psubs, fsub)
    # A published `>` is a literal token, matched by `>` (and `*`) subscriptions only.
    r = m(sl, "a.>")
    assert len(r.psubs) == 1
    verify_member(r.psubs, fsub)


def test_sublist_full_wildcard_needs_a_token(sl):
    # `a.>` matches one or more tokens after `a`, never `a` itself.
    sl.insert(new_sub("a.>"))
    assert len(m(sl, "a").psubs) == 0
    assert len(m(sl, "a.b").psubs) == 1


def test_sublist_remove(sl):
    subject = "a.b.c.d"
    sub = new_sub(subject)
    sl.insert(sub)
    assert sl.count == 1
    assert len(m(sl, subject).psubs) == 1
    assert sl.remove(new_sub("a.b.c")) is False
    assert sl.count == 1
    # Same subject, but not the inserted object: nothing is removed.
    assert sl.remove(new_sub(subject)) is False
    assert sl.count == 1
    assert sl.remove(sub) is True
    assert sl.count == 0
    assert len(m(sl, subject).psubs) == 0
    # A second remove is a no-op.
    assert sl.remove(sub) is False
    assert sl.count == 0


def test_sublist_remove_wildcard(sl):
    subject = "a.b.c.d"
    sub = new_sub(subject)
    psub = new_sub("a.b.*.d")
    fsub = new_sub("a.b.>")
    sl.insert(sub)
    sl.insert(psub)
    sl.insert(fsub)
    assert sl.count == 3
    assert len(m(sl, subject).psubs) == 3
    sl.remove(sub)
    assert sl.count == 2
    sl.remove(fsub)
    assert sl.count == 1
    sl.remove(psub)
    assert sl.count == 0
    assert len(m(sl, subject).psubs) == 0


def test_sublist_remove_cleanup(sl):
    literal = "a.b.c.d.e.f"
    depth = len(literal.split("."))
    sub = new_sub(literal)
    assert num_levels(sl) == 0
    sl.insert(sub)
    assert num_levels(sl) == depth
    sl.remove(sub)
    assert num_levels(sl) == 0
    assert not sl.root.nodes and sl.root.pwc is None and sl.root.fwc is None


def test_sublist_remove_cleanup_wildcards(sl):
    subject = "a.b.*.d.e.>"
    depth = len(subject.split("."))
    sub = new_sub(subject)
    assert num_levels(sl) == 0
    sl.insert(sub)
    assert num_levels(sl) == depth
    sl.remove(sub)
    assert num_levels(sl) == 0
    assert not sl.root.nodes and sl.root.pwc is None and sl.root.fwc is None


def test_sublist_remove_cleanup_keeps_shared_prefix(sl):
    a = new_sub("a.b.c")
    b = new_sub("a.b.d.e")
    q = new_qsub("a.b.d.e", "q")
    sl.insert(a)
    sl.insert(b)
    sl.insert(q)
    assert num_levels(sl) == 4
    sl.remove(b)
    assert num_levels(sl) == 4  # the queue sub still holds a.b.d.e
    sl.remove(q)
    assert num_levels(sl) == 3
    verify_member(m(sl, "a.b.c").psubs, a)
    sl.remove(a)
    assert num_levels(sl) == 0


def test_sublist_remove_with_large_subs(sl):
    # Go: plistMin*2 subscriptions on one subject, then remove from the middle, front, back.
    n = 512
    for _ in range(n):
        sl.insert(new_sub("foo"))
    r = m(sl, "foo")
    assert len(r.psubs) == n
    psubs = list(r.psubs)
    sl.remove(psubs[n // 2])
    sl.remove(psubs[0])
    sl.remove(psubs[-1])
    r = m(sl, "foo")
    assert len(r.psubs) == n - 3


@pytest.mark.parametrize(
    "subject", [".foo", "foo.", "foo..bar", "foo.bar..baz", "foo.>.bar", ">.foo", "", "."]
)
def test_sublist_invalid_subjects_insert(sl, subject):
    # Insert, or subscriptions, can have wildcards, but not empty tokens,
    # and can not have a FWC that is not the terminal token.
    with pytest.raises(SublistError, match="sublist: invalid subject"):
        sl.insert(new_sub(subject))
    assert sl.count == 0
    assert num_levels(sl) == 0


def test_sublist_cache():
    s = Sublist()
    # Test add a remove logistics
    subject = "a.b.c.d"
    sub = new_sub(subject)
    psub = new_sub("a.b.*.d")
    fsub = new_sub("a.b.>")
    s.insert(sub)
    assert len(m(s, subject).psubs) == 1
    s.insert(psub)
    s.insert(fsub)
    assert s.count == 3
    assert len(m(s, subject).psubs) == 3
    s.remove(sub)
    assert s.count == 2
    s.remove(fsub)
    assert s.count == 1
    s.remove(psub)
    assert s.count == 0
    # Check that cache is now empty
    assert len(s.cache) == 0
    assert len(m(s, subject).psubs) == 0

    for i in range(2 * SL_CACHE_MAX):
        m(s, f"foo-{i}\n")
        assert len(s.cache) <= SL_CACHE_MAX

    # Test that adding to a wildcard properly adds to the cache.
    s = Sublist()
    s.insert(new_sub("foo.*"))
    s.insert(new_sub("foo.bar"))
    assert len(m(s, "foo.baz").psubs) == 1
    assert len(m(s, "foo.bar").psubs) == 2
    s.insert(new_sub("foo.>"))
    assert len(m(s, "foo.bar").psubs) == 3


def test_sublist_cache_hit_and_stats():
    # Go: TestSublistAddCacheHitRate. The second and later matches come from the cache.
    s = Sublist()
    s.insert(new_sub("foo"))
    results = [m(s, "foo") for _ in range(4)]
    assert all(r is results[0] for r in results)
    assert s.matches == 4
    assert s.cache_hits == 3
    assert s.inserts == 1
    s.remove(s.all_subs()[0])
    assert s.removes == 1


def test_reply_inboxes_are_not_cached():
    # Each reply inbox gets one message: matching one must not evict the subjects that come
    # back, and a later subscription is seen at once.
    s = Sublist()
    s.insert(new_sub("_INBOX.abc.*"))
    s.insert(new_sub("foo"))
    m(s, "foo")
    for i in range(3 * SL_CACHE_MAX):
        assert len(m(s, f"_INBOX.abc.{i}").psubs) == 1
    assert list(s.cache) == [b"foo"]
    s.insert(new_sub("_INBOX.abc.7"))
    assert len(m(s, "_INBOX.abc.7").psubs) == 2
    assert len(m(s, "_INBOXES.x").psubs) == 0 and b"_INBOXES.x" in s.cache  # only the prefix


def test_sublist_cache_invalidation_is_selective():
    s = Sublist()
    s.insert(new_sub("foo.bar"))
    s.insert(new_sub("baz.bar"))
    r_foo = m(s, "foo.bar")
    r_baz = m(s, "baz.bar")
    # A wildcard under foo. can only change cached subjects under foo.
    s.insert(new_sub("foo.*"))
    assert m(s, "baz.bar") is r_baz
    assert m(s, "foo.bar") is not r_foo
    assert len(m(s, "foo.bar").psubs) == 2
    # A literal changes only its own subject.
    r_foo = m(s, "foo.bar")
    s.insert(new_sub("baz.qux"))
    assert m(s, "foo.bar") is r_foo
    assert m(s, "baz.bar") is r_baz
    # A leading wildcard can change anything.
    s.insert(new_sub("*.bar"))
    assert m(s, "baz.bar") is not r_baz
    assert len(m(s, "baz.bar").psubs) == 2
    assert len(m(s, "foo.bar").psubs) == 3


def test_sublist_cache_invalidation_wildcard_chars_inside_tokens():
    # `foo*` is a literal token: inserting it must still invalidate the cached `foo*`.
    s = Sublist()
    assert len(m(s, "foo*").psubs) == 0
    assert len(m(s, "a.b>").psubs) == 0
    sub = new_sub("foo*")
    s.insert(sub)
    assert list(m(s, "foo*").psubs) == [sub]
    sub2 = new_sub("a.b>")
    s.insert(sub2)
    assert list(m(s, "a.b>").psubs) == [sub2]
    s.remove(sub)
    assert len(m(s, "foo*").psubs) == 0


def test_sublist_basic_queue_results(sl):
    subject = "foo"
    sub = new_sub(subject)
    sub1 = new_qsub(subject, "bar")
    sub2 = new_qsub(subject, "baz")

    sl.insert(sub1)
    r = m(sl, subject)
    assert len(r.psubs) == 0
    assert len(r.qsubs) == 1
    assert len(r.qsubs[0]) == 1
    verify_qmember(r.qsubs, sub1)

    sl.insert(sub2)
    r = m(sl, subject)
    assert len(r.psubs) == 0
    assert len(r.qsubs) == 2
    assert len(r.qsubs[0]) == 1
    assert len(r.qsubs[1]) == 1
    verify_qmember(r.qsubs, sub1)
    verify_qmember(r.qsubs, sub2)

    sl.insert(sub)
    r = m(sl, subject)
    assert len(r.psubs) == 1
    assert len(r.qsubs) == 2
    verify_qmember(r.qsubs, sub1)
    verify_qmember(r.qsubs, sub2)
    verify_member(r.psubs, sub)

    sub3 = new_qsub(subject, "bar")
    sub4 = new_qsub(subject, "baz")
    sl.insert(sub3)
    sl.insert(sub4)
    r = m(sl, subject)
    assert len(r.psubs) == 1
    assert len(r.qsubs) == 2
    assert len(r.qsubs[0]) == 2
    assert len(r.qsubs[1]) == 2
    for q in (sub1, sub2, sub3, sub4):
        verify_qmember(r.qsubs, q)
    verify_member(r.psubs, sub)

    # Now removal
    sl.remove(sub)
    r = m(sl, subject)
    assert len(r.psubs) == 0
    assert len(r.qsubs) == 2
    assert len(r.qsubs[0]) == 2
    assert len(r.qsubs[1]) == 2
    verify_qmember(r.qsubs, sub1)
    verify_qmember(r.qsubs, sub2)

    sl.remove(sub1)
    r = m(sl, subject)
    assert len(r.psubs) == 0
    assert len(r.qsubs) == 2
    assert len(r.qsubs[find_qslot(sub1.queue, r.qsubs)]) == 1
    assert len(r.qsubs[find_qslot(sub2.queue, r.qsubs)]) == 2
    verify_qmember(r.qsubs, sub2)
    verify_qmember(r.qsubs, sub3)
    verify_qmember(r.qsubs, sub4)

    sl.remove(sub3)  # Last one
    r = m(sl, subject)
    assert len(r.psubs) == 0
    assert len(r.qsubs) == 1
    assert len(r.qsubs[0]) == 2  # this is sub2/baz now
    verify_qmember(r.qsubs, sub2)

    sl.remove(sub2)
    sl.remove(sub4)
    r = m(sl, subject)
    assert len(r.psubs) == 0
    assert len(r.qsubs) == 0
    assert sl.count == 0


def test_sublist_queue_results_across_wildcards(sl):
    # One group spread over several trie nodes comes back as one list per group name.
    subs = [
        new_qsub("foo.bar", "g1"),
        new_qsub("foo.*", "g1"),
        new_qsub("foo.>", "g1"),
        new_qsub(">", "g2"),
        new_qsub("*.bar", "g2"),
        new_qsub("foo.baz", "g3"),
        new_sub("foo.*"),
    ]
    for s in subs:
        sl.insert(s)
    r = m(sl, "foo.bar")
    assert len(r.psubs) == 1
    groups = {g[0].queue: g for g in r.qsubs}
    assert len(groups) == len(r.qsubs) == 2
    assert {id(s) for s in groups[b"g1"]} == {id(s) for s in subs[:3]}
    assert {id(s) for s in groups[b"g2"]} == {id(s) for s in subs[3:5]}
    for group in r.qsubs:
        assert len({g.queue for g in group}) == 1


@pytest.mark.parametrize(
    "subject,valid",
    [
        ("foo", True),
        (".foo", False),
        ("foo.", False),
        ("foo..bar", False),
        ("foo.bar.*", False),
        ("foo.bar.>", False),
        ("*", False),
        (">", False),
        ("", False),
        # These have wildcard characters but are not wildcards: not individual tokens.
        ("foo*", True),
        ("foo**", True),
        ("foo.**", True),
        ("foo*bar", True),
        ("foo.*bar", True),
        ("foo*.bar", True),
        ("*bar", True),
        ("foo>", True),
        ("foo>>", True),
        ("foo.>>", True),
        ("foo>bar", True),
        ("foo.>bar", True),
        ("foo>.bar", True),
        (">bar", True),
    ],
)
def test_sublist_valid_literal_subjects(subject, valid):
    assert is_valid_literal_subject(subject.encode()) is valid


@pytest.mark.parametrize(
    "subject,valid",
    [
        (".", False),
        (".foo", False),
        ("foo.", False),
        ("foo..bar", False),
        (">.bar", False),
        ("foo.>.bar", False),
        ("", False),
        ("foo", True),
        ("foo.bar.*", True),
        ("foo.bar.>", True),
        ("*", True),
        (">", True),
        ("*.>", True),
        ("foo*", True),
        ("foo**", True),
        ("foo.**", True),
        ("foo*bar", True),
        ("foo.*bar", True),
        ("foo*.bar", True),
        ("*bar", True),
        ("foo>", True),
        ("foo.>>", True),
        ("foo>bar", True),
        ("foo.>bar", True),
        ("foo>.bar", True),
        (">bar", True),
    ],
)
def test_sublist_valid_subjects(subject, valid):
    assert is_valid_subject(subject.encode()) is valid


@pytest.mark.parametrize(
    "literal,pattern,expected",
    [
        ("foo", "foo", True),
        ("foo", "bar", False),
        ("foo", "*", True),
        ("foo", ">", True),
        ("foo.bar", ">", True),
        ("foo.bar", "foo.>", True),
        ("foo.bar", "bar.>", False),
        ("stats.test.22", "stats.>", True),
        ("stats.test.22", "stats.*.*", True),
        ("foo.bar", "foo", False),
        ("stats.test.foos", "stats.test.foos", True),
        ("stats.test.foos", "stats.test.foo", False),
        ("stats.test", "stats.test.*", False),
        ("stats.test.foos", "stats.*", False),
        ("stats.test.foos", "stats.*.*.foos", False),
        # Wildcard characters that are not whole tokens are not wildcards.
        ("*bar", "*bar", True),
        ("foo*", "foo*", True),
        ("foo*bar", "foo*bar", True),
        ("foo.***.bar", "foo.***.bar", True),
        (">bar", ">bar", True),
        ("foo>", "foo>", True),
        ("foo>bar", "foo>bar", True),
        ("foo.>>>.bar", "foo.>>>.bar", True),
    ],
)
def test_sublist_match_literals(literal, pattern, expected):
    # Go: matchLiteral(literal, pattern); gnatsd: subject_matches(pattern, literal).
    assert subject_matches(pattern.encode(), literal.encode()) is expected


def test_sublist_bad_subject_on_remove(sl):
    bad = new_sub("a.b..d")
    with pytest.raises(SublistError):
        sl.insert(bad)
    # Go returns ErrInvalidSubject; gnatsd's remove reports "not there".
    assert sl.remove(bad) is False
    assert sl.remove(new_sub("a.>.b")) is False
    assert sl.count == 0


def test_sublist_bad_subject_on_remove_with_neighbours(sl):
    # Removing an invalid subject must not disturb valid subscriptions on a shared path.
    good = new_sub("a.>")
    sl.insert(good)
    assert sl.remove(new_sub("a.>.b")) is False
    assert sl.remove(new_sub("a..b")) is False
    assert sl.count == 1
    verify_member(m(sl, "a.b").psubs, good)


def test_sublist_two_token_pub_match_single_token_sub(sl):
    # This is from bug report #18
    sub = new_sub("foo")
    sl.insert(sub)
    r = m(sl, "foo")
    assert len(r.psubs) == 1
    verify_member(r.psubs, sub)
    assert len(m(sl, "foo.bar").psubs) == 0


def test_sublist_insert_with_wildcards_as_literals(sl):
    for subject in ("foo.*-", "foo.>-"):
        sub = new_sub(subject)
        sl.insert(sub)
        # Should find no match
        assert len(m(sl, "foo.bar").psubs) == 0
        # Should find a match
        assert len(m(sl, subject).psubs) == 1


def test_sublist_remove_with_wildcards_as_literals(sl):
    for subject in ("foo.*-", "foo.>-"):
        sub = new_sub(subject)
        sl.insert(sub)
        sl.remove(new_sub("foo.bar"))
        assert sl.count == 1
        sl.remove(sub)
        assert sl.count == 0


def test_sublist_shared_empty_result():
    s = Sublist()
    r1 = m(s, "foo")
    assert len(r1.psubs) == 0 and len(r1.qsubs) == 0
    r2 = m(s, "bar")
    assert len(r2.psubs) == 0 and len(r2.qsubs) == 0
    assert r1 is r2 is EMPTY_RESULT


def test_sublist_all():
    s = Sublist()
    subs = [new_sub("foo.bar.baz"), new_sub("foo"), new_sub("baz"), new_qsub("foo.*", "q"), new_sub(">")]
    for sub in subs:
        s.insert(sub)
    out = s.all_subs()
    assert len(out) == len(subs)
    assert {id(x) for x in out} == {id(x) for x in subs}


@pytest.mark.parametrize("cache", [True, False], ids=["cache", "nocache"])
@pytest.mark.parametrize("subject", [".foo", "..foo", "foo..", "foo.", "foo..bar", "foo...bar", "", "."])
def test_sublist_match_with_empty_tokens(cache, subject):
    s = Sublist() if cache else NoCacheSublist()
    s.insert(new_sub(">"))
    s.insert(new_qsub(">", "queue"))
    r = m(s, subject)
    assert len(r.psubs) == 0
    assert len(r.qsubs) == 0
    # Not cached, so the cache cannot fill up with junk subjects.
    assert subject.encode() not in s.cache


def test_sublist_published_wildcards_match_as_tokens(sl):
    # Non-pedantic clients may publish to wildcard subjects; they are matched as literal
    # tokens, so `PUB foo.>` reaches `SUB foo.*` (client-protocol.md §6).
    star = new_sub("foo.*")
    full = new_sub("foo.>")
    lit = new_sub("foo.bar")
    for s in (star, full, lit):
        sl.insert(s)
    assert {id(x) for x in m(sl, "foo.>").psubs} == {id(star), id(full)}
    assert {id(x) for x in m(sl, "foo.*").psubs} == {id(star), id(full)}


def test_sublist_deep_wildcard_subject_does_not_recurse():
    # A 2,000-token `*.*.*...` subscription fits in one 4 KiB SUB line; matching a subject as
    # deep must not hit Python's recursion limit (it raised RecursionError before).
    n = max(2000, sys.getrecursionlimit() + 100)
    s = Sublist()
    sub = new_sub(".".join(["*"] * n))
    fsub = new_sub(".".join(["*"] * (n - 1) + [">"]))
    s.insert(sub)
    s.insert(fsub)
    r = m(s, ".".join(["a"] * n))
    assert {id(x) for x in r.psubs} == {id(sub), id(fsub)}
    assert len(s.all_subs()) == 2
    assert s.remove(sub) and s.remove(fsub)
    assert num_levels(s) == 0


def test_sublist_results_are_snapshots():
    # A result already returned is never changed by later inserts or removes (Go copies on
    # write in addToCache for the same reason: readers hold results without a lock).
    s = Sublist()
    a = new_sub("foo")
    q = new_qsub("foo", "g")
    s.insert(a)
    s.insert(q)
    r = m(s, "foo")
    before = (list(r.psubs), [list(g) for g in r.qsubs])
    s.insert(new_sub("foo"))
    s.insert(new_sub("*"))
    s.insert(new_qsub("foo", "g"))
    s.remove(a)
    s.remove(q)
    assert (list(r.psubs), [list(g) for g in r.qsubs]) == before
    r2 = m(s, "foo")
    assert len(r2.psubs) == 2 and len(r2.qsubs) == 1 and len(r2.qsubs[0]) == 1


# -- property tests against a brute-force matcher ------------------------------------------


def brute_matches(sub_subject, subject):
    """Does a subscription subject match a published subject? Token by token, no trie."""
    ptoks = subject.split(b".")
    if b"" in ptoks:
        return False
    stoks = sub_subject.split(b".")
    for i, st in enumerate(stoks):
        if st == b">":
            return len(ptoks) > i
        if i >= len(ptoks):
            return False
        if st != b"*" and st != ptoks[i]:
            return False
    return len(stoks) == len(ptoks)


def brute_match(subs, subject):
    """(Counter of plain sub ids, {queue: Counter of sub ids}) for the live subs."""
    psubs = Counter()
    qsubs = {}
    for sub in subs:
        if brute_matches(sub.subject, subject):
            if sub.queue is None:
                psubs[id(sub)] += 1
            else:
                qsubs.setdefault(sub.queue, Counter())[id(sub)] += 1
    return psubs, qsubs


def normalise(result):
    """A SublistResult in brute_match's shape; checks the per-group invariants on the way."""
    qsubs = {}
    for group in result.qsubs:
        assert group, "empty queue group in result"
        names = {s.queue for s in group}
        assert len(names) == 1, f"mixed queue group {names}"
        name = names.pop()
        assert name not in qsubs, f"queue group {name!r} split over two lists"
        qsubs[name] = Counter(id(s) for s in group)
    return Counter(id(s) for s in result.psubs), qsubs


def snapshot(result):
    return (tuple(id(s) for s in result.psubs), tuple(tuple(id(s) for s in g) for g in result.qsubs))


TOKENS = [b"a", b"b", b"c", b"foo", b"*", b">"]
sub_token = st.sampled_from(TOKENS)
pub_token = st.sampled_from([b"a", b"b", b"c", b"foo", b"bar", b"*", b">", b"a*", b""])


@st.composite
def sub_subjects(draw):
    toks = draw(st.lists(sub_token, min_size=1, max_size=4))
    # `>` only as the last token (anything else is rejected by insert; tested above).
    toks = [t for t in toks[:-1] if t != b">"] + [toks[-1]] if len(toks) > 1 else toks
    return b".".join(toks or [b"a"])


pub_subjects = st.lists(pub_token, min_size=1, max_size=5).map(b".".join)
queues = st.one_of(st.none(), st.sampled_from([b"q1", b"q2", b"q3"]))

ops = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), sub_subjects(), queues),
        st.tuples(st.just("remove"), st.integers(0, 1000)),
        st.tuples(st.just("remove_absent"), sub_subjects(), queues),
        st.tuples(st.just("match"), pub_subjects),
    ),
    max_size=60,
)

PROPERTY_SETTINGS = settings(
    max_examples=200,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def run_ops(s, op_list, cache_max):
    live = []  # the subscriptions currently inserted, in insertion order
    handed_out = []  # (result, snapshot at the time it was returned)
    probe = [b"a", b"a.b", b"foo.a.b", b"a.*", b"*", b"b.c.foo"]
    for op in op_list:
        kind = op[0]
        if kind == "insert":
            sub = Sub(op[1], op[2])
            s.insert(sub)
            live.append(sub)
        elif kind == "remove":
            if live:
                sub = live.pop(op[1] % len(live))
                assert s.remove(sub) is True
        elif kind == "remove_absent":
            assert s.remove(Sub(op[1], op[2])) is False
        else:
            subject = op[1]
            r = s.match(subject)
            assert normalise(r) == brute_match(live, subject), subject
            handed_out.append((r, snapshot(r)))
        assert s.count == len(live)
        assert len(s.cache) <= cache_max
    # The cache is coherent for everything it holds, and for fresh subjects too.
    for subject in list(s.cache) + probe:
        assert normalise(s.match(subject)) == brute_match(live, subject), subject
    for r, snap in handed_out:
        assert snapshot(r) == snap, "a returned result was mutated"
    assert {id(x) for x in s.all_subs()} == {id(x) for x in live}
    for sub in list(live):
        assert s.remove(sub) is True
    assert s.count == 0
    assert num_levels(s) == 0


@PROPERTY_SETTINGS
@given(ops)
def test_sublist_matches_brute_force(op_list):
    run_ops(Sublist(), op_list, SL_CACHE_MAX)


@PROPERTY_SETTINGS
@given(ops)
def test_sublist_matches_brute_force_small_cache(op_list):
    # The same with a tiny cache, so that eviction (Go: reduceCacheCount) interleaves with
    # inserts and removes.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sublist_mod, "SL_CACHE_MAX", 4)
        mp.setattr(sublist_mod, "SL_CACHE_SWEEP", 1)
        run_ops(Sublist(), op_list, 4)


@PROPERTY_SETTINGS
@given(st.lists(sub_subjects(), min_size=1, max_size=20), st.lists(pub_subjects, min_size=1, max_size=20))
def test_sublist_match_equals_brute_force_uncached(subjects, publishes):
    s = NoCacheSublist()
    subs = [Sub(x, b"q" if i % 3 == 0 else None) for i, x in enumerate(subjects)]
    for sub in subs:
        s.insert(sub)
    for subject in publishes:
        assert normalise(s.match(subject)) == brute_match(subs, subject)


def test_sublist_cache_bound_under_many_subjects():
    s = Sublist()
    sub = new_sub("x.>")
    s.insert(sub)
    for i in range(5 * SL_CACHE_MAX):
        r = m(s, f"x.{i}")
        assert list(r.psubs) == [sub]
        assert len(s.cache) <= SL_CACHE_MAX
    # Still coherent after the evictions.
    s.insert(new_sub("x.*"))
    assert len(m(s, f"x.{5 * SL_CACHE_MAX - 1}").psubs) == 2
    s.remove(sub)
    assert len(m(s, "x.1").psubs) == 1
