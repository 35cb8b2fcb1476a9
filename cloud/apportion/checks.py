"""The run's checks that flag what a reviewer must see: tariffs, bill, node balances.

China's resale rule (no markup over catalog) and the peak:valley ratio of each tariff
version, the bill against the catalog price of the main meter's use, and each main and
branch node against its children (residual, loss rate, negative residual, loss over the
cap, negative net use of a participant) — docs/domain.md §4. Pure numpy.
"""

from __future__ import annotations

import numpy as np

from cloud.apportion.engine_inputs import EngineInputs, Policy
from cloud.apportion.engine_result import Flag
from cloud.apportion.money import Pot, TariffKind, cny
from cloud.apportion.tree import NodeKind, TreeShape, node_residual, of_kind, rows


def tariff_flags(inputs: EngineInputs) -> list[Flag]:
    """China resale rule (no markup) and the peak:valley ratio check (docs/domain.md §4)."""
    flags = []
    policy = inputs.policy
    for v in inputs.tariffs:
        if v.markup > policy.markup_cap:
            flags.append(
                Flag(
                    "markup_over_cap",
                    f"tariff {v.id}",
                    f"markup {v.markup} CNY/kWh over catalog exceeds the cap "
                    f"{policy.markup_cap}; resold grid power is billed at the "
                    "catalog price",
                    True,
                )
            )
        if v.kind in (TariffKind.TOU, TariffKind.TWO_PART) and {"T2", "T4"} <= set(v.prices):
            valley = v.prices["T4"]
            if valley > 0 and float(v.prices["T2"] / valley) < policy.tou_min_ratio:
                flags.append(
                    Flag(
                        "tou_ratio_low",
                        f"tariff {v.id}",
                        f"peak:valley {float(v.prices['T2'] / valley):.2f}:1 is "
                        f"below {policy.tou_min_ratio:g}:1; check the prices",
                        False,
                    )
                )
    return flags


def pot_flags(pots: list[Pot], policy: Policy) -> list[Flag]:
    flags = []
    for pot in pots:
        if pot.catalog_cents is None:
            continue
        gap = pot.cents - pot.catalog_cents
        if abs(gap) > policy.catalog_tolerance * max(pot.catalog_cents, 1):
            flags.append(
                Flag(
                    "bill_differs_from_catalog",
                    f"pot {pot.register}/{pot.version}",
                    f"bill {cny(pot.cents)} CNY, catalog price of the main "
                    f"meter's use {cny(pot.catalog_cents)} CNY",
                    False,
                )
            )
    return flags


#: Residual [kWh] (nodes, registers), loss rate (nodes,) and negative-usage flags.
Balances = tuple[np.ndarray, np.ndarray, list[Flag]]


def node_balances(inputs: EngineInputs, shape: TreeShape, node_kwh: np.ndarray) -> Balances:
    """Each main and branch node against its children over the period: residual [kWh] per
    register, loss rate (residual ÷ the node's energy), and a holding flag for each
    participant whose net consumption is negative (docs/domain.md §4)."""
    tree = inputs.tree
    energy = node_kwh[:, 0, :] if node_kwh.shape[1] == 1 else node_kwh.sum(axis=1)
    inner = np.flatnonzero(of_kind(shape.kind, NodeKind.MAIN, NodeKind.BRANCH))
    residual = np.zeros(energy.shape)
    residual[inner] = node_residual(energy[inner], shape.sum_children_of(energy, inner))
    loss_rate = np.zeros(len(tree.ids))
    total = energy[inner].sum(axis=1)
    loss_rate[inner] = np.divide(
        residual[inner].sum(axis=1), total, out=np.zeros_like(total), where=total > 0
    )
    part_kwh = (
        rows(energy, shape.participant).sum(axis=1) if _any_below_zero(energy) else energy[:0]
    )
    flags = [
        Flag(
            "negative_usage",
            f"node {tree.ids[shape.participant[p]]}",
            f"net consumption {part_kwh[p]:.2f} kWh is negative (export)",
            True,
        )
        for p in np.flatnonzero(part_kwh < 0)
    ]
    return residual, loss_rate, flags


def _any_below_zero(values: np.ndarray) -> bool:
    """``(values < 0).any()`` in one reduction, without a mask as large as ``values``."""
    if not values.size:
        return False
    lowest = values.min()
    return bool(lowest < 0) if not np.isnan(lowest) else bool((values < 0).any())


def node_flags(
    inputs: EngineInputs,
    negative: np.ndarray,
    over_cap: np.ndarray,
    loss_rate: np.ndarray,
    residual: np.ndarray,
) -> list[Flag]:
    flags = []
    for n in np.flatnonzero(negative):
        flags.append(
            Flag(
                "negative_residual",
                f"node {inputs.tree.ids[n]}",
                f"children measure more than the node ({residual[n].sum():.2f} kWh, "
                f"λ = {loss_rate[n]:.2%}); never passed on silently",
                True,
            )
        )
    for n in np.flatnonzero(over_cap):
        rule = inputs.tree.rules[n]
        cap = rule.loss_cap if rule is not None and rule.loss_cap is not None else 0.0
        flags.append(
            Flag(
                "loss_over_cap",
                f"node {inputs.tree.ids[n]}",
                f"loss rate λ = {loss_rate[n]:.2%} is above the cap {cap:.2%}; "
                "the excess is the landlord's",
                False,
            )
        )
    return flags
