"""`choose:` branches: does a conversation variable pass a condition written in the flow?

Answers arrive as text, so comparisons forgive the form: "Ready" equals ready, "3" is above 2.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bot.engine.schema import BranchSpec, ConditionSpec
from bot.engine.words import normalize


def branch_holds(branch: BranchSpec, variables: Mapping[str, Any]) -> bool:
    """Every condition of the branch holds (a branch without `if` always does)."""
    return all(holds(condition, variables.get(name)) for name, condition in (branch.when or {}).items())


def holds(condition: ConditionSpec, value: Any) -> bool:
    is_set = value is not None and value != "" and value != [] and value != {}
    if condition.set is not None and condition.set != is_set:
        return False
    if condition.equals is not None and not _same(value, condition.equals):
        return False
    if condition.one_of is not None and not any(_same(value, option) for option in condition.one_of):
        return False
    number = _number(value)
    if condition.above is not None and (number is None or not number > condition.above):
        return False
    if condition.below is not None and (number is None or not number < condition.below):
        return False
    return condition.matches is None or (
        is_set and re.search(condition.matches, str(value), re.IGNORECASE) is not None
    )


def _same(value: Any, expected: Any) -> bool:
    if value is None:
        return False
    if isinstance(expected, bool) or isinstance(value, bool):
        return str(value).lower() == str(expected).lower()
    left, right = _number(value), _number(expected)
    if left is not None and right is not None:
        return left == right
    return normalize(str(value)) == normalize(str(expected))


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).replace(",", "."))
    except ValueError:
        return None
