"""YAML to plain Python values, remembering the line of every key and list item.

``yaml.safe_load`` forgets positions; validation messages are far more useful with
``(line N)``, so we compose the node tree ourselves and record ``dotted.path -> line``.
Only safe tags are resolved (the ``SafeLoader`` constructors do the scalar typing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from multicloud_collector.config.problems import Problem


@dataclass(slots=True)
class YamlDocument:
    data: Any
    lines: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def join_path(parent: str, key: object) -> str:
    """``accounts[0]`` + ``api`` -> ``accounts[0].api``; ints become ``[i]``."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else str(key)


def parse_yaml(text: str, source_name: str) -> YamlDocument:
    """Parse one YAML document; a syntax error becomes a ``file:line:col: message`` problem."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
            doc = YamlDocument(data=None)
            if node is not None:
                doc.data = _build(loader, node, "", doc)
            return doc
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = source_name if mark is None else f"{source_name}:{mark.line + 1}:{mark.column + 1}"
        message = exc.problem or exc.context or "invalid YAML"
        return YamlDocument(data=None, problems=[Problem(where, message)])
    except yaml.YAMLError as exc:  # pragma: no cover - every parser error is marked in practice
        return YamlDocument(data=None, problems=[Problem(source_name, f"invalid YAML: {exc}")])


def _build(loader: yaml.SafeLoader, node: yaml.Node, path: str, doc: YamlDocument) -> Any:
    if isinstance(node, yaml.MappingNode):
        own = {id(k) for k, _ in node.value}
        loader.flatten_mapping(node)  # resolves "<<" merge keys; merged pairs come first
        out: dict[Any, Any] = {}
        merged: set[str] = set()
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) or key is None:
                doc.problems.append(
                    Problem(
                        path or "<root>",
                        f"unsupported mapping key {key!r}",
                        line=key_node.start_mark.line + 1,
                    )
                )
                continue
            key_text = str(key) if not isinstance(key, bool) else str(key).lower()
            child = join_path(path, key_text)
            line = key_node.start_mark.line + 1
            if key_text in out and key_text not in merged:
                doc.problems.append(
                    Problem(child, f"duplicate key (first at line {doc.lines[child]})", line=line)
                )
                continue
            if id(key_node) in own:
                merged.discard(key_text)
            else:
                merged.add(key_text)
            doc.lines[child] = line
            out[key_text] = _build(loader, value_node, child, doc)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            child = join_path(path, i)
            doc.lines[child] = item.start_mark.line + 1
            items.append(_build(loader, item, child, doc))
        return items
    return loader.construct_object(node, deep=True)
