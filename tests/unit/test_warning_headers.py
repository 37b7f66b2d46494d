"""How many warnings a response carries (api/http.py `bounded_warnings`): the API server's warning
recorder's rules (k8s.io/apiserver endpoints/filters/warning.go)."""

from __future__ import annotations

from api.http import WARNING_TRUNCATED, WARNINGS_TOTAL, bounded_warnings


def test_warnings_within_the_total_are_kept_whole_and_once_each() -> None:
    texts = ["a" * 1000, "b", "", "a" * 1000, "c" * 3000]
    assert bounded_warnings(texts) == ["a" * 1000, "b", "c" * 3000]  # 4,001 characters: none cut


def test_past_the_total_every_warning_is_cut_and_the_rest_dropped() -> None:
    long = [chr(ord("a") + i) * 1000 for i in range(4)]  # 4,000 characters in full
    more = [f"w{i:03d}" + "x" * 400 for i in range(40)]
    kept = bounded_warnings([*long, *more])
    # the fifth would pass 4 Ki: the four before it and it are cut to 256, then more (cut) while under 4 Ki
    assert kept[:5] == [text[:WARNING_TRUNCATED] for text in [*long, more[0]]]
    assert all(len(text) == WARNING_TRUNCATED for text in kept)
    assert len(kept) == WARNINGS_TOTAL // WARNING_TRUNCATED  # 16 × 256 reaches 4 Ki: nothing after
    assert kept[4:] == [text[:WARNING_TRUNCATED] for text in more[:12]]


def test_a_flood_of_short_warnings_stops_just_past_the_total() -> None:
    flood = [f'unknown field "spec.k{i:07d}"' for i in range(100_000)]
    kept = bounded_warnings(flood)
    assert kept == flood[: len(kept)]  # short ones are never cut, only dropped
    assert WARNINGS_TOTAL <= sum(map(len, kept)) < WARNINGS_TOTAL + len(flood[0])
