"""The M/D/1 queue (Poisson arrivals, one server, a fixed service time D, FIFO): where its
latency percentiles cross a bound. ``loadgen serve http --capacity`` is this queue.

Erlang's formula for the waiting time W of M/D/1 at arrival rate lam (rho = lam D < 1):

    P(W <= t) = (1 - rho) * sum_{k=0}^{floor(t/D)} (lam (k D - t))^k / k! * exp(-lam (k D - t))

The terms alternate in sign and grow large, so it is summed in 60-digit decimals. A
request's latency is W + D (its wait, then its own service).
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext


def waiting_cdf(t_s: float, rate: float, service_s: float) -> float:
    """P(W <= t) at arrival rate ``rate`` (per second)."""
    with localcontext() as context:
        context.prec = 60
        lam, d, t = Decimal(rate), Decimal(service_s), Decimal(t_s)
        total = Decimal(0)
        k = 0
        while k * d <= t:
            x = lam * (k * d - t)
            power = Decimal(1) if k == 0 else x**k
            total += power / math.factorial(k) * (-x).exp()
            k += 1
        return float((1 - lam * d) * total)


def latency_quantile(quantile: float, rate: float, service_s: float) -> float:
    """The latency (wait + service) that a fraction ``quantile`` of requests stay within."""
    low, high = 0.0, service_s
    while waiting_cdf(high, rate, service_s) < quantile:
        high *= 2
    for _ in range(50):
        middle = (low + high) / 2
        if waiting_cdf(middle, rate, service_s) >= quantile:
            high = middle
        else:
            low = middle
    return high + service_s


def capacity_for(quantile: float, bound_s: float, service_s: float) -> float:
    """The highest arrival rate whose ``quantile`` latency is at most ``bound_s``."""
    low, high = 0.0, 1 / service_s
    for _ in range(40):
        middle = (low + high) / 2
        # latency <= bound  <=>  P(W <= bound - D) >= quantile
        if waiting_cdf(bound_s - service_s, middle, service_s) >= quantile:
            low = middle
        else:
            high = middle
    return low
