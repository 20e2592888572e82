"""The filter grammar over runs: `lr < 0.01 and val_acc > 0.9`, `status = "failed" or model in ("cnn", "mlp")`.

A hand-written tokenizer and recursive-descent parser build a small tree; `to_sql` turns it into
a SQLAlchemy expression over the runs table where every literal is a bound parameter and every
name is either a whitelisted run column or a key compared as data. Nothing is eval'd and no
text is pasted into SQL, so quotes, semicolons and SQL keywords can only ever be data or a
syntax error.

    expr       := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" expr ")" | comparison
    comparison := NAME OP literal | NAME ["not"] "in" "(" literal ("," literal)* ")"
    OP         := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    literal    := NUMBER | STRING | "true" | "false"
    NAME       := a word (letters, digits, _ . / -, not starting with a digit), or `any text`

A name is a run column (status, dataset, model, experiment, sweep, name, device, id, created,
started, ended), else a parameter, else a metric's final value; `param.NAME`, `metric.NAME`
and `tag.NAME` say which explicitly.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, and_, false, not_, or_, select

from db.models import Experiment, Param, RunSummary, Tag
from db.models import Run as RunRow
from dlx.errors import DlxError

MAX_LENGTH = 2000
MAX_DEPTH = 50
KEYWORDS = {"and", "or", "not", "in", "true", "false"}
OPERATORS = ("==", "!=", "<>", "<=", ">=", "=", "<", ">")
COLUMNS = {"id": RunRow.id, "name": RunRow.name, "status": RunRow.status, "dataset": RunRow.dataset,
           "model": RunRow.model, "sweep": RunRow.sweep, "device": RunRow.device,
           "experiment": Experiment.name, "created": RunRow.created_at, "started": RunRow.started_at,
           "ended": RunRow.ended_at}
NUMERIC_COLUMNS = {"id"}
TIME_COLUMNS = {"created", "started", "ended"}
PREFIXES = ("param", "metric", "tag")

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_./\-]*")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


class FilterError(DlxError):
    """A filter that cannot be parsed or resolved; `position` is the 1-based character it is about."""

    def __init__(self, reason: str, text: str, position: int):
        shown = text if len(text) <= 80 else text[:77] + "..."
        caret = " " * (min(position, len(shown) + 1) - 1) + "^"
        super().__init__(f"filter: {reason} at position {position}\n  {shown}\n  {caret}", field="filter")
        self.position = position
        self.reason = reason


@dataclass(frozen=True)
class Token:
    kind: str  # name, number, string, op, keyword, punct, end
    value: str | float | bool | None
    position: int  # 1-based


@dataclass(frozen=True)
class Comparison:
    name: str
    position: int
    op: str  # one of OPERATORS normalised: = != < <= > >= in
    values: tuple  # one literal, or several for `in`


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class BoolOp:
    op: str  # and, or
    operands: tuple[Node, ...]


Node = Comparison | Not | BoolOp


def tokenize(text: str) -> list[Token]:
    """Split a filter into tokens; any character that has no place in the grammar is an error here."""
    if len(text) > MAX_LENGTH:
        raise FilterError(f"longer than {MAX_LENGTH} characters", text, MAX_LENGTH + 1)
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char.isspace():
            i += 1
            continue
        start = i + 1
        if char in "\"'":
            value, i = _string(text, i)
            tokens.append(Token("string", value, start))
        elif char == "`":
            end = text.find("`", i + 1)
            if end < 0 or end == i + 1:
                raise FilterError("a `quoted name` is not closed" if end < 0 else "an empty `` name", text, start)
            tokens.append(Token("name", text[i + 1:end], start))
            i = end + 1
        elif char in "(),":
            tokens.append(Token("punct", char, start))
            i += 1
        elif (op := next((o for o in OPERATORS if text.startswith(o, i)), None)) is not None:
            tokens.append(Token("op", {"==": "=", "<>": "!="}.get(op, op), start))
            i += len(op)
        elif (number := _NUMBER.match(text, i)) and (char.isdigit() or char in "+-."):
            i = number.end()
            if i < len(text) and (text[i].isalnum() or text[i] in "_."):
                raise FilterError(f"{text[number.start():i + 1]!r} is not a number", text, start)
            tokens.append(Token("number", float(number.group()), start))
        elif (name := _NAME.match(text, i)) is not None:
            word = name.group()
            i = name.end()
            lowered = word.lower()
            tokens.append(Token("keyword", lowered, start) if lowered in KEYWORDS else Token("name", word, start))
        else:
            raise FilterError(f"unexpected character {char!r}", text, start)
    tokens.append(Token("end", None, len(text) + 1))
    return tokens


def _string(text: str, i: int) -> tuple[str, int]:
    """A quoted string starting at text[i]; backslash escapes the quote or a backslash."""
    quote, out, j = text[i], [], i + 1
    while j < len(text):
        char = text[j]
        if char == "\\" and j + 1 < len(text):
            out.append(text[j + 1])
            j += 2
        elif char == quote:
            return "".join(out), j + 1
        else:
            out.append(char)
            j += 1
    raise FilterError("a quoted string is not closed", text, i + 1)


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.at = 0
        self.depth = 0

    def peek(self) -> Token:
        return self.tokens[self.at]

    def take(self) -> Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def fail(self, expected: str, token: Token | None = None) -> FilterError:
        token = token or self.peek()
        found = "the end" if token.kind == "end" else repr(token.value if token.kind != "string" else f'"{token.value}"')
        return FilterError(f"expected {expected}, found {found}", self.text, token.position)

    def is_keyword(self, word: str) -> bool:
        token = self.peek()
        return token.kind == "keyword" and token.value == word

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise self.fail("a comparison such as lr < 0.01")
        node = self.expr()
        if self.peek().kind != "end":
            raise self.fail("'and', 'or' or the end")
        return node

    def expr(self) -> Node:
        return self._chain("or", self.and_expr)

    def and_expr(self) -> Node:
        return self._chain("and", self.not_expr)

    def _chain(self, word: str, operand: Callable[[], Node]) -> Node:
        operands = [operand()]
        while self.is_keyword(word):
            self.take()
            operands.append(operand())
        return operands[0] if len(operands) == 1 else BoolOp(word, tuple(operands))

    def not_expr(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FilterError(f"nested more than {MAX_DEPTH} deep", self.text, self.peek().position)
        try:
            if self.is_keyword("not"):
                self.take()
                return Not(self.not_expr())
            token = self.peek()
            if token.kind == "punct" and token.value == "(":
                self.take()
                node = self.expr()
                self.expect(")")
                return node
            return self.comparison()
        finally:
            self.depth -= 1

    def expect(self, punct: str) -> None:
        token = self.peek()
        if token.kind != "punct" or token.value != punct:
            raise self.fail(f"'{punct}'")
        self.take()

    def comparison(self) -> Comparison | Not:
        name = self.peek()
        if name.kind != "name":
            raise self.fail("a name (a run field, parameter or metric)")
        self.take()
        if self.is_keyword("in") or self.is_keyword("not"):
            negated = self.take().value == "not"
            if negated and not self.is_keyword("in"):
                raise self.fail("'in' after 'not'")
            if negated:
                self.take()
            self.expect("(")
            values = [self.literal()]
            while self.peek().kind == "punct" and self.peek().value == ",":
                self.take()
                values.append(self.literal())
            self.expect(")")
            node = Comparison(str(name.value), name.position, "in", tuple(values))
            return Not(node) if negated else node
        op = self.peek()
        if op.kind != "op":
            raise self.fail("a comparison operator (= != < <= > >=) or 'in'")
        self.take()
        return Comparison(str(name.value), name.position, str(op.value), (self.literal(),))

    def literal(self) -> str | float | bool:
        token = self.peek()
        if token.kind in ("number", "string") or (token.kind == "keyword" and token.value in ("true", "false")):
            self.take()
            assert token.value is not None  # only the end token has no value
            return token.value == "true" if token.kind == "keyword" else token.value
        raise self.fail("a number or a \"quoted string\"")


def parse(text: str) -> Node:
    """The tree of a filter expression, or a FilterError naming the position of the first mistake."""
    return _Parser(text).parse()


@dataclass(frozen=True)
class Field:
    """What a name means: a run column, or a key among a run's params, final metrics or tags."""

    kind: str  # column, param, metric, tag
    key: str


Resolver = Callable[[str], Field | None]


def resolve_name(name: str, is_param: Callable[[str], bool], is_metric: Callable[[str], bool]) -> Field | None:
    """Run columns first, then an explicit prefix, then parameters, then metrics; None if nothing has that name."""
    if name in COLUMNS:
        return Field("column", name)
    prefix, dot, rest = name.partition(".")
    if dot and prefix in PREFIXES and rest:
        return Field(prefix, rest)
    if is_param(name):
        return Field("param", name)
    if is_metric(name):
        return Field("metric", name)
    return None


def to_sql(text: str, resolve: Resolver, correlated: bool = False) -> ColumnElement[bool]:
    """A filter expression as a SQLAlchemy condition over RunRow (joined with Experiment).

    `correlated` writes a param, metric or tag comparison as EXISTS (a primary-key lookup per run: for a
    page walked in its sort order, which stops at the page's end) rather than IN (the matching runs found
    at once on the (key, value) index: for counting them all).
    """
    return _compile(parse(text), text, resolve, correlated)


def driven(text: str, resolve: Resolver) -> tuple[Select, ColumnElement[bool] | None] | None:
    """A filter whose top level is one param, metric or tag comparison, alone or ANDed with the rest, split
    into that comparison's `SELECT run_id FROM <its table> WHERE key = ... AND ...` and the rest's condition
    (None where nothing else is compared); None where the filter has no such comparison at its top level.

    Counting the runs it matches from that table's (key, value) index, joined to the runs only for the rest,
    reads the matching index range once (the count of `lr < 0.01` over 100,000 runs: 2 ms, where counting
    the runs `IN` the same subquery builds and probes a list of 40,000 ids).
    """
    tree = parse(text)
    operands = tree.operands if isinstance(tree, BoolOp) and tree.op == "and" else (tree,)
    for at, operand in enumerate(operands):
        if isinstance(operand, Comparison) and (field := resolve(operand.name)) is not None \
                and field.kind != "column":
            rest = [_compile(other, text, resolve, False) for i, other in enumerate(operands) if i != at]
            return _keyed_select(operand, field, text), and_(*rest) if rest else None
    return None


def _compile(node: Node, text: str, resolve: Resolver, correlated: bool) -> ColumnElement[bool]:
    if isinstance(node, BoolOp):
        parts = [_compile(operand, text, resolve, correlated) for operand in node.operands]
        return and_(*parts) if node.op == "and" else or_(*parts)
    if isinstance(node, Not):
        return not_(_compile(node.operand, text, resolve, correlated))
    field = resolve(node.name)
    if field is None:
        raise FilterError(f"no run field, parameter or metric is named {node.name!r}", text, node.position)
    if field.kind == "column":
        return _column_condition(node, field.key, text)
    return _keyed_condition(node, field, text, correlated)


def _compare(column, op: str, value) -> ColumnElement[bool]:
    return {"=": column == value, "!=": column != value, "<": column < value, "<=": column <= value,
            ">": column > value, ">=": column >= value}[op]


def _column_condition(node: Comparison, name: str, text: str) -> ColumnElement[bool]:
    column = COLUMNS[name]
    values = [_column_value(name, value, node, text) for value in node.values]
    if node.op == "in":
        return column.in_(values)
    return _compare(column, node.op, values[0])


def _column_value(name: str, value, node: Comparison, text: str):
    """A literal as the column's type: ids are numbers, times ISO dates, the rest text."""
    if name in NUMERIC_COLUMNS:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise FilterError(f"{name} is compared with a whole number, not {value!r}", text, node.position)
    if name in TIME_COLUMNS:
        try:
            return datetime.fromisoformat(str(value))
        except ValueError:
            raise FilterError(f"{name} is compared with a date such as \"2026-11-30\" or "
                              f"\"2026-11-30 14:00\", not {value!r}", text, node.position) from None
    if isinstance(value, bool):
        return "true" if value else "false"
    return _text(value)


def _text(value) -> str:
    """A literal compared as text: numbers as written by the tracking API (1.0 -> '1')."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _keyed_condition(node: Comparison, field: Field, text: str, correlated: bool) -> ColumnElement[bool]:
    """Runs having a param, final metric or tag with this key whose value satisfies the comparison.

    Written as `runs.id IN (SELECT run_id ... WHERE key = :key AND ...)`: the (key, value) index
    finds the matching runs once, rather than a lookup per run; or, `correlated`, as
    `EXISTS (SELECT ... WHERE run_id = runs.id AND key = :key AND ...)`: one lookup per run visited.
    """
    found = _keyed_select(node, field, text)
    table = found.selected_columns[0].table
    return found.where(table.c.run_id == RunRow.id).exists() if correlated else RunRow.id.in_(found)


def _keyed_select(node: Comparison, field: Field, text: str) -> Select:
    """`SELECT run_id FROM params | run_summaries | tags WHERE key = :key AND <the comparison>`."""
    table: type[Param] | type[RunSummary] | type[Tag]
    if field.kind == "param":
        table, key_column = Param, Param.key
        numbers, texts = Param.number, Param.value
    elif field.kind == "metric":
        table, key_column, numbers, texts = RunSummary, RunSummary.key, RunSummary.last, None
    else:
        table, key_column, numbers, texts = Tag, Tag.key, None, Tag.value
    conditions = []
    values = list(node.values)
    for value in values:
        numeric = isinstance(value, float) and not isinstance(value, bool)
        if numeric and numbers is None:
            conditions.append(_compare(texts, "=" if node.op == "in" else node.op, _text(value)))
        elif numeric:
            conditions.append(_compare(numbers, "=" if node.op == "in" else node.op, value))
        elif texts is None:
            raise FilterError(f"metric {field.key!r} is a number: compare it with a number, not {value!r}",
                              text, node.position)
        else:
            conditions.append(_compare(texts, "=" if node.op == "in" else node.op, _text(value)))
    matching = or_(*conditions) if conditions else false()
    return select(table.run_id).where(key_column == field.key, matching)
