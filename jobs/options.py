"""A declarative spec of a job's options, and what is generated from it: the argparse parser, the YAML loader and the
Markdown table of the README. The job's own spec lives in :mod:`jobs.config`; this module knows nothing about it.

An ``Option`` declares a dotted kebab-case name (``kafka.bootstrap-servers``), a ``Kind``, a default, the allowed
values or range, a help text and whether its values may hold secrets. From one spec:

- flags: ``--name VALUE``; a list is comma-separated and may be repeated (the items add up); a map is a repeated
  ``--name key=value``; a boolean is ``--name`` (true) or ``--name true|false``.
- YAML (``--config FILE``): a mapping whose keys are option names, flat (``kafka.group-id: x``) or nested
  (``kafka: {group-id: x}``); a list is a YAML list (or a comma-separated string), a map a YAML mapping.
- Precedence, later wins: the default, the file, the flags. A map merges per key (a flag's key wins over the
  file's); any other option given as a flag replaces the file's value.

Guarantees: every problem is a ``JobConfigError`` whose message names the option as a flag (``--sink.batch-size``),
the bad value and what is allowed, plus the file when the value came from one. Unknown flags and YAML keys are
errors naming the closest valid option. Values of a secret option, YAML text and stray command-line values are never
echoed in a message (a mistyped flag may be followed by a secret).
"""

from __future__ import annotations

import argparse
import difflib
import enum
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml

from kafka_pinecone_flink.jobs.masking import mask_urls

OptionValue = str | int | float | bool | tuple[str, ...] | Mapping[str, str] | None

CONFIG_FLAG = "--config"
COMMAND_LINE = "command line"
"""The origin of a value given as a flag (as opposed to a file path)."""
MAX_SHOWN_CHARS = 80
"""Longer values are cut in messages."""
HIDDEN = "(value hidden)"
MASK = "***"
SUGGESTION_CUTOFF = 0.6
"""difflib similarity above which a valid name is offered for a mistyped one."""
DURATION_UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
TRUE_WORDS = ("true",)
FALSE_WORDS = ("false",)


class JobConfigError(ValueError):
    """The job's configuration is invalid: the message names the option, the bad value and what is allowed.

    Credentials inside URLs quoted in the message are masked, whoever wrote it (``jobs.masking.mask_urls``)."""

    def __init__(self, message: str = "", *args: object) -> None:
        super().__init__(mask_urls(str(message)), *args)


class Kind(enum.Enum):
    """The type of an option's value, as the job sees it after parsing."""

    STR = "string"
    INT = "integer"
    FLOAT = "number"
    BOOL = "boolean"
    LIST = "list"
    """A tuple of non-empty strings."""
    MAP = "map"
    """A ``Mapping[str, str]``."""
    DURATION = "duration"
    """An int of milliseconds, written with a unit: ``500ms``, ``45s``, ``30m``, ``12h``, ``7d``, or ``0``."""


_METAVARS = {
    Kind.STR: "TEXT",
    Kind.INT: "N",
    Kind.FLOAT: "X",
    Kind.BOOL: "{true,false}",
    Kind.LIST: "A,B",
    Kind.MAP: "KEY=VALUE",
    Kind.DURATION: "DURATION",
}


@dataclass(frozen=True)
class Option:
    """One option of the spec. ``check`` validates a parsed value beyond its kind: it returns what is expected when
    the value is wrong, None when it is fine. ``secret``: values may hold secrets and never appear in a message."""

    name: str
    kind: Kind
    help: str
    default: OptionValue = None
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    required: bool = False
    allow_empty: bool = False
    """A ``STR`` option that accepts ``""`` (otherwise strings must be non-empty)."""
    secret: bool = False
    check: Callable[[Any], str | None] | None = None
    doc_default: str | None = None
    """How the default is shown in the docs when ``default`` is not the whole story."""
    target: str | None = None
    """The stage-config field this option feeds, as ``"stage.field"`` (e.g. ``"sink.batch_size"``)."""

    @property
    def flag(self) -> str:
        return f"--{self.name}"

    def allowed(self) -> str:
        """What the option accepts, in words (used in help, docs and error messages)."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.kind in (Kind.INT, Kind.FLOAT):
            noun = "an integer" if self.kind is Kind.INT else "a number"
            if self.low is not None and self.high is not None:
                return f"{noun} from {_number(self.low)} to {_number(self.high)}"
            if self.low is not None:
                return f"{noun} of at least {_number(self.low)}"
            return noun
        if self.kind is Kind.STR and self.allow_empty:
            return "a string"
        return {
            Kind.STR: "a non-empty string",
            Kind.BOOL: "true or false",
            Kind.LIST: "a comma-separated list of non-empty names",
            Kind.MAP: "key=value entries",
            Kind.DURATION: "a duration with a unit (500ms, 45s, 30m, 12h, 7d) or 0",
        }[self.kind]

    def parse(self, raw: object, origin: str) -> OptionValue:
        """``raw`` (a flag's text, or a YAML value) as this option's value; ``JobConfigError`` if it is not one."""
        value = self._convert(raw, origin)
        if self.kind in (Kind.INT, Kind.FLOAT, Kind.DURATION) and not self._in_range(value):
            self.fail(raw, self.allowed(), origin)
        if self.choices and value not in self.choices:
            self.fail(raw, self.allowed(), origin)
        if self.check is not None:
            expected = self.check(value)
            if expected is not None:
                self.fail(raw, expected, origin)
        return value

    def fail(self, value: object, expected: str, origin: str = COMMAND_LINE) -> NoReturn:
        raise JobConfigError(option_message(self.flag, show(value, self.secret), expected, origin))

    def _in_range(self, value: Any) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def _convert(self, raw: object, origin: str) -> OptionValue:
        kind = self.kind
        if kind is Kind.STR:
            if isinstance(raw, str) and (raw or self.allow_empty):
                return raw
        elif kind is Kind.INT:
            number = _integer(raw)
            if number is not None:
                return number
        elif kind is Kind.FLOAT:
            real = _real(raw)
            if real is not None:
                return real
        elif kind is Kind.BOOL:
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and raw.lower() in TRUE_WORDS + FALSE_WORDS:
                return raw.lower() in TRUE_WORDS
        elif kind is Kind.LIST:
            items = _names(raw)
            if items is not None:
                return items
        elif kind is Kind.MAP:
            return self._map(raw, origin)
        else:
            duration = _duration_ms(raw)
            if duration is not None:
                return duration
        self.fail(raw, self.allowed(), origin)

    def _map(self, raw: object, origin: str) -> Mapping[str, str]:
        if not isinstance(raw, Mapping):
            self.fail(raw, "a mapping of key to value", origin)
        result: dict[str, str] = {}
        for key, value in raw.items():
            if not isinstance(key, str) or not key:
                self.fail(key, "non-empty keys", origin)
            if isinstance(value, bool):
                text = "true" if value else "false"  # what Java-side properties expect, not Python's "True"
            elif isinstance(value, str | int | float):
                text = str(value)
            else:
                shown = f"the value {show(value, self.secret)} of key {key!r}"
                raise JobConfigError(option_message(self.flag, shown, "string or number values", origin))
            result[key] = text
        return result


def option_message(flag: str, shown: str, expected: str, origin: str = COMMAND_LINE) -> str:
    """The one format of an option error: ``--name: got VALUE (in FILE); expected WHAT``."""
    where = "" if origin == COMMAND_LINE else f" (in {origin})"
    return f"{flag}: got {shown}{where}; expected {expected}"


def show(value: object, secret: bool = False) -> str:
    """``value`` for a message: its repr, cut at ``MAX_SHOWN_CHARS``, or ``(value hidden)`` when secret."""
    if secret:
        return HIDDEN
    text = mask_urls(repr(tuple(value) if isinstance(value, list) else value))
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 3] + "..."


def suggestion(name: str, valid: Iterable[str]) -> str:
    """`` (did you mean X?)`` for the closest valid name, or ``""``."""
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=SUGGESTION_CUTOFF)
    return f" (did you mean {close[0]}?)" if close else ""


def _number(value: float) -> str:
    return f"{value:,g}" if isinstance(value, float) and not value.is_integer() else f"{int(value):,}"


def _integer(raw: object) -> int | None:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        digits = raw[1:] if raw.startswith("-") else raw
        # int() would also take "1_000", " 7 " and non-ASCII digits.
        if digits.isascii() and digits.isdigit():
            return int(raw)
    return None


def _real(raw: object) -> float | None:
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        value = float(raw)
    elif isinstance(raw, str) and raw.strip() == raw and raw:
        try:
            value = float(raw)
        except ValueError:
            return None
    else:
        return None
    return value if math.isfinite(value) else None


def _names(raw: object) -> tuple[str, ...] | None:
    if isinstance(raw, str):
        # "" is the empty list; otherwise every comma-separated item must name something.
        if not raw.strip():
            return ()
        items = [item.strip() for item in raw.split(",")]
    elif isinstance(raw, list | tuple):
        items = list(raw)
    else:
        return None
    if all(isinstance(item, str) and item for item in items):
        return tuple(items)
    return None


def _duration_ms(raw: object) -> int | None:
    if raw == 0 and not isinstance(raw, bool):
        return 0
    if not isinstance(raw, str):
        return None
    if raw == "0":
        return 0
    unit = "ms" if raw.endswith("ms") else raw[-1:]
    scale = DURATION_UNITS_MS.get(unit)
    digits = raw[: -len(unit)] if scale is not None else ""
    if scale is None or not (digits.isascii() and digits.isdigit()):
        return None
    return int(digits) * scale


class MaskedMapping(Mapping[str, str]):
    """An immutable ``Mapping[str, str]`` whose ``repr`` shows ``'***'`` for the values of secret keys, and the other
    values with the credentials of their URLs masked (``jobs.masking.mask_urls``).

    Iteration, ``items()`` and lookups give the real values (the Kafka client needs them); only the printed form is
    masked, so a config object holding it can be logged. Picklable (``is_secret`` must be a module-level function).
    """

    __slots__ = ("_data", "_is_secret")

    def __init__(self, data: Mapping[str, str], is_secret: Callable[[str], bool]) -> None:
        self._data = dict(data)
        self._is_secret = is_secret

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        shown = {key: MASK if self._is_secret(key) else mask_urls(value) for key, value in self._data.items()}
        return repr(shown)

    __str__ = __repr__

    def secret_values(self) -> tuple[str, ...]:
        return tuple(value for key, value in self._data.items() if self._is_secret(key) and value)


# --- the command line -------------------------------------------------------------------------------------------------


class _RaisingParser(argparse.ArgumentParser):
    """argparse reports problems by exiting; a config loader must raise (``--help`` still prints and exits)."""

    def error(self, message: str) -> NoReturn:
        raise JobConfigError(message)


def build_parser(options: Sequence[Option], prog: str, description: str, epilog: str | None = None) -> Any:
    """The argparse parser of ``options`` plus ``--config FILE``; one help group per name prefix (``kafka``, ...).

    Flags default to ``argparse.SUPPRESS``, so the parsed namespace holds exactly the options given.
    """
    parser = _RaisingParser(
        prog=prog,
        description=description,
        epilog=epilog,
        allow_abbrev=False,  # a prefix of one option must not silently select another
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        CONFIG_FLAG, metavar="FILE", help="YAML file of options (keys = option names); flags win over the file"
    )
    groups: dict[str, Any] = {}
    for option in options:
        prefix = option.name.split(".", 1)[0]
        group = groups.get(prefix)
        if group is None:
            group = groups[prefix] = parser.add_argument_group(f"{prefix} options")
        help_text = f"{help_line(option)} Default: {default_text(option)}.".replace("%", "%%")
        common: dict[str, Any] = {"dest": option.name, "default": argparse.SUPPRESS, "help": help_text}
        metavar = "{" + ",".join(option.choices) + "}" if option.choices else _METAVARS[option.kind]
        if option.kind is Kind.BOOL:
            group.add_argument(option.flag, nargs="?", const="true", metavar=metavar, **common)
        elif option.kind in (Kind.LIST, Kind.MAP):
            group.add_argument(option.flag, action="append", metavar=metavar, **common)
        else:
            group.add_argument(option.flag, metavar=metavar, **common)
    return parser


def help_line(option: Option) -> str:
    """The option's help text followed by what it allows and its default (help output and Markdown)."""
    parts = [option.help.rstrip(".") + "."]
    if option.kind not in (Kind.STR, Kind.LIST, Kind.MAP) or option.choices:
        parts.append(f"Allowed: {option.allowed()}.")
    if option.secret:
        parts.append("Its values are never shown in messages.")
    return " ".join(parts)


def default_text(option: Option) -> str:
    if option.doc_default is not None:
        return option.doc_default
    if option.required:
        return "required"
    value = option.default
    if value is None or value == () or value == {}:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def _flag_values(option: Option, raw: Any) -> object:
    """A flag's parsed text as the raw value ``Option.parse`` takes (lists joined, ``key=value`` pairs split)."""
    if option.kind is Kind.LIST:
        items: list[str] = []
        for text in raw:
            items.extend(item.strip() for item in text.split(",") if text.strip())
        return items
    if option.kind is Kind.MAP:
        pairs: dict[str, str] = {}
        for entry in raw:
            key, equals, value = entry.partition("=")
            if not equals or not key.strip():
                # Without a key, the whole entry might be a secret (a missing "=" in "sasl.jaas.config=...").
                option.fail(HIDDEN if option.secret else entry, "key=value with a non-empty key")
            pairs[key.strip()] = value
        return pairs
    return raw


def _unknown_arguments(extras: Sequence[str], options: Sequence[Option], refused: Mapping[str, str]) -> NoReturn:
    names = [option.flag for option in options] + [CONFIG_FLAG]
    for token in extras:
        if token.startswith("-"):
            flag = token.split("=", 1)[0]  # never the value after "="
            if flag.lstrip("-") in refused:
                raise JobConfigError(f"{flag} is not an option: {refused[flag.lstrip('-')]}")
            raise JobConfigError(f"unknown option {flag}{suggestion(flag, names)}; see --help for the options")
    raise JobConfigError(
        f"{len(extras)} unexpected argument(s) {HIDDEN}: every option is a --name VALUE flag; see --help"
    )


# --- resolution: defaults < file < flags ------------------------------------------------------------------------------


_RESOLVED = object()


@dataclass(frozen=True)
class Resolved:
    """Every option's value after defaults, the file and the flags; ``given``: the options set in either."""

    values: Mapping[str, OptionValue]
    origins: Mapping[str, str] = field(default_factory=dict)
    """Where each given option was set: ``COMMAND_LINE`` or the YAML file's path."""

    @property
    def given(self) -> frozenset[str]:
        return frozenset(self.origins)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def error(self, option: Option, expected: str, value: object = _RESOLVED) -> JobConfigError:
        """An error about ``option``'s value (default: its resolved value) in the one message format."""
        shown = show(self.values[option.name] if value is _RESOLVED else value, option.secret)
        return JobConfigError(option_message(option.flag, shown, expected, self.origins.get(option.name, COMMAND_LINE)))


def resolve(
    options: Sequence[Option], parser: Any, argv: Sequence[str], refused: Mapping[str, str] | None = None
) -> Resolved:
    """Parse ``argv`` (and the ``--config`` file it names) into every option's value; ``JobConfigError`` if any is
    bad. ``refused``: names that are deliberately not options, with the reason (given instead of a suggestion).
    ``--help`` prints the help and raises ``SystemExit(0)`` (argparse's behaviour)."""
    refused = refused or {}
    namespace, extras = parser.parse_known_args(list(argv))
    if extras:
        _unknown_arguments(extras, options, refused)
    by_name = {option.name: option for option in options}
    values: dict[str, OptionValue] = {option.name: option.default for option in options}
    origins: dict[str, str] = {}
    config_path = getattr(namespace, "config", None)
    if config_path is not None:
        for name, raw in load_yaml(Path(config_path), by_name, refused).items():
            values[name] = by_name[name].parse(raw, config_path)
            origins[name] = config_path
    for name, raw in vars(namespace).items():
        if name == "config":
            continue
        option = by_name[name]
        value = option.parse(_flag_values(option, raw), COMMAND_LINE)
        earlier = values[name]
        if option.kind is Kind.MAP and name in origins and isinstance(earlier, Mapping) and isinstance(value, Mapping):
            value = {**earlier, **value}  # per key, the flag wins over the file
        values[name] = value
        origins[name] = COMMAND_LINE
    for option in options:
        if option.required and values[option.name] is None:
            raise JobConfigError(f"{option.flag} is required: {option.help.rstrip('.')}")
    return Resolved(values, origins)


# --- the YAML file ----------------------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """Safe loading that rejects a key given twice in one mapping (PyYAML would keep the last silently)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise JobConfigError(f"key {key!r} appears twice in one mapping (line {key_node.start_mark.line + 1})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: Path, options: Mapping[str, Option], refused: Mapping[str, str] | None = None) -> dict[str, object]:
    """The file's options as ``{option name: raw YAML value}``. Nested mappings are flattened to dotted names until
    they reach an option, so a map option's value stays a mapping. Unknown keys are errors naming the closest option.

    Parse errors give the line and column only, never the text (a line may hold a secret).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise JobConfigError(f"{CONFIG_FLAG} {path}: cannot read the file ({exc.strerror or exc})") from None
    try:
        document = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: no arbitrary objects
    except JobConfigError as exc:
        raise JobConfigError(f"{CONFIG_FLAG} {path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise JobConfigError(f"{CONFIG_FLAG} {path}: not valid YAML{where}: {problem}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise JobConfigError(f"{CONFIG_FLAG} {path}: expected a mapping of option names to values at the top level")
    found: dict[str, object] = {}
    prefixes = {name.rsplit(".", i)[0] for name in options for i in range(1, name.count(".") + 1)}
    _flatten(document, "", options, prefixes, refused or {}, path, found)
    return found


def _flatten(
    mapping: Mapping[Any, Any],
    prefix: str,
    options: Mapping[str, Option],
    prefixes: set[str],
    refused: Mapping[str, str],
    path: Path,
    found: dict[str, object],
) -> None:
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if not isinstance(key, str):
            raise JobConfigError(f"{CONFIG_FLAG} {path}: option names are strings, got the key {key!r}")
        if name in options:
            if name in found:
                raise JobConfigError(f"{CONFIG_FLAG} {path}: {name} is given twice (flat and nested)")
            found[name] = value
        elif name in prefixes and isinstance(value, dict):
            _flatten(value, f"{name}.", options, prefixes, refused, path, found)
        elif name in refused:
            raise JobConfigError(f"{CONFIG_FLAG} {path}: {name!r} is not an option: {refused[name]}")
        else:
            raise JobConfigError(f"{CONFIG_FLAG} {path}: unknown option {name!r}{suggestion(name, options)}")


# --- the docs ---------------------------------------------------------------------------------------------------------


def markdown_table(options: Sequence[Option]) -> str:
    """The README's options table: option, default, description (with what it allows). Deterministic."""
    lines = ["| option | default | description |", "|---|---|---|"]
    for option in options:
        default = default_text(option)
        shown = default if default == "required" or default.startswith("(") else f"`{default}`"
        lines.append(f"| `{option.name}` | {_cell(shown)} | {_cell(help_line(option))} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
