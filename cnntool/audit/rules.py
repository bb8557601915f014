"""``--fail-on`` rules: when findings make ``cnntool audit`` exit 1.

A rule is ``CHECK`` (trips on any finding of that check), ``CHECK>N`` / ``CHECK>=N`` (on a count)
or ``CHECK>N%`` / ``CHECK>=N%`` (on the share of audited files). ``any`` stands for every check
at once. Rules are comma-separated, and ``--fail-on`` may be repeated:
``--fail-on dark,near_duplicates --fail-on 'blurry>2%'``.

Unreadable files fail the run unless a rule says otherwise: when no rule names ``corrupt`` (or
``any``), the rule ``corrupt`` is added, which keeps cnntool's contract (exit 1 when some inputs
failed). Write ``corrupt>5%`` (say) to tolerate a few.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cnntool.errors import UsageError, did_you_mean

_RULE = re.compile(r"^\s*(?P<check>[a-z_]+)\s*(?:(?P<op>>=|>)\s*(?P<value>\d+(?:\.\d+)?)\s*(?P<pct>%)?)?\s*$")

#: The rule added when no rule mentions unreadable files.
IMPLICIT_RULE = "corrupt"


@dataclass(frozen=True)
class Rule:
    """One parsed rule: trips when the count (or share, in percent) of ``check`` passes ``limit``."""

    text: str
    check: str
    op: str = ">"
    limit: float = 0.0
    percent: bool = False
    implicit: bool = False

    def value(self, count: int, total: int) -> float:
        """The number this rule compares: a count, or a share of ``total`` in percent."""
        if self.percent:
            return 100.0 * count / total if total else 0.0
        return float(count)

    def trips(self, count: int, total: int) -> bool:
        value = self.value(count, total)
        return value >= self.limit if self.op == ">=" else value > self.limit


@dataclass(frozen=True)
class RuleResult:
    rule: Rule
    count: int
    total: int
    tripped: bool

    def as_dict(self) -> dict:
        return {"rule": self.rule.text, "count": self.count, "total": self.total,
                "tripped": self.tripped, "implicit": self.rule.implicit}


def parse_rules(specs, known_checks) -> list[Rule]:
    """Parse ``--fail-on`` values (each comma-separated) into rules, adding the implicit one.

    Parameters
    ----------
    specs : iterable of str
    known_checks : collection of str
        Valid check names (``any`` is always valid).

    Raises
    ------
    UsageError
        An unknown check, a malformed or empty rule, or a share that no count can pass
        (``blurry>100%``, ``blurry>200%``), with the accepted forms as the hint.

    Examples
    --------
    >>> [r.text for r in parse_rules(["dark,blurry>2%"], {"corrupt", "dark", "blurry"})]
    ['dark', 'blurry>2%', 'corrupt']
    >>> parse_rules(["blurry>=3"], {"corrupt", "blurry"})[0].limit
    3.0
    """
    rules: list[Rule] = []
    for spec in specs:
        parts = str(spec).split(",")
        if not all(p.strip() for p in parts):
            what = "an empty --fail-on rule" if not str(spec).strip() else f"an empty rule in --fail-on {spec!r}"
            raise UsageError(what, hint=_FORMS)
        rules.extend(_parse_one(part, known_checks) for part in parts)
    if not any(r.check in (IMPLICIT_RULE, "any") for r in rules):
        rules.append(Rule(IMPLICIT_RULE, IMPLICIT_RULE, implicit=True))
    return rules


_FORMS = "write CHECK, CHECK>N, CHECK>=N or CHECK>N% (for example dark, near_duplicates>0, 'blurry>2%')"


def _parse_one(text: str, known_checks) -> Rule:
    match = _RULE.match(text.lower())
    if not match:
        raise UsageError(f"cannot read --fail-on rule {text.strip()!r}", hint=_FORMS)
    check = match["check"]
    if check != "any" and check not in known_checks:
        choices = sorted(known_checks) + ["any"]
        raise UsageError(f"unknown check {check!r} in --fail-on rule {text.strip()!r}",
                         hint=did_you_mean(check, choices, fallback="checks: " + ", ".join(choices)))
    if match["op"] is None:
        return Rule(text.strip(), check)
    rule = Rule(text.strip(), check, match["op"], float(match["value"]), bool(match["pct"]))
    if rule.percent and (rule.limit > 100 or (rule.limit == 100 and rule.op == ">")):
        raise UsageError(f"--fail-on rule {rule.text!r} can never trip: a share is at most 100%",
                         hint="a share rule takes 0 <= N < 100 with '>' (0 <= N <= 100 with '>='), "
                              "for example 'blurry>2%'")
    return rule


def evaluate_rules(rules, counts: dict, total: int) -> list[RuleResult]:
    """Apply rules to per-check finding counts over ``total`` audited files.

    ``any`` counts files with at least one finding, given as ``counts["any"]``.

    Examples
    --------
    >>> rules = parse_rules(["blurry>2%"], {"corrupt", "blurry"})
    >>> [(r.rule.text, r.tripped) for r in evaluate_rules(rules, {"blurry": 3, "corrupt": 0}, 100)]
    [('blurry>2%', True), ('corrupt', False)]
    """
    return [RuleResult(r, int(counts.get(r.check, 0)), total, r.trips(int(counts.get(r.check, 0)), total))
            for r in rules]
