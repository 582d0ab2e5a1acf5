"""Stratified sampling by size and the extrapolated saving: determinism, uniform reservoirs,
allocation by bytes, exactness on a census, and the interval's coverage."""

from __future__ import annotations

import math
import random
import time

import pytest

from compactor.sources._strata import (
    WORST_RATIO_VARIANCE,
    Outcome,
    StratifiedSampler,
    Stratum,
    extrapolate,
    stratum_of,
)

#: (id, size, bytes out, failed)
Obj = tuple[int, int, int, bool]


def population(n: int, seed: int = 1) -> list[Obj]:
    """Log-normal sizes around 50 MB; the saving depends on the size class, with noise;
    5% fail and 10% would be left as they are."""
    rng = random.Random(seed)
    objs = []
    for i in range(n):
        size = int(math.exp(rng.gauss(math.log(50e6), 1.5))) + 1
        ratio = min(1.0, max(0.02, rng.gauss(0.3 + 0.05 * (math.log(size) % 3), 0.12)))
        u = rng.random()
        failed = u < 0.05
        if u < 0.15:
            ratio = 1.0
        objs.append((i, size, size if failed else int(size * ratio), failed))
    return objs


def fed(n: int, objs: list[Obj], seed: int | str = 0) -> StratifiedSampler[Obj]:
    sampler: StratifiedSampler[Obj] = StratifiedSampler(n, seed=seed)
    for obj in objs:
        sampler.add(obj, obj[1])
    return sampler


def outcomes(sampler: StratifiedSampler[Obj]) -> list[Outcome]:
    return [Outcome(d.stratum, d.item[1], d.item[2], d.item[3]) for d in sampler.sample()]


def test_strata_are_powers_of_four() -> None:
    assert [stratum_of(s) for s in (0, 1, 3, 4, 15, 16, 63, 64)] == [0, 0, 0, 1, 1, 2, 2, 3]
    assert [stratum_of(s, width=1) for s in (1, 2, 3, 4, 7, 8)] == [0, 1, 1, 2, 2, 3]
    sampler = fed(5, [(0, 5, 5, False), (1, 20, 20, False), (2, 1 << 30, 1, False)])
    assert [(s.key, s.low, s.high, s.objects, s.bytes) for s in sampler.strata()] == [
        (1, 4, 16, 1, 5),
        (2, 16, 64, 1, 20),
        (15, 1 << 30, 1 << 32, 1, 1 << 30),
    ]


def test_deterministic_for_a_seed_and_order() -> None:
    objs = population(5000)
    first = [d.item for d in fed(100, objs, seed=7).sample()]
    assert len(first) == 100
    assert [d.item for d in fed(100, objs, seed=7).sample()] == first
    again = fed(100, objs, seed=7)
    assert again.sample() == again.sample()
    assert [d.item for d in fed(100, objs, seed=8).sample()] != first
    assert [d.item for d in fed(100, objs[::-1], seed=7).sample()] != first


@pytest.mark.parametrize(
    ("stream", "n", "trials", "big"), [(20, 5, 4000, 0), (300, 10, 3000, 0), (20, 6, 4000, 2)]
)
def test_each_object_is_equally_likely(stream: int, n: int, trials: int, big: int) -> None:
    """Algorithm L's reservoir, then the draw from it, give every object of a stratum the
    same chance, the first ones and the last ones alike (binomial bounds, 5 sigma). With
    ``big`` objects in a larger stratum, fewer are drawn than the reservoir holds."""
    hits = [0] * stream
    drawn = n - big
    for seed in range(trials):
        sampler: StratifiedSampler[int] = StratifiedSampler(n, seed=seed)
        for i in range(stream):
            sampler.add(i, 1000)  # stratum 4
            if i < big:
                sampler.add(-1 - i, 10**6)  # stratum 9, with far more bytes
        draws = [d for d in sampler.sample() if d.stratum == 4]
        assert len({d.item for d in draws}) == drawn
        for d in draws:
            hits[d.item] += 1
    p = drawn / stream
    mean, sigma = trials * p, math.sqrt(trials * p * (1 - p))
    assert all(abs(h - mean) < 5 * sigma for h in hits), (min(hits), max(hits), mean)
    head, tail = sum(hits[:n]) / n, sum(hits[-n:]) / n
    assert abs(head - tail) < 5 * sigma


def _three_strata(c_objects: int, c_size: int) -> list[Obj]:
    a = [(i, 1000, 500, False) for i in range(50_000)]  # stratum 4: 5e7 bytes
    b = [(10**6 + i, 50_000, 25_000, False) for i in range(600)]  # stratum 7: 3e7
    c = [(2 * 10**6 + i, c_size, c_size // 2, False) for i in range(c_objects)]
    return a + b + c


def test_allocation_follows_bytes() -> None:
    sampler = fed(100, _three_strata(100, 200_000))  # stratum 8: 2e7 bytes
    assert sampler.allocation() == {4: 50, 7: 30, 8: 20}
    draws = sampler.sample()
    by_stratum = {k: [d for d in draws if d.stratum == k] for k in (4, 7, 8)}
    assert {k: len(v) for k, v in by_stratum.items()} == {4: 50, 7: 30, 8: 20}
    bounds = {s.key: (s.low, s.high) for s in sampler.strata()}
    assert all(bounds[d.stratum][0] <= d.size < bounds[d.stratum][1] for d in draws)


def test_allocation_is_capped_by_what_a_stratum_holds() -> None:
    sampler = fed(100, _three_strata(10, 2_000_000))  # stratum 10: 10 objects, 2e7 bytes
    alloc = sampler.allocation()
    assert alloc[10] == 10
    assert sum(alloc.values()) == 100
    assert abs(alloc[4] - 90 * 5 / 8) <= 1
    # A stratum with almost no bytes still gets one; more strata than n: one each.
    tiny = fed(100, [*_three_strata(100, 200_000), (-1, 5, 5, False)])
    assert tiny.allocation()[1] == 1
    assert sum(tiny.allocation().values()) == 100
    assert fed(2, _three_strata(100, 200_000)).allocation() == {4: 1, 7: 1, 8: 1}


def test_memory_is_bounded_by_strata_times_n() -> None:
    sampler = fed(10, population(50_000))
    assert all(len(s.items) <= 10 for s in sampler._strata.values())
    assert sampler.objects == 50_000
    assert len(sampler.sample()) == sum(sampler.allocation().values()) <= 10 + len(sampler.strata())


def test_census_is_exact() -> None:
    """Sampling every object gives the truth, with an interval of zero width."""
    objs = population(700, seed=4)
    sampler = fed(700, objs)
    draws = sampler.sample()
    assert sorted(d.item for d in draws) == sorted(objs)
    est = extrapolate(sampler.strata(), outcomes(sampler))
    truth = sum(o[2] for o in objs)
    assert est.output_bytes == est.output_low == est.output_high == truth
    assert est.archive_bytes == sum(o[1] for o in objs)
    assert est.saving == est.saving_low == est.saving_high == 1 - truth / est.archive_bytes
    assert est.failed == sum(o[3] for o in objs) > 0


def test_interval_covers_the_truth_about_95_percent() -> None:
    objs = population(5000, seed=2)
    truth = sum(o[2] for o in objs)
    covered, widths = 0, []
    for seed in range(100):
        sampler = fed(150, objs, seed=seed)
        est = extrapolate(sampler.strata(), outcomes(sampler))
        covered += est.output_low <= truth <= est.output_high
        widths.append((est.output_high - est.output_low) / truth)
    assert covered >= 85, covered
    assert sum(widths) / len(widths) < 0.3  # an informative interval, not [0, everything]


def test_one_stratum() -> None:
    objs = [(i, 4**10 + 997 * i, (4**10 + 997 * i) // 3, False) for i in range(300)]
    sampler = fed(40, objs)
    assert [s.key for s in sampler.strata()] == [10]
    draws = sampler.sample()
    assert len({d.item for d in draws}) == 40
    est = extrapolate(sampler.strata(), outcomes(sampler))
    assert est.output_low < sum(o[2] for o in objs) < est.output_high
    assert abs(est.saving - 2 / 3) < 0.001
    assert "40 sampled in 1 size stratum" in est.describe()


def test_failures_save_nothing_and_are_counted() -> None:
    strata = [Stratum(5, objects=10, bytes=10_000, low=1024, high=4096)]
    results = [Outcome(5, 1000, 100), Outcome(5, 1000, 100, failed=True), Outcome(5, 1000, 1000)]
    est = extrapolate(strata, results)
    assert est.failed == 1
    assert est.strata[0].failed == 1
    assert est.strata[0].ratio == pytest.approx(2100 / 3000)
    assert est.output_bytes == pytest.approx(10_000 * 2100 / 3000)
    assert "3 sampled in 1 size stratum, 1 failed (counted as saving nothing)" in est.describe()
    assert est.describe().startswith("saving 30.0% (95% interval ")


def test_one_sampled_object_borrows_a_variance() -> None:
    strata = [
        Stratum(3, 100, 100 * 100, 64, 256),
        Stratum(4, 100, 100 * 300, 256, 1024),
        Stratum(6, 10, 10 * 5000, 4096, 16384),
    ]
    # Strata 3 and 4: two samples each (ratios 0.4 and 0.6; 0.5 and 0.5), stratum 6: one.
    results = [
        Outcome(3, 100, 40), Outcome(3, 100, 60),
        Outcome(4, 300, 150), Outcome(4, 300, 150),
        Outcome(6, 5000, 2500),
    ]  # fmt: skip
    est = extrapolate(strata, results)
    lone = est.strata[2]
    assert lone.borrowed
    assert not est.strata[0].borrowed
    assert est.strata[1].stderr == 0
    # The larger relative residual variance of the two: stratum 3's, s_e^2 / mean(x)^2.
    relative = ((40 - 50) ** 2 + (60 - 50) ** 2) / 1 / 100**2
    expected = 10 * math.sqrt((1 - 1 / 10) * relative * 5000**2)
    assert lone.stderr == pytest.approx(expected)
    # Alone, it takes the worst case for a ratio in [0, 1].
    alone = extrapolate(strata[2:], results[4:]).strata[0]
    assert alone.stderr == pytest.approx(10 * math.sqrt(0.9 * WORST_RATIO_VARIANCE * 5000**2))


def test_unsampled_stratum_counts_as_no_saving() -> None:
    strata = [Stratum(3, 100, 10_000, 64, 256), Stratum(6, 10, 50_000, 4096, 16384)]
    est = extrapolate(strata, [Outcome(3, 100, 50), Outcome(3, 100, 50)])
    assert est.output_bytes == pytest.approx(5_000 + 50_000)
    assert "1 unsampled (counted as saving nothing)" in est.describe()
    with pytest.raises(ValueError, match="stratum 9"):
        extrapolate(strata, [Outcome(9, 1, 1)])


def test_add_is_cheap() -> None:
    objs = [(i, 1 + (i * 7919) % 10**9) for i in range(300_000)]
    sampler: StratifiedSampler[int] = StratifiedSampler(200, seed=1)
    start = time.perf_counter()
    for item, size in objs:
        sampler.add(item, size)
    per_add = (time.perf_counter() - start) / len(objs)
    assert per_add < 5e-6, per_add  # about 0.3 µs on the 2-core machine
