"""What a TFLite file runs in LiteRT's default XNNPACK delegate: op counts, delegated or not.

`op_profile(path)` loads the file twice in the LiteRT interpreter: once as deployed (XNNPACK takes every
op it can, in as few partitions as it can: `partitions`), and once with delegate node fusion off, where
XNNPACK takes each op it supports as a partition of its own, which says op by op which ones it took
(a delegated op's outputs are its partition's outputs). An op XNNPACK does not take runs in LiteRT's
built-in kernel and cuts the delegated graph: every cut costs a sync and a copy per frame.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import NamedTuple


class OpProfile(NamedTuple):
    ops: Counter  # op name → count, in the file
    not_delegated: Counter  # (op name, input dtypes) → count, ops left to the built-in kernels
    partitions: int  # XNNPACK partitions as deployed (1 when every op is delegated)

    @property
    def total(self) -> int:
        return sum(self.ops.values())

    @property
    def delegated_fraction(self) -> float:
        return 1.0 - sum(self.not_delegated.values()) / max(self.total, 1)

    def describe_not_delegated(self) -> str:
        """'HARD_SWISH(int8) ×58, DIV(int8, int8) ×1', or 'none'."""
        return ", ".join(f"{op}({', '.join(types)}) ×{n}" for (op, types), n in self.not_delegated.most_common()) \
            or "none"


def op_profile(path: str | Path, num_threads: int = 1) -> OpProfile:
    """Op counts of the TFLite file `path` and which of them XNNPACK runs (see the module docstring)."""
    from ai_edge_litert.interpreter import Interpreter

    deployed = _nodes(Interpreter(model_path=str(path), num_threads=num_threads))
    ops = Counter(n["op_name"] for n in deployed if n["op_name"] != "DELEGATE")
    partitions = sum(n["op_name"] == "DELEGATE" for n in deployed)
    single = _nodes(Interpreter(model_path=str(path), num_threads=num_threads,
                                experimental_disable_delegate_node_fusion=True))
    taken = {int(t) for n in single if n["op_name"] == "DELEGATE" for t in n["outputs"]}
    left = Counter((n["op_name"], tuple(t.__name__ for t in n["operand_types"] if t is not None))
                   for n in single if n["op_name"] != "DELEGATE" and not {int(t) for t in n["outputs"]} <= taken)
    return OpProfile(ops, left, partitions)


def _nodes(interpreter) -> list[dict]:
    from evaluation.compat import litert_nodes

    interpreter.allocate_tensors()
    return litert_nodes(interpreter)
