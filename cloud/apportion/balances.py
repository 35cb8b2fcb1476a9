"""The meter tree's balances of a computed run, as finance's review page shows them.

:func:`tree_balances` gives, per node (depth-first, children by kind then id), its energy
[kWh] over all slices and registers, Σ of its children's, the residual and the loss rate λ
(main and branch nodes) and the flags naming it. A run stores them when it is created
(:func:`balances_json`), so the review page reads them instead of recomputing the run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from cloud.apportion.engine_result import EngineResult
from cloud.apportion.tree import NodeKind


@dataclass(frozen=True)
class NodeBalance:
    """A meter-tree node in a run: its kWh, Σ of its children's kWh, the residual, the loss
    rate λ (main and branch nodes), and the flags naming it."""

    id: str
    kind: str
    parent: str | None
    depth: int
    kwh: float
    children_kwh: float | None
    residual_kwh: float | None
    loss_rate: float | None
    flags: list[dict[str, Any]]
    #: a root's energy per register [kWh] (the utility's meter: the reconciliation's
    #: side of the bill); None below the roots and in balances stored before it was kept
    kwh_by_register: dict[str, float] | None = None


def tree_balances(result: EngineResult) -> list[NodeBalance]:
    """Per node: kWh (all slices and registers; a root's also per register), Σ children,
    residual and λ; depth-first."""
    tree, shape = result.inputs.tree, result.shape
    energy = result.node_kwh.sum(axis=(1, 2))
    per_register = result.node_kwh.sum(axis=1)
    registers = result.inputs.registers
    children = shape.sum_children(energy)
    residual = result.residual_kwh.sum(axis=1)
    kinds = [NodeKind(k) for k in tree.kind.tolist()]
    parents = tree.parent.tolist()
    kids: dict[int, list[int]] = {}
    for i, p in enumerate(parents):
        kids.setdefault(p, []).append(i)
    flags: dict[str, list[dict[str, Any]]] = {}
    for f in result.flags:
        if f.subject.startswith("node "):
            flags.setdefault(f.subject.removeprefix("node "), []).append(
                {"code": f.code, "holds": f.holds, "message": f.message}
            )
    out: list[NodeBalance] = []
    # depth-first without recursion: a flat tree of many thousand units is one level deep,
    # a deep one must not reach Python's recursion limit
    stack = [(int(root), 0) for root in reversed(np.flatnonzero(tree.parent < 0).tolist())]
    while stack:
        i, depth = stack.pop()
        inner = kinds[i] in (NodeKind.MAIN, NodeKind.BRANCH)
        parent = parents[i]
        out.append(
            NodeBalance(
                id=tree.ids[i],
                kind=kinds[i].name.lower(),
                parent=tree.ids[parent] if parent >= 0 else None,
                depth=depth,
                kwh=float(energy[i]),
                children_kwh=float(children[i]) if inner else None,
                residual_kwh=float(residual[i]) if inner else None,
                loss_rate=float(result.loss_rate[i]) if inner else None,
                flags=flags.get(tree.ids[i], []),
                kwh_by_register={r: float(per_register[i, k]) for k, r in enumerate(registers)}
                if parent < 0
                else None,
            )
        )
        ordered = sorted(kids.get(i, []), key=lambda j: (int(kinds[j]), tree.ids[j]))
        stack.extend((k, depth + 1) for k in reversed(ordered))
    return out


def balances_json(balances: list[NodeBalance]) -> str:
    """The balances as JSON text (floats round-trip exactly)."""
    # vars(): the fields in order, as asdict() gives them without its deep copy per node
    return json.dumps([vars(b) for b in balances], separators=(",", ":"), ensure_ascii=False)


def balances_from_json(text: str) -> list[NodeBalance]:
    """The balances :func:`balances_json` stored."""
    return [NodeBalance(**item) for item in json.loads(text)]
