"""Label selectors and field selectors: parsing, matching and validation, as apimachinery does them.

Three ways to write a label selector, one compiled form (`Selector`):
- the query-string form of `?labelSelector=` and `kubectl -l` (`parse_selector`):
  `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, `k>1`, `k<1`; commas are AND;
- the API object form `metav1.LabelSelector` (`selector_from_label_selector`): `matchLabels` and
  `matchExpressions` (In, NotIn, Exists, DoesNotExist);
- a plain map (`selector_from_map`), as in a Service's `spec.selector`.

Empty and missing selectors — read carefully, the difference matters:
- `parse_selector("")` and `selector_from_label_selector({})` select everything.
- `selector_from_label_selector(None)` selects *nothing*, as metav1.LabelSelectorAsSelector does.
  NetworkPolicy peers give a missing selector its own meaning ("the policy's namespace" for a missing
  namespaceSelector, "all pods" for a missing podSelector); those callers handle absence themselves and
  never pass None here.
- `selector_from_map({})` selects everything (Kubernetes' SelectorFromSet). Note that a Service with an
  empty selector gets no endpoints at all: that rule belongs to the endpoints controller, not here.

`Selector.matches` runs for every pod × service in the endpoints controller, so equality terms (the
common case) are kept apart and checked first with plain dict lookups.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from emulator.errors import FieldError, forbidden, invalid, required
from emulator.validation import label_value_errors, qualified_name_errors, validate_labels


class SelectorError(ValueError):
    """A selector that cannot be parsed; the message is meant for the user (400 BadRequest)."""


# Operators, by their query-string spelling. "==" is normalised to "=" at parse time.
EQUALS = "="
NOT_EQUALS = "!="
IN = "in"
NOT_IN = "notin"
EXISTS = "exists"
DOES_NOT_EXIST = "!"
GREATER_THAN = "gt"
LESS_THAN = "lt"

# API (matchExpressions) operator names → ours.
_API_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


@dataclass(frozen=True, slots=True)
class Requirement:
    """One term of a selector. `values` is sorted and de-duplicated (a set in Kubernetes)."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op == EQUALS or op == IN:
            value = labels.get(self.key)
            return value is not None and value in self.values
        if op == NOT_EQUALS or op == NOT_IN:
            # A missing label satisfies "not equal": Kubernetes' rule, and what `!=` users expect.
            value = labels.get(self.key)
            return value is None or value not in self.values
        if op == EXISTS:
            return self.key in labels
        if op == DOES_NOT_EXIST:
            return self.key not in labels
        # gt / lt: both sides must be integers, otherwise no match.
        value = labels.get(self.key)
        if value is None:
            return False
        try:
            have, want = int(value), int(self.values[0])
        except ValueError:
            return False
        return have > want if op == GREATER_THAN else have < want

    def __str__(self) -> str:
        op = self.operator
        if op == EXISTS:
            return self.key
        if op == DOES_NOT_EXIST:
            return "!" + self.key
        if op in (IN, NOT_IN):
            return f"{self.key} {op} ({','.join(self.values)})"
        symbol = {GREATER_THAN: ">", LESS_THAN: "<"}.get(op, op)
        return f"{self.key}{symbol}{self.values[0]}"


@dataclass(frozen=True, slots=True)
class Selector:
    """A compiled label selector: the AND of its requirements.

    `nothing` is the selector of a missing metav1.LabelSelector, which matches no object at all.
    """

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False
    _equal: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=False, default=())
    _other: tuple[Requirement, ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        # Split the hot path: (key, value) pairs for equality, the rest checked afterwards.
        eq = tuple((r.key, r.values[0]) for r in self.requirements if r.operator == EQUALS)
        rest = tuple(r for r in self.requirements if r.operator != EQUALS)
        object.__setattr__(self, "_equal", eq)
        object.__setattr__(self, "_other", rest)

    @property
    def is_everything(self) -> bool:
        return not self.nothing and not self.requirements

    @property
    def is_nothing(self) -> bool:
        return self.nothing

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        if labels is None:
            labels = _NO_LABELS
        for key, value in self._equal:
            if labels.get(key) != value:
                return False
        for req in self._other:
            if not req.matches(labels):
                return False
        return True

    def __str__(self) -> str:
        # The canonical query-string form (what Kubernetes prints): requirements sorted by key.
        if self.nothing:
            return "<none>"
        return ",".join(str(r) for r in self.requirements)


_NO_LABELS: Mapping[str, str] = {}

EVERYTHING = Selector()
NOTHING = Selector(nothing=True)


def _selector(requirements: Iterable[Requirement]) -> Selector:
    reqs = tuple(sorted(requirements, key=lambda r: r.key))
    return Selector(reqs) if reqs else EVERYTHING


# --- the query-string form -------------------------------------------------------------------------

# Token kinds of the lexer.
_IDENT, _EOS, _COMMA, _OPEN, _CLOSE, _OP, _NOT, _ERROR = "ident", "eos", ",", "(", ")", "op", "!", "error"
_SPECIAL = frozenset("=!(),<>")
_SYMBOLS = {"=": "=", "==": "==", "!=": "!=", "!": "!", "(": "(", ")": ")", ",": ",", ">": ">", "<": "<"}


def _lex(text: str) -> list[tuple[str, str]]:
    """Tokens as (kind, literal). Identifiers are any run of non-space, non-special characters."""
    tokens: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in _SPECIAL:
            # Longest known symbol wins ("!=" over "!", "==" over "=").
            two = text[i : i + 2]
            lit = two if two in _SYMBOLS else ch
            i += len(lit)
            if lit in ("(", ")", ","):
                tokens.append((lit, lit))
            elif lit == "!":
                tokens.append((_NOT, lit))
            else:
                tokens.append((_OP, lit))
            continue
        start = i
        while i < n and not text[i].isspace() and text[i] not in _SPECIAL:
            i += 1
        word = text[start:i]
        tokens.append((_OP if word in ("in", "notin") else _IDENT, word))
    tokens.append((_EOS, ""))
    return tokens


class _Parser:
    """Recursive-descent parser following apimachinery's labels.Parser, including its error texts."""

    def __init__(self, text: str) -> None:
        self.tokens = _lex(text)
        self.pos = 0

    def peek(self, values: bool = True) -> tuple[str, str]:
        kind, lit = self.tokens[self.pos]
        # In value position the keywords `in`/`notin` are ordinary words (`k=in` is valid).
        if values and kind == _OP and lit in ("in", "notin"):
            return _IDENT, lit
        return kind, lit

    def take(self, values: bool = True) -> tuple[str, str]:
        tok = self.peek(values)
        if self.pos < len(self.tokens) - 1:
            self.pos += 1
        return tok

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            kind, lit = self.peek()
            if kind == _EOS:
                return reqs
            if kind not in (_IDENT, _NOT):
                raise SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")
            try:
                reqs.append(self.requirement())
            except SelectorError as e:
                raise SelectorError(f"unable to parse requirement: {e}") from None
            kind, lit = self.take()
            if kind == _EOS:
                return reqs
            if kind != _COMMA:
                raise SelectorError(f"found '{lit}', expected: ',' or 'end of string'")
            kind, lit = self.peek()
            if kind not in (_IDENT, _NOT):
                raise SelectorError(f"found '{lit}', expected: identifier after ','")

    def requirement(self) -> Requirement:
        negated = False
        kind, lit = self.take()
        if kind == _NOT:
            negated = True
            kind, lit = self.take()
        if kind != _IDENT:
            raise SelectorError(f"found '{lit}', expected: identifier")
        key = lit
        _check_key(key)
        nxt, _ = self.peek()
        if nxt in (_EOS, _COMMA):
            return Requirement(key, DOES_NOT_EXIST if negated else EXISTS)
        if negated:
            # `!k=v` is not a thing; Kubernetes reports the operator it did not expect.
            _, lit = self.peek(values=False)
            raise SelectorError(f"found '{lit}', expected: ',' or 'end of string'")
        kind, lit = self.take(values=False)
        if kind != _OP:
            raise SelectorError(f"found '{lit}', expected: in, notin, =, ==, !=, gt, lt")
        if lit in ("in", "notin"):
            values = self.value_set()
            if not values:
                raise SelectorError("for 'in', 'notin' operators, values set can't be empty")
            op = IN if lit == "in" else NOT_IN
            for v in values:
                _check_value(key, v)
            return Requirement(key, op, tuple(sorted(values)))
        value = self.exact_value()
        if lit in (">", "<"):
            try:
                int(value)
            except ValueError:
                raise SelectorError(f"for 'Gt', 'Lt' operators, the value must be an integer: {value!r}") from None
            return Requirement(key, GREATER_THAN if lit == ">" else LESS_THAN, (value,))
        _check_value(key, value)
        return Requirement(key, NOT_EQUALS if lit == "!=" else EQUALS, (value,))

    def value_set(self) -> set[str]:
        kind, lit = self.take()
        if kind != _OPEN:
            raise SelectorError(f"found '{lit}' expected: '('")
        kind, lit = self.peek()
        if kind == _CLOSE:  # "()" is the set holding the empty string, as in Kubernetes
            self.take()
            return {""}
        if kind not in (_IDENT, _COMMA):
            raise SelectorError(f"found '{lit}', expected: ',', ')' or identifier")
        values: set[str] = set()
        expect_value = True  # empty entries (`(a,,b)`, `(,a)`) stand for the empty string
        while True:
            kind, lit = self.take()
            if kind == _IDENT and expect_value:
                values.add(lit)
                expect_value = False
            elif kind == _COMMA:
                if expect_value:
                    values.add("")
                expect_value = True
            elif kind == _CLOSE:
                if expect_value:
                    values.add("")
                return values
            else:
                want = "',' or identifier" if expect_value else "',' or ')'"
                raise SelectorError(f"found '{lit}', expected: {want}")

    def exact_value(self) -> str:
        kind, lit = self.peek()
        if kind in (_EOS, _COMMA):  # `k=` selects the empty value
            return ""
        kind, lit = self.take()
        if kind != _IDENT:
            raise SelectorError(f"found '{lit}', expected: identifier")
        return lit


def _check_key(key: str) -> None:
    msgs = qualified_name_errors(key)
    if msgs:
        raise SelectorError(f'invalid label key "{key}": {"; ".join(msgs)}')


def _check_value(key: str, value: str) -> None:
    msgs = label_value_errors(value)
    if msgs:
        raise SelectorError(f'invalid label value: "{value}": at key: "{key}": {"; ".join(msgs)}')


def parse_selector(text: str) -> Selector:
    """Parse `?labelSelector=` / `kubectl -l` syntax. Empty or blank text selects everything.

    Raises SelectorError with Kubernetes' wording (`unable to parse requirement: ...`).
    """
    return _selector(_Parser(text).parse())


# --- the API object forms --------------------------------------------------------------------------


def selector_from_map(labels: Mapping[str, str] | None) -> Selector:
    """Equality on every pair (Service `spec.selector`, `matchLabels`). Empty or None selects everything."""
    if not labels:
        return EVERYTHING
    return _selector(Requirement(k, EQUALS, (v,)) for k, v in labels.items())


def selector_from_label_selector(obj: Mapping[str, Any] | None) -> Selector:
    """Compile a metav1.LabelSelector. None → selects nothing; `{}` → selects everything.

    Assumes `obj` passed `validate_label_selector`; raises SelectorError for what it cannot compile anyway.
    """
    if obj is None:
        return NOTHING
    reqs: list[Requirement] = [Requirement(k, EQUALS, (v,)) for k, v in (obj.get("matchLabels") or {}).items()]
    for expr in obj.get("matchExpressions") or ():
        api_op = expr.get("operator")
        op = _API_OPERATORS.get(api_op)
        if op is None:
            raise SelectorError(f'"{api_op}" is not a valid label selector operator')
        values = tuple(sorted(set(expr.get("values") or ())))
        if op in (IN, NOT_IN) and not values:
            raise SelectorError("for 'in', 'notin' operators, values set can't be empty")
        if op in (EXISTS, DOES_NOT_EXIST) and values:
            raise SelectorError("values set must be empty for exists and does not exist")
        reqs.append(Requirement(expr.get("key", ""), op, values))
    return _selector(reqs)


def validate_label_selector(obj: Any, path: str) -> list[FieldError]:
    """ValidateLabelSelector: causes for a metav1.LabelSelector at `path` (None is valid: absent)."""
    if obj is None:
        return []
    if not isinstance(obj, Mapping):
        return [invalid(path, obj, "must be a label selector object")]
    errs = validate_labels(obj.get("matchLabels"), f"{path}.matchLabels")
    exprs = obj.get("matchExpressions")
    if exprs is None:
        return errs
    if not isinstance(exprs, list):
        return [*errs, invalid(f"{path}.matchExpressions", exprs, "must be a list")]
    for i, expr in enumerate(exprs):
        at = f"{path}.matchExpressions[{i}]"
        if not isinstance(expr, Mapping):
            errs.append(invalid(at, expr, "must be a label selector requirement"))
            continue
        op, values = expr.get("operator"), expr.get("values") or []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            errs.append(invalid(f"{at}.values", values, "must be a list of strings"))
            values = []
        if op in ("In", "NotIn"):
            if not values:
                errs.append(
                    FieldError(
                        f"{at}.values",
                        "FieldValueRequired",
                        "Required value: must be specified when `operator` is 'In' or 'NotIn'",
                    )
                )
        elif op in ("Exists", "DoesNotExist"):
            if values:
                errs.append(
                    forbidden(f"{at}.values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
                )
        elif op is None:
            errs.append(required(f"{at}.operator"))
        else:
            errs.append(invalid(f"{at}.operator", op, "not a valid selector operator"))
        key = expr.get("key")
        if not isinstance(key, str) or key == "":
            errs.append(invalid(f"{at}.key", key if key is not None else "", "name part must be non-empty"))
        else:
            errs.extend(invalid(f"{at}.key", key, m) for m in qualified_name_errors(key))
        for j, value in enumerate(values):
            errs.extend(invalid(f"{at}.values[{j}]", value, m) for m in label_value_errors(value))
    return errs


# --- field selectors -------------------------------------------------------------------------------


def parse_field_selector(text: str) -> list[tuple[str, str, str]]:
    """Parse `?fieldSelector=` into (field, op, value) triples, op in {"=", "!="} ("==" becomes "=").

    Values may escape `\\`, `,` and `=` with a backslash (apimachinery's EscapeValue). Which fields a
    kind supports is the caller's business. Raises SelectorError on bad syntax.
    """
    terms: list[tuple[str, str, str]] = []
    for part in _split_terms(text):
        if not part.strip():
            continue
        split = _split_term(part)
        if split is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        lhs, op, rhs = split
        terms.append((lhs.strip(), "=" if op == "==" else op, _unescape(rhs)))
    return terms


def _split_terms(text: str) -> list[str]:
    # Split on commas that are not backslash-escaped.
    parts: list[str] = []
    start, i, n = 0, 0, len(text)
    while i < n:
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == ",":
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def _split_term(term: str) -> tuple[str, str, str] | None:
    # The first operator from the left wins; at one position "!=" and "==" are tried before "=".
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
    return None


def _unescape(value: str) -> str:
    if "\\" not in value and "=" not in value and "," not in value:
        return value
    out: list[str] = []
    i, n = 0, len(value)
    while i < n:
        ch = value[i]
        if ch == "\\":
            if i + 1 >= n or value[i + 1] not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: {value[i : i + 2]!s}")
            out.append(value[i + 1])
            i += 2
            continue
        if ch in ",=":
            raise SelectorError(f"invalid field selector: unescaped character {ch!r} in value {value!r}")
        out.append(ch)
        i += 1
    return "".join(out)
