"""Hydra's sweep syntax as Optuna distributions (the ``hydra.sweeper.params`` of a search).

``key=choice(a, b)`` -> ``CategoricalDistribution``; ``key=interval(lo, hi)`` ->
``FloatDistribution`` (Hydra reads interval ends as floats: integers take ``range``), log-scaled
under ``tag(log, ...)``;
``key=range(start, stop[, step])`` -> ``IntDistribution`` / ``FloatDistribution`` with that step
over the values Hydra's own grid would take (``stop`` excluded, as in Hydra), categorical when
shuffled. A plain ``key=value`` is a fixed parameter. The parse follows hydra-optuna-sweeper 1.3
(``_impl.create_params_from_overrides``, MIT), written again for Optuna >= 4's distributions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, RangeSweep, Transformer
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

CHOICE_TYPES = (str, int, float, bool, type(None))


def choices(override: Override) -> CategoricalDistribution:
    values = list(override.sweep_iterator(transformer=Transformer.encode))
    for value in values:
        if not isinstance(value, CHOICE_TYPES):
            raise ValueError(
                f"hydra.sweeper.params: {override.input_line!r} has the value {value!r} "
                f"({type(value).__name__}); a choice takes strings, numbers, booleans or null"
            )
    return CategoricalDistribution(values)


def range_distribution(override: Override, sweep: RangeSweep) -> BaseDistribution:
    if sweep.shuffle:
        return choices(override)
    start, stop, step = sweep.start, sweep.stop, sweep.step
    count = math.ceil((stop - start) / step)  # Hydra's range: start, start + step, ... < stop
    if count < 1:
        raise ValueError(
            f"hydra.sweeper.params: {override.input_line!r} holds no value (range stops before "
            "its start); write range(start, stop, step) with stop after start"
        )
    last = start + (count - 1) * step
    if all(isinstance(v, int) for v in (start, stop, step)):
        return IntDistribution(int(start), int(last), step=int(step))
    return FloatDistribution(float(start), float(last), step=float(step))


def interval_distribution(sweep: IntervalSweep) -> BaseDistribution:
    return FloatDistribution(float(sweep.start), float(sweep.end), log="log" in sweep.tags)


def distribution(override: Override) -> BaseDistribution | str:
    """The override's distribution, or its value (a string) when it is not a sweep."""
    if not override.is_sweep_override():
        return override.get_value_element_as_str()
    value = override.value()
    if override.is_choice_sweep():
        return choices(override)
    if override.is_range_sweep():
        return range_distribution(override, value)
    if override.is_interval_sweep():
        return interval_distribution(value)
    raise ValueError(
        f"hydra.sweeper.params: {override.input_line!r} is not supported by the Optuna search; "
        "use choice(...), range(...), interval(...) or tag(log, interval(...))"
    )


def parse_params(
    overrides: Iterable[str],
) -> tuple[dict[str, BaseDistribution], dict[str, Any]]:
    """``(search space, fixed parameters)`` of ``key=value`` overrides; a later override of a
    key wins (the command line after ``hydra.sweeper.params``), so a fixed value given on the
    command line takes the key out of the search."""
    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, Any] = {}
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        name = override.get_key_element()
        parsed = distribution(override)
        # a key given again keeps its place (the order of the parameters in W&B run names)
        if isinstance(parsed, BaseDistribution):
            fixed.pop(name, None)
            space[name] = parsed
        else:
            space.pop(name, None)
            fixed[name] = parsed
    return space, fixed
