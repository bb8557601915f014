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

from cnntool.errors import UsageError

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
        An unknown check or a malformed rule, with the accepted forms as the hint.

    Examples
    --------
    >>> [r.text for r in parse_rules(["dark,blurry>2%"], {"corrupt", "dark", "blurry"})]
    ['dark', 'blurry>2%', 'corrupt']
    >>> parse_rules(["blurry>=3"], {"corrupt", "blurry"})[0].limit
    3.0
    """
    rules: list[Rule] = []
    for spec in specs:
        for part in str(spec).split(","):
            if part.strip():
                rules.append(_parse_one(part, known_checks))
    if not any(r.check in (IMPLICIT_RULE, "any") for r in rules):
        rules.append(Rule(IMPLICIT_RULE, IMPLICIT_RULE, implicit=True))
    return rules


def _parse_one(text: str, known_checks) -> Rule:
    match = _RULE.match(text.lower())
    hint = "write CHECK, CHECK>N, CHECK>=N or CHECK>N% (for example dark, near_duplicates>0, 'blurry>2%')"
    if not match:
        raise UsageError(f"cannot read --fail-on rule {text.strip()!r}", hint=hint)
    check = match["check"]
    if check != "any" and check not in known_checks:
        import difflib

        close = difflib.get_close_matches(check, list(known_checks), n=1)
        raise UsageError(f"unknown check {check!r} in --fail-on rule {text.strip()!r}",
                         hint=f"did you mean {close[0]}?" if close else "checks: " + ", ".join(sorted(known_checks)))
    if match["op"] is None:
        return Rule(text.strip(), check)
    return Rule(text.strip(), check, match["op"], float(match["value"]), bool(match["pct"]))


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
