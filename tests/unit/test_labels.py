"""Label selectors in all three spellings, and field selectors, behave like apimachinery's."""

from __future__ import annotations

import pytest

from emulator.labels import (
    SelectorError,
    parse_field_selector,
    parse_selector,
    selector_from_label_selector,
    selector_from_map,
    validate_label_selector,
)

POD = {"app": "web", "tier": "front", "version": "3"}


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("", True),
        ("   ", True),
        ("app=web", True),
        ("app==web", True),
        ("app = web", True),
        ("app=db", False),
        ("app!=db", True),
        ("app!=web", False),
        ("missing!=x", True),  # a missing label is "not equal"
        ("app", True),
        ("missing", False),
        ("!missing", True),
        ("!app", False),
        ("app in (web,db)", True),
        ("app in (db)", False),
        ("app notin (db, cache)", True),
        ("app notin (web)", False),
        ("missing notin (x)", True),
        ("missing in (x)", False),
        ("app=web,tier=front", True),
        ("app=web,tier=back", False),
        ("app=web, !missing, tier in (front)", True),
        ("version>2", True),
        ("version<3", False),
        ("app>2", False),  # not an integer: no match
        ("missing=", False),
        ("app=", False),
    ],
)
def test_query_string_matching(text: str, matches: bool) -> None:
    assert parse_selector(text).matches(POD) is matches


def test_empty_value_matches_empty_label() -> None:
    assert parse_selector("k=").matches({"k": ""})
    assert parse_selector("k in ()").matches({"k": ""})
    assert not parse_selector("k in ()").matches({"k": "x"})


def test_keywords_are_values_in_value_position() -> None:
    assert parse_selector("in=notin").matches({"in": "notin"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a=b,", "found '', expected: identifier after ','"),
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        (",a", "found ',', expected: !, identifier, or 'end of string'"),
        ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
        ("k in (a", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("k in a", "unable to parse requirement: found 'a' expected: '('"),
        ("k=(", "unable to parse requirement: found '(', expected: identifier"),
        ("!k=v", "unable to parse requirement: found '=', expected: ',' or 'end of string'"),
        ("k>x", "unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer: 'x'"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as exc:
        parse_selector(text)
    assert str(exc.value) == message


def test_bad_key_and_value_are_reported_with_kubernetes_prefixes() -> None:
    with pytest.raises(SelectorError, match=r'^unable to parse requirement: invalid label key "Bad/x"'):
        parse_selector("Bad/x=y")
    with pytest.raises(SelectorError, match=r'^unable to parse requirement: invalid label value: "-v": at key: "k"'):
        parse_selector("k=-v")


def test_selector_error_is_a_value_error() -> None:
    assert issubclass(SelectorError, ValueError)


def test_canonical_string_is_sorted_by_key() -> None:
    assert str(parse_selector("z=1, a in (c,b), !m, k")) == "a in (b,c),k,!m,z=1"
    assert str(parse_selector("a==b")) == "a=b"


def test_everything() -> None:
    assert parse_selector("").is_everything
    assert not parse_selector("a").is_everything
    assert selector_from_map({}).is_everything
    assert selector_from_label_selector({}).is_everything
    assert parse_selector("").matches(None)


def test_map_selector() -> None:
    sel = selector_from_map({"app": "web", "tier": "front"})
    assert sel.matches(POD)
    assert not sel.matches({"app": "web"})
    assert not sel.matches(None)


@pytest.mark.parametrize(
    ("obj", "matches"),
    [
        ({}, True),
        ({"matchLabels": {}}, True),
        ({"matchLabels": {"app": "web"}}, True),
        ({"matchLabels": {"app": "db"}}, False),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "db"]}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}, False),
        ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, False),
        ({"matchExpressions": [{"key": "nope", "operator": "DoesNotExist", "values": []}]}, True),
        (
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["back"]}],
            },
            False,
        ),
    ],
)
def test_label_selector_object(obj: dict, matches: bool) -> None:
    assert selector_from_label_selector(obj).matches(POD) is matches


def test_missing_label_selector_selects_nothing() -> None:
    sel = selector_from_label_selector(None)
    assert not sel.is_everything
    assert sel.is_nothing
    assert not sel.matches(POD)
    assert not sel.matches({})


def test_label_selector_object_rejects_unknown_operator() -> None:
    with pytest.raises(SelectorError, match="not a valid label selector operator"):
        selector_from_label_selector({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]})


@pytest.mark.parametrize(
    ("obj", "causes"),
    [
        (None, []),
        ({}, []),
        ({"matchLabels": {"app": "web"}}, []),
        ({"matchLabels": {"bad key": "web"}}, [("s.matchLabels", "FieldValueInvalid")]),
        ({"matchLabels": {"app": "bad value"}}, [("s.matchLabels", "FieldValueInvalid")]),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["x"]}]}, []),
        (
            {"matchExpressions": [{"key": "a", "operator": "In"}]},
            [("s.matchExpressions[0].values", "FieldValueRequired")],
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]},
            [("s.matchExpressions[0].values", "FieldValueRequired")],
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
            [("s.matchExpressions[0].values", "FieldValueForbidden")],
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]},
            [("s.matchExpressions[0].operator", "FieldValueInvalid")],
        ),
        ({"matchExpressions": [{"key": "a"}]}, [("s.matchExpressions[0].operator", "FieldValueRequired")]),
        (
            {"matchExpressions": [{"key": "-a", "operator": "Exists"}]},
            [("s.matchExpressions[0].key", "FieldValueInvalid")],
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": ["ok", "not ok"]}]},
            [("s.matchExpressions[0].values[1]", "FieldValueInvalid")],
        ),
    ],
)
def test_validate_label_selector(obj: object, causes: list[tuple[str, str]]) -> None:
    assert [(e.field, e.reason) for e in validate_label_selector(obj, "s")] == causes


def test_validate_label_selector_messages() -> None:
    (err,) = validate_label_selector({"matchExpressions": [{"key": "a", "operator": "In"}]}, "spec.selector")
    assert err.message == "Required value: must be specified when `operator` is 'In' or 'NotIn'"
    (err,) = validate_label_selector({"matchExpressions": [{"key": "a", "operator": "Foo"}]}, "spec.selector")
    assert err.message == 'Invalid value: "Foo": not a valid selector operator'


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("", []),
        ("metadata.name=foo", [("metadata.name", "=", "foo")]),
        ("metadata.name==foo", [("metadata.name", "=", "foo")]),
        ("spec.nodeName!=", [("spec.nodeName", "!=", "")]),
        ("a=1,b!=2", [("a", "=", "1"), ("b", "!=", "2")]),
        (r"metadata.name=a\,b\=c\\d", [("metadata.name", "=", "a,b=c\\d")]),
        ("a=1,,b=2", [("a", "=", "1"), ("b", "=", "2")]),
    ],
)
def test_field_selector(text: str, terms: list[tuple[str, str, str]]) -> None:
    assert parse_field_selector(text) == terms


@pytest.mark.parametrize("text", ["metadata.name", "a=b=c", r"a=b\x", "a=b\\"])
def test_field_selector_errors(text: str) -> None:
    with pytest.raises(SelectorError):
        parse_field_selector(text)


@pytest.mark.parametrize(
    ("text", "values"),
    [("a in ()", ("",)), ("a in (b,,c)", ("", "b", "c")), ("a notin ()", ("",)), ("a in (,b)", ("", "b")), ("a in (b,)", ("", "b"))],
)
def test_empty_entries_in_a_value_set_are_the_empty_value_as_in_kubernetes(text: str, values: tuple[str, ...]) -> None:
    # apimachinery's own example of valid syntax is "x in (foo,,baz),y,z notin ()": the API server parses
    # these (an empty entry is the empty label value), so they select, they are no 400
    (requirement,) = parse_selector(text).requirements
    assert requirement.values == values
    assert parse_selector("a in (b,,c)").matches({"a": ""}) and not parse_selector("a in (b,,c)").matches({"a": "d"})
