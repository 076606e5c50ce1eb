"""Loading a policy: TOML text in, a checked `Policy` out, or one `InvalidInput` that names the key.

Loading has two stages. Decoding (msgspec over Python's tomllib) checks the shape: TOML syntax,
types, unknown and missing keys, ranges of single values. Then `policy_findings` checks what relates
several values: the evaluation weights sum to exactly one, deductions never add points, ladder steps
run 1, 2, … n, and so on. It returns every finding, so a tool can list them all; `load_policy`
refuses with the first.

Every refusal has `rule="policy_invalid"` and, where there is one, `field` set to the key path in
the TOML document, such as `merit.points.citation.national` or `escalation.ladder[1].step` — but for
text that nests deeper than POLICY_DEPTH_MAX (a rulebook nests four levels), refused before it is parsed
as `policy_too_deep` with the field `body`, the text as a whole. tomllib follows arrays and inline tables
by recursion (`[[[[…` 500 deep exhausted Python's recursion limit: a 500) and spends time quadratic in
the parts of a dotted key (`a.a.a…` of 40,000 parts took 30 s, and 200,000 characters allow 99,000).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any, Final

import msgspec
import msgspec.toml
from msgspec import Struct

from ledger.domain.errors import InvalidInput
from ledger.domain.events import AWARDS, DEDUCTION_KINDS, GRADES, LEVELS, POLICY_BODY_LENGTH_MAX
from ledger.policy.schema import DECIMAL_PATTERN, DeductionRule, LevelPoints, Policy, decimal_hook

__all__ = [
    "POLICY_DEPTH_MAX",
    "POLICY_RULE",
    "TOO_DEEP_RULE",
    "PolicyFinding",
    "illustrative_policy",
    "illustrative_policy_text",
    "load_policy",
    "policy_findings",
]

POLICY_RULE: Final = "policy_invalid"
TOO_DEEP_RULE: Final = "policy_too_deep"
# How deep a policy may nest: brackets and braces open at once, or parts of one dotted key or header.
POLICY_DEPTH_MAX: Final = 32
ILLUSTRATIVE_RESOURCE: Final = "illustrative.toml"
YEARS_IN_GRADE_DEFAULT_KEY: Final = "default"
ONE: Final = Decimal(1)
ZERO: Final = Decimal(0)

# msgspec ends its messages with " - at `$.a.b`", or " - at `key` in `$.a`" for a bad dict key.
_LOCATION_RE: Final = re.compile(r"^(?P<detail>.*?) - at `(?P<key>key` in `)?\$(?P<path>[^`]*)`$", re.DOTALL)
_FIELD_RE: Final = re.compile(r"^Object (?P<what>missing required|contains unknown) field `(?P<name>[^`]*)`$")
_DECIMAL_RE: Final = re.compile(DECIMAL_PATTERN)
_UNKNOWN_ENTRY: Final = "[...]"
# What is not structure in TOML: strings (multi-line first) and comments, blanked before depth is counted.
_NOT_STRUCTURE: Final = re.compile(
    r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|#[^\n]*'
)
_BRACKET: Final = re.compile(r"[\[\]{}]")
# A run of text in which dots join the parts of one key (or write a number).
_KEY_RUN: Final = re.compile(r"[^=\[\]{},\n]+")


# Records a finding at a key path unless the condition holds.
Require = Callable[[bool, str, str], None]


class PolicyFinding(Struct, frozen=True):
    """One problem in a policy: the key path and what is wrong there."""

    field: str
    message: str


def load_policy(text: str) -> Policy:
    """The policy written in `text`, decoded strictly and checked.

    Raises InvalidInput (rule `policy_invalid`, field the key path) for the first problem found.
    """
    if len(text) > POLICY_BODY_LENGTH_MAX:
        raise InvalidInput(
            f"a policy is at most {POLICY_BODY_LENGTH_MAX} characters", field=None, rule=POLICY_RULE
        )
    _check_depth(text)
    try:
        policy = msgspec.toml.decode(text, type=Policy, strict=True, dec_hook=decimal_hook)
    except msgspec.ValidationError as error:
        raise _translate(str(error), text) from error
    except msgspec.DecodeError as error:
        # tomllib says where: "Invalid value (at line 3, column 9)".
        raise InvalidInput(f"the policy is not valid TOML: {error}", field=None, rule=POLICY_RULE) from error
    except RecursionError:
        # tomllib parses nested arrays and inline tables by recursion, and msgspec converts by recursion:
        # Python's recursion limit stops both, long before the stack, and the error is ours to name.
        raise InvalidInput(
            "the policy nests arrays or inline tables too deeply to be read (a rulebook nests a few levels)",
            field="body",
            rule=TOO_DEEP_RULE,
        ) from None
    findings = policy_findings(policy)
    if findings:
        first = findings[0]
        more = f" (and {len(findings) - 1} more problems)" if len(findings) > 1 else ""
        raise InvalidInput(first.message + more, field=first.field, rule=POLICY_RULE)
    return policy


def _check_depth(text: str) -> None:
    """Refuse text nesting deeper than POLICY_DEPTH_MAX, naming the line, before tomllib reads it.

    Strings and comments are blanked first (to spaces, keeping line breaks, so positions stay), so that
    brackets and dots inside them do not count. The count only bounds what tomllib is given: text it
    would refuse anyway may be counted loosely.
    """
    blank = _NOT_STRUCTURE.sub(lambda match: re.sub(r"[^\n]", " ", match.group()), text)
    depth = 0
    for bracket in _BRACKET.finditer(blank):
        depth = depth + 1 if bracket.group() in "[{" else max(depth - 1, 0)
        if depth > POLICY_DEPTH_MAX:
            raise _too_deep(f"brackets and braces open {depth} deep", blank, bracket.start())
    for run in _KEY_RUN.finditer(blank):
        if run.group().count(".") >= POLICY_DEPTH_MAX:
            raise _too_deep(f"a dotted key of {run.group().count('.') + 1} parts", blank, run.start())


def _too_deep(what: str, text: str, offset: int) -> InvalidInput:
    line = text.count("\n", 0, offset) + 1
    return InvalidInput(
        f"the policy nests too deeply at line {line}: {what}; a policy nests at most {POLICY_DEPTH_MAX} "
        "levels (a rulebook needs four)",
        field="body",
        rule=TOO_DEEP_RULE,
    )


def _translate(message: str, text: str) -> InvalidInput:
    """msgspec's validation message as an InvalidInput whose field is the key path."""
    match = _LOCATION_RE.match(message)
    detail, path, about_key = message, "", False
    if match:
        detail, path, about_key = match["detail"], match["path"], bool(match["key"])
    path = path.removeprefix(".")
    if _UNKNOWN_ENTRY in path:
        path = _resolve_entry(path, text)
    field_match = _FIELD_RE.match(detail)
    if field_match:
        name = field_match["name"]
        path = f"{path}.{name}" if path else name
        detail = (
            "missing key" if field_match["what"] == "missing required" else "unknown key"
        ) + f" `{name}`"
    elif about_key:
        detail = f"bad key: {detail}"
    return InvalidInput(detail, field=path or None, rule=POLICY_RULE)


def _resolve_entry(path: str, text: str) -> str:
    """Replace msgspec's `[...]` (an entry of a table keyed by name) with the name of the bad entry.

    msgspec does not say which entry of a dict failed. The only such tables hold decimal strings, so
    the bad entry is the first value that is not one.
    """
    head, _, tail = path.partition(_UNKNOWN_ENTRY)
    node: Any = tomllib.loads(text)
    for part in head.split("."):
        if not isinstance(node, dict) or part not in node:
            return path
        node = node[part]
    if isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(value, str) or not _DECIMAL_RE.fullmatch(value):
                return f"{head}.{key}{tail}"
    return path


def policy_findings(policy: Policy) -> list[PolicyFinding]:
    """Every problem that relates several values of a decoded policy; empty when it is sound."""
    findings: list[PolicyFinding] = []

    def require(condition: bool, field: str, message: str) -> None:
        if not condition:
            findings.append(PolicyFinding(field, message))

    tenure = policy.tenure
    require(tenure.service_points_per_year >= 0, "tenure.service_points_per_year", "must be ≥ 0")
    require(tenure.grade_points_per_year >= 0, "tenure.grade_points_per_year", "must be ≥ 0")

    require(policy.merit.annual_cap >= 0, "merit.annual_cap", "the annual cap must be ≥ 0")
    for award in AWARDS:
        row: LevelPoints = getattr(policy.merit.points, award)
        for level in LEVELS:
            require(
                getattr(row, level) >= 0,
                f"merit.points.{award}.{level}",
                "merit points must be ≥ 0",
            )

    for kind in DEDUCTION_KINDS:
        rule: DeductionRule = getattr(policy.deductions, kind)
        for level in LEVELS:
            require(
                getattr(rule.points, level) <= 0,
                f"deductions.{kind}.points.{level}",
                "deduction points must be ≤ 0",
            )

    weights = policy.evaluation.weights
    for name in weights.__struct_fields__:
        require(getattr(weights, name) >= 0, f"evaluation.weights.{name}", "a weight must be ≥ 0")
    weight_sum = weights.self + weights.section + weights.leadership
    require(
        weight_sum == ONE,
        "evaluation.weights",
        f"the weights must sum to exactly 1, not {weight_sum}",
    )
    require(policy.evaluation.points_per_score >= 0, "evaluation.points_per_score", "must be ≥ 0")

    recall = policy.recall
    require(recall.ordered_points <= 0, "recall.ordered_points", "a recall must not add points")
    require(
        (recall.bottom_count is None) != (recall.bottom_share is None),
        "recall.bottom_count",
        "give exactly one of bottom_count and bottom_share",
    )
    if recall.bottom_share is not None:
        require(ZERO < recall.bottom_share <= ONE, "recall.bottom_share", "must be > 0 and ≤ 1")

    require(policy.veto.points <= 0, "veto.points", "a veto must not add points")
    barred = policy.veto.barred_awards
    require(len(set(barred)) == len(barred), "veto.barred_awards", "each award may appear once")

    tie_breakers = policy.ranking.tie_breakers
    require(
        len(set(tie_breakers)) == len(tie_breakers),
        "ranking.tie_breakers",
        "each tie-breaker may appear once",
    )

    _check_eligibility(policy, require)

    steps = [rung.step for rung in policy.escalation.ladder]
    require(
        steps == list(range(1, len(steps) + 1)),
        "escalation.ladder",
        f"steps must be 1, 2, … {len(steps)} in order, not {steps}",
    )
    actions = [rung.action for rung in policy.escalation.ladder]
    require(len(set(actions)) == len(actions), "escalation.ladder", "each action may appear once")

    _check_units(policy, require)

    seen: set[str] = set()
    for index, bounds in enumerate(policy.overrides):
        require(
            bounds.event_type not in seen,
            f"overrides[{index}].event_type",
            f"{bounds.event_type} has bounds already",
        )
        seen.add(bounds.event_type)
        require(
            bounds.points_min <= bounds.points_max,
            f"overrides[{index}].points_min",
            "points_min must be ≤ points_max",
        )
    return findings


def _check_units(policy: Policy, require: Require) -> None:
    units = policy.units
    for name, weight in units.dimensions.items():
        require(weight > 0, f"units.dimensions.{name}", "a dimension's weight must be > 0")
    if units.dimensions:
        total = sum(units.dimensions.values(), ZERO)
        require(total == ONE, "units.dimensions", f"the weights must sum to exactly 1, not {total}")
    if units.aggregation == "trimmed_mean":
        share = units.trim_share
        require(
            share is not None and ZERO <= share < Decimal("0.5"),
            "units.trim_share",
            "a trimmed mean needs the share trimmed from each end, at least 0 and below 0.5",
        )
    else:
        require(units.trim_share is None, "units.trim_share", "only a trimmed_mean trims ratings")
    breakers = units.tie_breakers
    require(len(set(breakers)) == len(breakers), "units.tie_breakers", "each tie-breaker may appear once")
    steps = [rung.step for rung in units.ladder]
    require(
        steps == list(range(1, len(steps) + 1)),
        "units.ladder",
        f"steps must be 1, 2, … {len(steps)} in order, not {steps}",
    )
    actions = [rung.action for rung in units.ladder]
    require(len(set(actions)) == len(actions), "units.ladder", "each action may appear once")
    for index, rung in enumerate(units.ladder):
        require(
            rung.deduction is None or not rung.removes,
            f"units.ladder[{index}].removes",
            "a step proposes a deduction or a removal, not both",
        )


def _check_eligibility(policy: Policy, require: Require) -> None:
    eligibility = policy.eligibility
    years = eligibility.years_in_grade_min
    require(
        YEARS_IN_GRADE_DEFAULT_KEY in years,
        "eligibility.years_in_grade_min.default",
        "missing key `default`",
    )
    for key, value in years.items():
        field = f"eligibility.years_in_grade_min.{key}"
        require(
            key == YEARS_IN_GRADE_DEFAULT_KEY or key in GRADES,
            field,
            f"unknown key `{key}`: write `default` or a grade title such as {GRADES[0]}",
        )
        require(value >= 0, field, "must be ≥ 0")
    require(
        eligibility.excellent_year_shortens_by >= 0,
        "eligibility.excellent_year_shortens_by",
        "must be ≥ 0",
    )
    counting = eligibility.counting_results
    require(len(counting) > 0, "eligibility.counting_results", "name at least one result")
    require(
        len(set(counting)) == len(counting),
        "eligibility.counting_results",
        "each result may appear once",
    )
    top_share = eligibility.standing.top_share
    if top_share is not None:
        require(ZERO < top_share <= ONE, "eligibility.standing.top_share", "must be > 0 and ≤ 1")


def illustrative_policy_text() -> str:
    """The TOML text of the illustrative policy shipped in the package (nobody publishes it)."""
    resource = resources.files("ledger.policy").joinpath(ILLUSTRATIVE_RESOURCE)
    return resource.read_text(encoding="utf-8")


@cache
def illustrative_policy() -> Policy:
    """The illustrative policy, loaded and checked."""
    return load_policy(illustrative_policy_text())
