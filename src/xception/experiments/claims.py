"""Our result for each of the paper's claims: agrees, disagrees, or inconclusive (intervals overlap)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from xception.experiments.definition import Claim
from xception.experiments.statistics import Summary, Verdict, summarize, verdict

if TYPE_CHECKING:
    from xception.experiments.comparison import ComparisonRun

Agreement = Literal["agrees", "disagrees", "inconclusive"]


@dataclass(frozen=True)
class ClaimOutcome:
    claim: Claim
    better: Summary  # final test scores of the arm the paper finds better (or, "similar", the first)
    worse: Summary
    verdict: Verdict
    agreement: Agreement

    def sentence(self) -> str:
        c = self.claim
        if self.verdict == "one seed":
            return f"one seed only: no verdict on {c.better} vs {c.worse}"
        if c.expect == "similar":
            if self.verdict == "within noise":
                return f"{c.better} and {c.worse} are within noise of each other, as the paper expects"
            leader = c.better if self.better.mean > self.worse.mean else c.worse
            return f"{leader} is really ahead (intervals separate): the paper expects no difference"
        if self.verdict == "within noise":
            return f"{c.better} vs {c.worse}: the intervals overlap, so no real difference at this scale"
        if self.agreement == "agrees":
            return f"{c.better} is really ahead of {c.worse} (intervals separate), as in the paper"
        return f"{c.worse} is really ahead of {c.better} (intervals separate): the opposite of the paper"


def judge(run: ComparisonRun, claim: Claim) -> ClaimOutcome:
    """Compare the final test scores (the headline metric) of the claim's two arms."""
    scores = {label: summarize([r.test[run.headline] for r in run.records if r.arm == label])
              for label in (claim.better, claim.worse)}
    better, worse = scores[claim.better], scores[claim.worse]
    found = verdict(better, worse)
    if found != "real":
        agreement: Agreement = "agrees" if (claim.expect == "similar" and found == "within noise") else "inconclusive"
    elif claim.expect == "similar":
        agreement = "disagrees"
    else:
        agreement = "agrees" if better.mean > worse.mean else "disagrees"
    return ClaimOutcome(claim, better, worse, found, agreement)
