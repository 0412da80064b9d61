"""Rules as code: YAML (or JSON, a YAML subset) in and out, with errors that point at the rule.

Hand-written YAML meets YAML 1.1's implicit typing: ``10:30`` is the integer 630, ``no`` is
False (and also Norwegian), ``2024-05-01`` a date. The loader below keeps only the core types
(null, bool as true/false, int, float), so those stay the strings the author meant.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from .schema import RuleSet


class _CoreLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # YAML mapping keys are unique, but PyYAML keeps the last of two silently: a rule pasted
        # with a second `when` would lose its first condition without a word.
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                repeated = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the constructor's own error names it
                continue
            if repeated:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"duplicate key {key!r}",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


class _QuotingDumper(yaml.SafeDumper):
    """Quotes every string that YAML 1.1 or :class:`_CoreLoader` would read as something else:
    ``1.5e5`` is no float to YAML 1.1 (its exponent has no sign), so the safe dumper leaves it
    bare, but the core loader reads it as one."""


_CoreLoader.yaml_implicit_resolvers = {}
_DIGITS = "0123456789"
_FLOAT = r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"
for _tag, _regexp, _first in (
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^[-+]?(?:0|[1-9][0-9]*)$", [*"-+", *_DIGITS]),
    ("tag:yaml.org,2002:float", _FLOAT, [*"-+.", *_DIGITS]),
):
    _CoreLoader.add_implicit_resolver(_tag, re.compile(_regexp), _first)
    _QuotingDumper.add_implicit_resolver(_tag, re.compile(_regexp), _first)  # beside YAML 1.1's


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # The dumper writes NEL / LS / PS raw in plain or single-quoted scalars, where a reader folds
    # them like line breaks; double quotes escape them (\N, \L, \P).
    style = '"' if any(c in data for c in "\x85\u2028\u2029") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_QuotingDumper.add_representer(str, _represent_str)


@dataclass(frozen=True, slots=True)
class Problem:
    path: str  # e.g. rules[3].when.all[0].field
    message: str


class RuleSetError(ValueError):
    """A rule set that does not parse or validate; ``problems`` lists every issue found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.path}: {p.message}" if p.path else p.message for p in problems))


def _path(loc: tuple[int | str, ...], data: Any) -> str:
    """('rules', 3, 'when', 'all', 0, 'op') -> 'rules[3] (id vip).when.all[0].op'."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, Mapping) and out.count("[") == 1 and isinstance(node.get("id"), str):
                out += f" (id {node['id']})"
        else:
            out += f".{part}" if out else part
            node = node.get(part) if isinstance(node, Mapping) else None
    return out


def problems_from_validation(exc: ValidationError, data: Any) -> list[Problem]:
    """Readable problems from a pydantic error; ``data`` lets them name the rule's id."""
    problems = []
    for error in exc.errors(include_url=False):
        message = error["msg"].removeprefix("Value error, ")
        problems.append(Problem(_path(tuple(error["loc"]), data), message))
    return problems


def parse_ruleset(data: Any) -> RuleSet:
    """Validate plain data (from YAML, JSON or a request body); raises :class:`RuleSetError`."""
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        raise RuleSetError(problems_from_validation(exc, data)) from exc


def load_core_yaml(text: str) -> Any:
    """The document in ``text`` with YAML's core types only and unique mapping keys (the module's
    docstring says why); ``yaml.YAMLError`` when it is not YAML. Every hand-written file goes
    through it: rule sets, SLA documents, team schedules."""
    try:
        return yaml.load(text, Loader=_CoreLoader)  # a SafeLoader subclass: no object tags
    except RecursionError:
        # PyYAML composes nodes recursively: a few hundred nested [ or { ended a command in a
        # RecursionError traceback. Every caller reports a YAMLError as the file's mistake.
        raise yaml.YAMLError("nested too deeply (a few hundred levels at most)") from None


def ruleset_from_yaml(text: str) -> RuleSet:
    try:
        data = load_core_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise RuleSetError([Problem(where, f"invalid YAML: {getattr(exc, 'problem', None) or exc}")]) from exc
    if not isinstance(data, Mapping):
        raise RuleSetError([Problem("", "a rule set is a mapping with a 'rules' list")])
    return parse_ruleset(_join_surrogates(data))


def _join_surrogates(value: Any) -> Any:
    """YAML reads JSON's escaped pairs (``"\\ud83d\\ude00"``) as two lone surrogates, which no
    text matches and no database stores: join them into the character they stand for."""
    if isinstance(value, str):
        if not any("\ud800" <= char <= "\udfff" for char in value):
            return value
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, Mapping):
        return {_join_surrogates(key): _join_surrogates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_join_surrogates(item) for item in value]
    return value


def ruleset_to_dict(ruleset: RuleSet) -> dict[str, Any]:
    # Defaults are left out so files stay short; loading fills them back in identically.
    data = ruleset.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    for rule in data.get("rules", []):
        if not rule["actions"]:
            # Only defaults (e.g. just `stop: true`): an empty `actions` would not load again.
            rule["actions"] = {"stop": True}
    return data


def ruleset_to_yaml(ruleset: RuleSet) -> str:
    return yaml.dump(
        ruleset_to_dict(ruleset), Dumper=_QuotingDumper, sort_keys=False, allow_unicode=True, width=100
    )
