"""The proof of a capacity: the steps at the capacity against the steps at the load above.

At the capacity R every confirm step held every SLO. At the load above, R x (1 + margin),
an SLO must break, and by a significant margin: most steps there break it, and its values
there are worse than at R by the test ``loadgen compare`` uses, the one-sided Mann-Whitney
U test with the run (here: the step) as the unit (``stats.significance``), at the same
alpha. Requests inside one step share its machine state, so they are not independent
samples; steps are. Three steps a side is the least that can be significant (complete
separation gives p = 1/20 = 0.05), which is why ``--confirm`` defaults to 3.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from loadgen.capacity.model import SloAt, Step, slo_at
from loadgen.config.thresholds import Threshold
from loadgen.report.compare import ALPHA, MIN_RUNS_FOR_TEST
from loadgen.stats.significance import mann_whitney_u


@dataclass(frozen=True)
class Proof:
    significant: bool  # an SLO broke at the load above, significantly worse than at R
    p_value: float | None  # the smallest p over the SLOs that broke (None: none broke)
    at_capacity: list[SloAt]
    at_breaking: list[SloAt]

    @property
    def broke(self) -> list[SloAt]:
        """The SLOs whose median broke at the load above."""
        return [slo for slo in self.at_breaking if not slo.passed]


def _finite(values: Sequence[float | None], worse_is_higher: bool) -> list[float]:
    """Values for the test; a value that was not measured (no response at all) is the worst
    there is, placed beyond every measured one."""
    known = [value for value in values if value is not None]
    spread = max((abs(value) for value in known), default=1.0) * 10 + 1
    worst = spread if worse_is_higher else -spread
    return [worst if value is None else value for value in values]


def worse_p_value(
    slo: Threshold, lower: Sequence[float | None], upper: Sequence[float | None]
) -> float:
    """One-sided p-value of "the SLO's metric is worse in ``upper`` than in ``lower``"."""
    worse_is_higher = slo.op in ("<", "<=")
    low = _finite(lower, worse_is_higher)
    high = _finite(upper, worse_is_higher)
    return mann_whitney_u(high, low, "greater" if worse_is_higher else "less").p_value


def judge_proof(lower: Sequence[Step], upper: Sequence[Step], slos: Sequence[Threshold]) -> Proof:
    """``lower``: the confirm steps at R (all passed); ``upper``: the steps at the load above."""
    at_capacity = [slo_at(list(lower), index) for index in range(len(slos))]
    at_breaking = []
    p_values = []
    for index, slo in enumerate(slos):
        above = slo_at(list(upper), index)
        if not above.passed:
            p = worse_p_value(
                slo,
                [step.verdicts[index].value for step in lower],
                [step.verdicts[index].value for step in upper],
            )
            above = slo_at(list(upper), index, p_value=p)
            p_values.append(p)
        at_breaking.append(above)
    p_value = min(p_values) if p_values else None
    return Proof(
        significant=p_value is not None and p_value <= ALPHA,
        p_value=p_value,
        at_capacity=at_capacity,
        at_breaking=at_breaking,
    )


def why_not_significant(proof: Proof, steps_a_side: int) -> str:
    """Why a proof failed, in words."""
    if not proof.broke:
        return "no SLO broke there (most steps held every SLO)"
    if steps_a_side < MIN_RUNS_FOR_TEST:
        return (
            f"{steps_a_side} step(s) a side can never be significant (the test needs "
            f"{MIN_RUNS_FOR_TEST}: --confirm {MIN_RUNS_FOR_TEST} or more)"
        )
    assert proof.p_value is not None  # an SLO broke, so it was tested
    return f"it broke, but within the steps' noise (p = {proof.p_value:.3g} > {ALPHA:g})"
