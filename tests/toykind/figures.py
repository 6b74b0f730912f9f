"""The toy kind's own figure: the loss at each position of its eval sequences, one line per checkpoint."""

import matplotlib.pyplot as plt

from pipeline.figure_step import figure_step
from pipeline.io import run_cli


def toy_loss(positions):
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for step, line in positions.groupby("step"):
        ax.plot(line.position, line.loss, label=f"step {step}")
    ax.set_xlabel("position")
    ax.set_ylabel("loss (nats)")
    ax.legend(fontsize=7)
    return fig


def main():
    figure_step("toy_figures", "Draw the toy kind's figure.", lambda t, cfg: {"toy_loss": lambda: toy_loss(t["loss_by_position"])})


if __name__ == "__main__":
    run_cli(main)
