"""A toy fourth kind, defined outside pipeline/ to prove the seam: sequences that add modulo p (x_{t+1} = x_t +
x_{t-1} mod p, Fibonacci from two random states), learned by a 1-layer attention-only transformer. Registered
through PIPELINE_KINDS=toykind (tests/ on the Python path); its config groups are its conf/, its caption its
report/. It touches no file under pipeline/ or rules/ (tests/test_toy_kind.py runs it through the real rules)."""

from typing import Annotated, Literal

from pydantic import Field

from pipeline.registry import FigureModule, Kind
from pipeline.sections import SEQUENCE_SCORES, Architecture, Name, Section


class ToyModel(Architecture):
    kind: Literal["toy"]
    source: Literal["trained"]
    name: Name


class ToyData(Section):
    source: Literal["toy"]
    modulus: Annotated[int, Field(ge=2, le=1000)]
    seq_len: Annotated[int, Field(ge=4, le=1024)]


def check(root):
    if 2 * root.analysis.head_scores.seq_len + 1 > root.data.seq_len:
        raise ValueError(f"analysis.head_scores.seq_len: {root.analysis.head_scores.seq_len} repeated twice needs "
                         f"data.seq_len >= {2 * root.analysis.head_scores.seq_len + 1}; lower it")


KIND = Kind(
    name="toy", data_module="toykind.data", score_module="toykind.scores", subject_module="toykind.subject",
    data_schemas=(ToyData,), model_schemas={"trained": ToyModel},
    context_length=lambda root: root.data.seq_len,
    loss_positions=lambda root: (root.data.seq_len - 1, f"a {root.data.seq_len}-state sequence", "raise data.seq_len"),
    check=check, data_files=("eval.npy", "manifest.json"), head_scores=SEQUENCE_SCORES,
    score_config=("analysis.head_scores", "analysis.eval", "data", "seed"),
    data_config=("data", "seed", "analysis.eval.n_sequences"), data_rule="prepare_toy", rule_suffix="_toy",
    figure_modules={"toy_figures": FigureModule("toykind.figures", "7. Toy kind", ("toy_loss",),
                                                ("loss_by_position", "integrity", "head_scores"), ("figures",))},
)
