"""Reading YAML that someone else wrote: the config file and imported Markdown front matter.

    load_yaml(text) → the document, built by PyYAML's safe constructors, or YamlInputError,
                      one line, for:
                        - a syntax error (PyYAML's message and position)
                        - nesting deeper than `MAX_DEPTH`: libyaml's composer recurses in C,
                          and a config of 100,000 "[" killed the process with SIGSEGV
                        - a value the safe constructors cannot build ("!!float abc")

The config is parsed by libyaml when PyYAML has it (nine times faster). Markdown front
matter is parsed by PyYAML's own parser: libyaml rejects the escape of a lone surrogate
("\\ud800"), which the Markdown writer emits to keep any string exactly.

An impossible date ("2024-13-45") is kept as its text instead of failing the whole document
without a position: the caller's validation then rejects it by its key.
"""

from __future__ import annotations

from typing import Any

import yaml

try:
    from yaml import CSafeLoader as _FastBase
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeLoader as _FastBase  # type: ignore[assignment]

MAX_DEPTH = 100  # far beyond any config or record, far below what crashes libyaml


class YamlInputError(ValueError):
    """Why a YAML document cannot be read, in one line."""


class _FastLoader(_FastBase):
    """libyaml's parser (when present) and the safe constructors."""


class _ExactLoader(yaml.SafeLoader):
    """PyYAML's own parser and the safe constructors."""


def _timestamp_or_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    try:
        return loader.construct_yaml_timestamp(node)
    except ValueError:
        return loader.construct_scalar(node)


for _loader in (_FastLoader, _ExactLoader):
    _loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_or_text)


def load_yaml(text: str, *, exact: bool = False) -> Any:
    """The YAML document `text` (None when empty); YamlInputError when it cannot be read.

    `exact` uses PyYAML's own parser, which reads every escape PyYAML writes."""
    loader = _ExactLoader if exact else _FastLoader
    try:
        depth = _nesting_depth(text, loader)
        if depth > MAX_DEPTH:
            raise YamlInputError(f"collections nest {depth} levels deep (at most {MAX_DEPTH})")
        return yaml.load(text, Loader=loader)  # noqa: S506 (safe constructors only)
    except yaml.YAMLError as exc:
        raise YamlInputError(" ".join(str(exc).split())) from None  # PyYAML's spans lines
    except YamlInputError:
        raise
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise YamlInputError(f"a value cannot be read: {exc}") from None


def _nesting_depth(text: str, loader: type[yaml.SafeLoader] | type[_FastLoader]) -> int:
    """How deep the collections of `text` nest, from the parser's events (both parsers
    keep their own stack: only composing the document recurses)."""
    depth = deepest = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            deepest = max(deepest, depth)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return deepest
