"""Typed, bounded options: what a loss (or anything configurable) takes, said once.

An :class:`Option` knows its type, default, choices or bounds and a one-line help text. The CLI parses
``KEY=VALUE`` strings through it, the trainer validates a config through it and the dashboard draws a
widget from it, so a bound is written in one place and every caller enforces the same one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


@dataclass(frozen=True)
class Option:
    """One option: ``kind`` is bool, int, float or str.

    ``low``/``high`` bound numbers (inclusive unless ``low_open``/``high_open``); ``choices`` lists the
    allowed strings; ``nullable`` lets None (or "none" on the command line) through; ``group`` says
    what the option changes, so a page can show the options that change what it draws.
    """

    name: str
    kind: type
    default: object
    help: str = ""
    choices: tuple[str, ...] | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    nullable: bool = False
    #: what the option changes: "weights" (the pair weights a page can show), "loss" or "memory"
    group: str = "loss"

    def parse(self, value: object) -> object:
        """``value`` (a Python value or the text of ``KEY=VALUE``) as this option's type, checked.

        Raises:
            ValueError: naming the option, the value and what it accepts.
        """
        if value is None or (self.nullable and isinstance(value, str) and value.lower() == "none"):
            if self.nullable:
                return None
            raise ValueError(f"{self.name} needs a value ({self.accepts()})")
        converted = self._convert(value)
        self._check(converted)
        return converted

    def accepts(self) -> str:
        """What the option takes, in words (for messages and help)."""
        if self.choices is not None:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.kind is bool:
            text = "true or false"
        else:
            noun = (
                "an integer" if self.kind is int else "a number" if self.kind is float else "text"
            )
            bounds = []
            if self.low is not None:
                bounds.append(f"{'>' if self.low_open else '>='} {self.low:g}")
            if self.high is not None:
                bounds.append(f"{'<' if self.high_open else '<='} {self.high:g}")
            text = noun + (" " + " and ".join(bounds) if bounds else "")
        return text + (" or none" if self.nullable else "")

    def _fail(self, value: object) -> ValueError:
        return ValueError(f"{self.name} must be {self.accepts()}, got {value!r}")

    def _convert(self, value: object) -> object:
        if self.kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
                return value.strip().lower() in _TRUE
            raise self._fail(value)
        if self.kind is int:
            if isinstance(value, bool):
                raise self._fail(value)
            if isinstance(value, int):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, str):
                try:
                    return int(value.strip())
                except ValueError:
                    pass
            raise self._fail(value)  # 2.7 is not silently truncated to 2
        if self.kind is float:
            if isinstance(value, bool | complex):
                raise self._fail(value)
            try:
                number = float(value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise self._fail(value) from None
            if not math.isfinite(number):
                raise self._fail(value)
            return number
        if not isinstance(value, str):
            raise self._fail(value)
        return value

    def _check(self, value: object) -> None:
        if self.choices is not None and value not in self.choices:
            raise self._fail(value)
        if self.kind in (int, float):
            number = float(value)  # type: ignore[arg-type]
            if self.low is not None and (
                number < self.low or (self.low_open and number == self.low)
            ):
                raise self._fail(value)
            if self.high is not None and (
                number > self.high or (self.high_open and number == self.high)
            ):
                raise self._fail(value)


def parse_options(
    options: Iterable[Option], given: Mapping[str, object], owner: str
) -> dict[str, object]:
    """``given`` checked against ``options``: each value parsed; unknown names refused.

    Raises:
        ValueError: for an unknown name (listing the known ones) or a bad value.
    """
    by_name = {o.name: o for o in options}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        known = ", ".join(sorted(by_name)) or "no options"
        raise ValueError(f"unknown option(s) {unknown} for {owner}; it takes {known}")
    return {name: by_name[name].parse(value) for name, value in given.items()}
