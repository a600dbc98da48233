"""Our result for each of the paper's claims: agrees, disagrees, consistent (no difference found, as
the paper expects) or inconclusive (no difference found where the paper reports one)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from xception.experiments.definition import Claim
from xception.experiments.statistics import POWER, Difference, Summary, Verdict, compare, summarize, verdict

if TYPE_CHECKING:
    from xception.experiments.comparison import ComparisonRun

Agreement = Literal["agrees", "disagrees", "consistent", "inconclusive"]


@dataclass(frozen=True)
class ClaimOutcome:
    claim: Claim
    better: Summary  # final test scores of the arm the paper finds better (or, "similar", the first)
    worse: Summary
    difference: Difference | None  # better - worse; None with a single seed
    verdict: Verdict
    agreement: Agreement

    def sentence(self, scale: float = 100, unit: str = "pp") -> str:
        """What the comparison found, in words, differences x `scale` in `unit`."""
        c, d = self.claim, self.difference
        if d is None:
            return f"one seed only: no verdict on {c.better} vs {c.worse}"
        if self.verdict == "within noise":
            found = (f"no difference detected between {c.better} and {c.worse} (the 95% interval holds 0); "
                     f"this design detects only differences of {d.detectable * scale:.2f} {unit} or more "
                     f"(at {POWER:.0%} power)")
            return found + (", as the paper expects no difference" if c.expect == "similar"
                            else ", so it cannot confirm the paper's difference at this scale")
        leader, trailer = (c.better, c.worse) if d.estimate > 0 else (c.worse, c.better)
        ahead = f"{leader} is ahead of {trailer} by {abs(d.estimate) * scale:.2f} {unit} (the 95% interval excludes 0)"
        if c.expect == "similar":
            return f"{ahead}: the paper expects no difference"
        return f"{ahead}, as in the paper" if self.agreement == "agrees" else f"{ahead}: the opposite of the paper"


def judge(run: ComparisonRun, claim: Claim) -> ClaimOutcome:
    """Compare the final test scores (the headline metric) of the claim's two arms."""
    scores = {label: summarize([r.test[run.headline] for r in run.records if r.arm == label])
              for label in (claim.better, claim.worse)}
    better, worse = scores[claim.better], scores[claim.worse]
    found = verdict(better, worse)
    difference = compare(better, worse) if found != "one seed" else None
    agreement: Agreement
    if found == "one seed":
        agreement = "inconclusive"
    elif found == "within noise":
        agreement = "consistent" if claim.expect == "similar" else "inconclusive"
    elif claim.expect == "similar":
        agreement = "disagrees"
    else:
        agreement = "agrees" if better.mean > worse.mean else "disagrees"
    return ClaimOutcome(claim, better, worse, difference, found, agreement)
