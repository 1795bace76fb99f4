"""The load average (kernel/sched/loadavg.c), in Linux's fixed point.

Every LOAD_FREQ ticks the number of active tasks (running or runnable) is folded
into three exponentially decaying averages, over 1, 5 and 15 minutes. The
arithmetic is Linux's to the bit (11-bit fixed point, EXP_1/EXP_5/EXP_15), so a
student can hold /proc/loadavg next to the kernel's: when the clock jumps over
several periods (every CPU idle, NO_HZ), ``calc_load_n`` folds them at once.
"""

from __future__ import annotations

from collections.abc import Callable

from ukernel import abi

FSHIFT = abi.FSHIFT  # bits of precision (the kernel's /proc/loadavg reads the same fixed point)
FIXED_1 = 1 << FSHIFT  # 1.0 as fixed point
LOAD_FREQ = 5 * abi.HZ + 1  # 5 s between samples (the +1 keeps them off other periodic work)
EXP = (1884, 2014, 2037)  # 1/exp(5s/1min), 1/exp(5s/5min), 1/exp(5s/15min) as fixed point


def calc_load(load: int, exp: int, active: int) -> int:
    """One period: load = load * exp + active * (1 - exp), rounded up while the load rises."""
    newload = load * exp + active * (FIXED_1 - exp)
    if active >= load:
        newload += FIXED_1 - 1
    return newload // FIXED_1


def fixed_power_int(x: int, frac_bits: int, n: int) -> int:
    """x**n in fixed point with ``frac_bits`` bits, rounding each product as Linux does."""
    result = 1 << frac_bits
    while n:
        if n & 1:
            result = (result * x + (1 << (frac_bits - 1))) >> frac_bits
        n >>= 1
        if n:
            x = (x * x + (1 << (frac_bits - 1))) >> frac_bits
    return result


def calc_load_n(load: int, exp: int, active: int, n: int) -> int:
    """n periods with the same number of active tasks (calc_global_nohz)."""
    return calc_load(load, fixed_power_int(exp, FSHIFT, n), active)


class LoadAvg:
    """avenrun[3], sampled at every multiple of LOAD_FREQ the clock passes."""

    def __init__(self) -> None:
        self.avenrun = [0, 0, 0]
        self.periods = 0  # samples taken: the clock's LOAD_FREQ multiples so far

    def advance(self, clock: int, nr_active: Callable[[], int]) -> None:
        """The clock moves to ``clock``; ``nr_active()`` tasks were active meanwhile
        (counted only when a sample is due: the clock moves at every schedule)."""
        due = clock // LOAD_FREQ - self.periods
        if due <= 0:
            return
        active = nr_active() * FIXED_1
        self.avenrun = [calc_load_n(load, exp, active, due) for load, exp in zip(self.avenrun, EXP, strict=True)]
        self.periods += due
