"""The configuration reference: Markdown rendered from the config models themselves.

Why generated: a hand-kept table of settings drifts the first time someone adds a key. This
module walks ServiceConfig's fields recursively - a new section, a nested model, a list or map of
them (a routing tree, say) appears without touching this file, and a model that contains itself
is described once, not followed forever - then the detector `Rule` model and each detector
method's `Params` (detect/registry.py `METHODS`). For every key: name, type, default, the
constraints pydantic enforces (gt/ge/lt/le, lengths, literal and enum choices) and a
description. The description is the field's `description=`, else the comment on (or right
above) the field's line - that is how the detector modules document their parameters. A field
typed `Duration` / `OptionalDuration` (config/durations.py) is shown as a duration ("30s", "5m").

scripts/config_reference.py prints it or writes it between the README's markers;
tests/config/test_reference_doc.py fails when the README differs from `render()`.
"""
from __future__ import annotations

import ast
import enum
import functools
import inspect
import io
import json
import sys
import textwrap
import tokenize
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from streamwatch.config.durations import DURATION_PARSERS

__all__ = ["START", "END", "COMMAND", "Key", "Table", "render", "splice", "service_tables",
           "rule_tables", "undocumented", "format_duration"]

START = "<!-- config-reference:start -->"
END = "<!-- config-reference:end -->"
COMMAND = "python scripts/config_reference.py --write"

# Params fields detect/registry.py `_params_input` fills from the rule itself (`levels`,
# `direction`: the rule's keys) or derives (`counter`, `per_gauge`): not method keys to write.
_FROM_RULE = ("levels", "direction")
_DERIVED = ("counter", "per_gauge")
_RULE_INTERNAL = ("source",)           # set by the loader ("file: rule[i]"), for messages
_SCALARS: dict[Any, str] = {bool: "boolean", int: "integer", float: "number", str: "string",
                            Any: "any"}
_PLURAL = {"string": "strings", "integer": "integers", "number": "numbers",
           "boolean": "booleans", "duration": "durations"}


@dataclass(frozen=True)
class Key:
    """One row of the reference."""
    name: str
    type: str
    default: str
    constraints: str
    description: str


@dataclass
class Table:
    """One TOML table (`[a.b]`) or array of tables (`[[a.b]]`) and its keys."""
    header: str
    doc: str
    keys: list[Key] = field(default_factory=list)
    where: str = ""                    # which model, for messages (`undocumented`)


# -- reading a field --------------------------------------------------------------------------
def format_duration(seconds: float) -> str:
    """A duration as config files write it: 30 -> "30s", 300 -> "5m", 5400 -> "1h30m",
    0.25 -> "250ms"; `parse_duration` reads every result back to the same number."""
    if seconds == 0:
        return "0s"
    if seconds < 1 and float(seconds * 1000).is_integer():
        return f"{int(seconds * 1000)}ms"
    if not float(seconds).is_integer():
        return f"{seconds:g}s"
    rest, parts = int(seconds), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _is_duration(info: FieldInfo) -> bool:
    """Whether the field is typed `Duration` / `OptionalDuration`: pydantic keeps the type's
    `BeforeValidator` in the field's metadata, and its function is one of the duration parsers."""
    return any(isinstance(meta, BeforeValidator) and meta.func in DURATION_PARSERS
               for meta in info.metadata)


@functools.cache
def _comments(cls: type) -> Mapping[str, str]:
    """Field name -> its comment in `cls`'s source: trailing on the field's lines, else the
    comment lines right above it. Empty when the source cannot be read."""
    try:
        src = textwrap.dedent(inspect.getsource(cls))
        tree = ast.parse(src)
        found = {t.start[0]: t.string for t in tokenize.generate_tokens(io.StringIO(src).readline)
                 if t.type == tokenize.COMMENT}
    except (OSError, TypeError, SyntaxError, tokenize.TokenError):
        return {}
    lines = src.splitlines()

    def text(c: str) -> str:
        c = c.lstrip("#").strip()
        return "" if c.startswith(("type:", "noqa", "pragma")) else c

    out: dict[str, str] = {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    for node in body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        end = node.end_lineno or node.lineno
        parts = [text(found[n]) for n in range(node.lineno, end + 1) if n in found]
        if not any(parts):
            n, above = node.lineno - 1, []
            while n >= 1 and lines[n - 1].strip().startswith("#"):
                above.insert(0, text(lines[n - 1].strip()))
                n -= 1
            parts = above
        out[node.target.id] = " ".join(p for p in parts if p)
    return out


def _description(model: type[BaseModel], name: str, info: FieldInfo) -> str:
    if info.description:
        return " ".join(info.description.split())
    for cls in model.__mro__:
        if name in cls.__dict__.get("__annotations__", {}):
            return _comments(cls).get(name, "")
    return ""


def _unwrap(ann: Any) -> Any:
    while get_origin(ann) is Annotated:
        ann = get_args(ann)[0]
    return ann


def _is_union(ann: Any) -> bool:
    return get_origin(ann) in (Union, types.UnionType)


def _without_none(ann: Any) -> Any:
    ann = _unwrap(ann)
    if _is_union(ann):
        args = [a for a in get_args(ann) if a is not type(None)]
        return args[0] if len(args) == 1 else Union[tuple(args)]  # noqa: UP007
    return ann


def _choices(ann: Any) -> list[Any]:
    ann = _without_none(ann)
    if get_origin(ann) is Literal:
        return list(get_args(ann))
    if isinstance(ann, type) and issubclass(ann, enum.Enum):
        return [m.value for m in ann]
    return []


def _type_name(ann: Any, duration: bool = False) -> str:
    ann = _without_none(ann)
    origin = get_origin(ann)
    if duration:
        return "duration"
    if origin is Literal or (isinstance(ann, type) and issubclass(ann, enum.Enum)):
        values = _choices(ann)
        return "integer" if all(isinstance(v, int) for v in values) else "string"
    if ann in _SCALARS:
        return _SCALARS[ann]
    if origin in (list, tuple, set, frozenset, Sequence):
        args = [a for a in get_args(ann) if a is not Ellipsis]
        item = _type_name(args[0]) if args else "any"
        return "list of " + _PLURAL.get(item, item)
    if origin in (dict, Mapping):
        k, v = (get_args(ann) + (Any, Any))[:2]
        return f"table: {_type_name(k)} → {_type_name(v)}"
    if _is_union(ann):
        return " or ".join(_type_name(a) for a in get_args(ann))
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return f"table ({ann.__name__})"
    return getattr(ann, "__name__", str(ann))


def _toml(value: Any, duration: bool = False) -> str:
    """`value` as a TOML literal (durations as strings: "30s")."""
    if isinstance(value, enum.Enum):
        value = value.value
    if duration and isinstance(value, (int, float)) and not isinstance(value, bool):
        return json.dumps(format_duration(float(value)))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple, set, frozenset)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, BaseModel):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.model_dump().items()) + " }"
    return json.dumps(str(value))


def _default(info: FieldInfo, duration: bool) -> str:
    if info.default_factory is not None:
        value = info.default_factory()      # type: ignore[call-arg]
    elif info.default is PydanticUndefined:
        return "required"
    else:
        value = info.default
    return "unset" if value is None else f"`{_toml(value, duration)}`"


def _constraints(info: FieldInfo, ann: Any, duration: bool) -> str:
    parts: list[str] = []
    values = _choices(ann)
    if values:
        parts.append("one of " + ", ".join(f"`{v}`" for v in values))
    base = _without_none(ann)
    one, many = ("character", "characters") if base is str else ("entry", "entries")

    def count(n: int) -> str:
        return f"{n} {one if n == 1 else many}"

    for meta in info.metadata:
        for attr, sign in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
            bound = getattr(meta, attr, None)
            if bound is not None:
                shown = format_duration(float(bound)) if duration else repr(bound)
                parts.append(f"{sign} {shown}")
        if getattr(meta, "min_length", None) is not None:
            parts.append(f"at least {count(meta.min_length)}")
        if getattr(meta, "max_length", None) is not None:
            parts.append(f"at most {count(meta.max_length)}")
        if getattr(meta, "pattern", None) is not None:
            parts.append(f"matches `{meta.pattern}`")
    return ", ".join(parts)


def _key(model: type[BaseModel], name: str, info: FieldInfo) -> Key:
    duration = _is_duration(info)
    ann = info.annotation
    return Key(name=name, type=_type_name(ann, duration), default=_default(info, duration),
               constraints=_constraints(info, ann, duration),
               description=_description(model, name, info))


# -- walking the models -----------------------------------------------------------------------
def _nested(ann: Any) -> tuple[str, list[type[BaseModel]]] | None:
    """("table" | "array" | "map", models) when the field holds config models, else None."""
    ann = _without_none(ann)
    origin = get_origin(ann)
    kind, inner = "table", ann
    if origin in (list, tuple, set, frozenset, Sequence):
        kind, inner = "array", next((a for a in get_args(ann) if a is not Ellipsis), None)
    elif origin in (dict, Mapping):
        kind, inner = "map", (get_args(ann) + (None, None))[1]
    inner = _unwrap(inner)
    options = get_args(inner) if _is_union(inner) else (inner,)
    models = [m for m in options if isinstance(m, type) and issubclass(m, BaseModel)]
    return (kind, models) if models else None


def _doc(model: type[BaseModel], header: str = "") -> str:
    """The model's own docstring on one line, without a leading "`[header]`: " (the heading
    says it already)."""
    doc = " ".join((model.__dict__.get("__doc__") or "").split())
    if header and doc.startswith(f"`{header}`: "):
        doc = doc.removeprefix(f"`{header}`: ")
        doc = doc[:1].upper() + doc[1:]
    return doc


def _walk(model: type[BaseModel], path: tuple[str, ...], array: bool,
          above: tuple[tuple[type[BaseModel], str], ...]) -> Iterator[Table]:
    """The table of `model` at `path`, then its nested tables. `above`: the models (and their
    headers) this one sits in, so that a model containing itself is named, not re-entered."""
    dotted = ".".join(path)
    header = f"[[{dotted}]]" if array else f"[{dotted}]" if path else "top level"
    table = Table(header=header, doc=_doc(model, header) if path else "", where=model.__name__)
    headers = dict(above + ((model, header),))
    children: list[tuple[str, str, list[type[BaseModel]]]] = []
    for name, info in model.model_fields.items():
        nested = _nested(info.annotation)
        if nested is None:
            table.keys.append(_key(model, name, info))
            continue
        kind, models = nested
        again = [m for m in models if m in headers]
        if again:                          # a tree: its nodes have the keys described above
            shape = {"array": "list of tables", "map": "table of tables"}.get(kind, "table")
            like = " or ".join(f"`{headers[m]}`" for m in again)
            table.keys.append(Key(name=name, type=f"{shape} like {like} (nested)",
                                  default=_default(info, False),
                                  constraints=_constraints(info, info.annotation, False),
                                  description=_description(model, name, info)))
        rest = [m for m in models if m not in headers]
        if rest:
            children.append((name, kind, rest))
    if table.keys or table.doc:
        yield table
    for name, kind, models in children:
        sub = path + ((name, "<name>") if kind == "map" else (name,))
        for m in models:
            yield from _walk(m, sub, kind == "array", tuple(headers.items()))


def service_tables(root: type[BaseModel] | None = None) -> list[Table]:
    """The tables of config/service.toml (or of `root`), in field order, depth first."""
    if root is None:
        from streamwatch.config.schema import ServiceConfig
        root = ServiceConfig
    return list(_walk(root, (), False, ()))


def rule_tables() -> list[Table]:
    """`[[rule]]` (and `[defaults]`) of detectors/*.toml, then one table per method."""
    from streamwatch.config.rules import Rule
    from streamwatch.detect.registry import METHODS
    rule = Table(header="[[rule]] and [defaults]", doc=(
        "One watched condition. A file's `[defaults]` table holds keys every `[[rule]]` of "
        "the file inherits, so a rule states only what differs; method keys (below) may be "
        "in either."), where="Rule")
    for name, info in Rule.model_fields.items():
        if name not in _RULE_INTERNAL:
            rule.keys.append(_key(Rule, name, info))
    tables = [rule]
    rule_direction = Rule.model_fields["direction"].default
    for method in sorted(METHODS):
        params: type[BaseModel] = METHODS[method].Params
        module = sys.modules[METHODS[method].__module__]
        summary = ((module.__doc__ or "").strip().splitlines() or [""])[0]
        directions = _choices(params.model_fields["direction"].annotation)
        note = "`direction`: " + ", ".join(f"`{d}`" for d in directions)
        if rule_direction not in directions:
            note += f" (state it: the rule default `{rule_direction}` is not one of them)"
        levels = _description(params, "levels", params.model_fields["levels"])
        doc = f"{summary} {note}." + (f" `levels`: {levels}." if levels else "")
        table = Table(header=f'method = "{method}"', doc=doc, where=params.__name__)
        for name, info in params.model_fields.items():
            if name not in _FROM_RULE + _DERIVED:
                table.keys.append(_key(params, name, info))
        tables.append(table)
    return tables


# -- Markdown ---------------------------------------------------------------------------------
def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _markdown(table: Table) -> list[str]:
    out = [f"##### `{table.header}`", ""]
    if table.doc:
        out += [table.doc, ""]
    if table.keys:
        out += ["| key | type | default | constraints | description |",
                "|---|---|---|---|---|"]
        out += [f"| `{k.name}` | {_cell(k.type)} | {_cell(k.default)} | "
                f"{_cell(k.constraints)} | {_cell(k.description)} |" for k in table.keys]
        out.append("")
    return out


def render() -> str:
    """The reference, as it stands between the README's markers (markers excluded)."""
    out = [f"<!-- generated from the config models by `{COMMAND}`: edit the models "
           "(src/streamwatch/config/), not this -->", "",
           "#### config/service.toml", "",
           "Every key is optional: a missing one takes the default shown. A key of a `[section]` "
           "can be overridden from the environment as `STREAMWATCH_<SECTION>__<KEY>` (value in "
           "TOML syntax, or a bare string). Durations are a number of seconds or a string like "
           '"250ms", "20s", "10m", "1h30m", "1d". `[[sources]]` may also be in '
           "config/sources.toml.", ""]
    for table in service_tables():
        out += _markdown(table)
    out += ["#### detectors/*.toml", "",
            "One file per metric family; every `*.toml` of the directory is read.", ""]
    for table in rule_tables():
        out += _markdown(table)
    return "\n".join(out).rstrip("\n") + "\n"


def splice(text: str, block: str, where: str = "README.md") -> str:
    """`text` with what lies between the markers replaced by `block`; ValueError naming
    `where` when the markers are missing, repeated or out of order."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f"{where}: expected one {START} line followed by one {END} line")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{block}{END}{tail}"


def undocumented() -> list[str]:
    """`table key (Model)` of every key without a description, and tables without a doc."""
    out = []
    for table in service_tables() + rule_tables():
        if not table.doc:
            out.append(f"{table.header} ({table.where}): no docstring")
        out += [f"{table.header} {k.name} ({table.where})" for k in table.keys
                if not k.description]
    return out
