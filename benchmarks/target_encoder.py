"""The EMA target's encoder of a finished pretraining run, as an encoder file (issue 12 ablation).

`bell-edge pretrain` ships the online encoder, as BYOL does. The target is the online network's
exponential moving average, and some self-distillation methods fine-tune from it instead (DINO's
teacher). This writes the target's encoder in the same format and with the same treatment as
`RUN/encoder.pt` (BatchNorm re-estimated on the run's own clean windows where its recipe says
so), so `bell-edge experiment label-efficiency --init target=FILE --init online=RUN` compares
the two on the same label subsets.

    python benchmarks/target_encoder.py RUN --out FILE
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from bell_edge.config import PretrainConfig, from_dict
from bell_edge.ssl.learner import BootstrapLearner
from bell_edge.train import checkpoint
from bell_edge.train.corpus import load_corpus
from bell_edge.train.pretrain import CHECKPOINT, CORPUS, save_encoder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path, help="A finished pretraining run directory.")
    parser.add_argument("--out", type=Path, required=True, help="The encoder file to write.")
    args = parser.parse_args()
    if args.out.exists():
        raise SystemExit(f"{args.out}: exists; remove it first")
    state = checkpoint.load(args.run / CHECKPOINT)
    if state["step"] != state["total_steps"]:
        raise SystemExit(
            f"{args.run}: unfinished ({state['step']} of {state['total_steps']} steps)"
        )
    cfg = from_dict(PretrainConfig, state["config"])
    learner = BootstrapLearner(dataclasses.replace(cfg.model, layout=cfg.train_layout), cfg.method,
                               cfg.gamma, cfg.predictor_lead_embedding)  # fmt: skip
    learner.load_state_dict(state["model"])
    folders = [source["path"] for source in json.loads((args.run / CORPUS).read_text())]
    corpus = load_corpus(folders, cfg.preprocess, cfg.split, cfg.data_fraction, cfg.seed, False)
    save_encoder(learner.target.encoder, cfg, state["step"], corpus, torch.device("cpu"), args.out)
    print(f"{args.out}: the target encoder of {args.run} at step {state['step']}")


if __name__ == "__main__":
    main()
