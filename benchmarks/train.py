"""Training throughput: skcgcnn's CGCNN module vs the original model code (as shipped in cgcnn2).

Usage (from the repository root, in the benchmark environment of ``benchmarks/README.md``)::

    nice -n 5 /work/bench-venv/bin/python benchmarks/train.py [--quick] [--profile]

Both sides train the reference architecture (atom_fea_len 64, n_conv 3, h_fea_len 128, n_h 1,
92 atom features, 41 Gaussians), float32 on the CPU with 2 torch threads, batch size 256, SGD
(lr 0.01, momentum 0.9), MSE on standardised band gaps, on the same structures of
matbench_mp_gap_sample10k. Featurization is done before timing:

* original: ``cgcnn2.model.CrystalGraphConvNet`` fed by ``cgcnn2.data.CIFData`` (its LRU cache
  warmed, so each item is its stored tensors) through a ``DataLoader`` with ``collate_pool``;
* skcgcnn: ``skcgcnn.model.CGCNN`` fed by ``skcgcnn.batch.collate`` over precomputed
  ``CrystalGraph`` s (Gaussian expansion and element features computed inside the module).

Epochs of the two alternate (so CPU contention hits both alike); the table gives the median epoch.
Then the same weights are loaded into both models and their outputs (train and eval mode) and
gradients compared on one batch. ``--profile`` adds the top operators of one epoch of each
(torch.profiler). Output: ``benchmarks/results/speed_train.txt``.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch
from _common import (
    ATOM_INIT,
    Report,
    Timing,
    cgcnn2_dataset,
    clock,
    load_sample,
    machine,
    median,
    spread,
    table,
)
from cgcnn2.data import collate_pool
from cgcnn2.model import CrystalGraphConvNet
from torch import nn
from torch.utils.data import DataLoader

from skcgcnn import CrystalGraphFeaturizer
from skcgcnn.batch import collate, collate_graphs
from skcgcnn.elements import load_atom_init
from skcgcnn.estimators import GraphDataset
from skcgcnn.model import CGCNN

ARCH = {"atom_fea_len": 64, "n_conv": 3, "h_fea_len": 128, "n_h": 1}
BATCH, LR, MOMENTUM = 256, 0.01, 0.9


class Side:
    """One model with its data loader and optimizer; ``epoch()`` runs one training epoch."""

    def __init__(self, name: str, model: nn.Module, loader: DataLoader, step) -> None:
        self.name, self.model, self.loader, self._step = name, model, loader, step
        self.optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
        self.loss = nn.MSELoss()

    def epoch(self) -> None:
        self.model.train()
        for item in self.loader:
            output, target = self._step(self.model, item)
            loss = self.loss(output, target)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()


def original_step(model, item):
    (atom_fea, nbr_fea, nbr_fea_idx, crystal_atom_idx), target, _ = item
    output, _ = model(atom_fea, nbr_fea, nbr_fea_idx, crystal_atom_idx)
    return output, target


def skcgcnn_step(model, item):
    batch, target = item
    return model(batch), target


def make_sides(structures, y_std, graphs, seed: int = 0) -> tuple[Side, Side, object]:
    dataset = cgcnn2_dataset(structures, y_std)  # LRU-cached items: featurized once
    for i in range(len(dataset)):
        dataset[i]
    torch.manual_seed(seed)
    original = CrystalGraphConvNet(92, 41, **ARCH)
    ours = CGCNN(load_atom_init(ATOM_INIT), **ARCH)
    ours.load_state_dict(original.state_dict())  # same start
    generator = torch.Generator().manual_seed(seed)
    loader_c2 = DataLoader(dataset, batch_size=BATCH, shuffle=True, collate_fn=collate_pool,
                           generator=generator)
    targets = np.asarray(y_std, dtype=np.float32).reshape(-1, 1)
    loader_sk = DataLoader(GraphDataset(graphs, targets), batch_size=BATCH, shuffle=True,
                           collate_fn=collate, generator=torch.Generator().manual_seed(seed))
    return (Side("original model code (cgcnn2 0.6.0, its CIFData + collate_pool)", original,
                 loader_c2, original_step),
            Side("skcgcnn CGCNN + collate", ours, loader_sk, skcgcnn_step),
            dataset)


def throughput(report: Report, sides: list[Side], n_structures: int, n_atoms: int,
               epochs: int) -> tuple[float, float]:
    for side in sides:  # warm-up epoch (allocator, first-call costs)
        side.epoch()
    times = {side.name: Timing() for side in sides}
    for _ in range(epochs):
        for side in sides:
            times[side.name].add(*clock(side.epoch))
    base = times[sides[0].name]
    rows = []
    for side in sides:
        t = times[side.name]
        wall, cpu = median(t.wall), median(t.cpu)
        rows.append([side.name, wall, spread(t.wall), n_atoms / wall, 1e3 * wall / n_structures,
                     median(base.wall) / wall, cpu, median(base.cpu) / cpu])
    report(f"\n### Training throughput: {n_structures} structures ({n_atoms} atoms, "
           f"{n_atoms / n_structures:.1f} per structure), batch {BATCH}, "
           f"{torch.get_num_threads()} torch threads, median of {epochs} epochs\n")
    report(table(["model + data loader", "s/epoch (wall)", "spread", "atom-epochs/s (wall)",
                  "ms per structure-epoch", "speed-up (wall)", "CPU s/epoch (all threads)",
                  "speed-up (CPU)"], rows))
    ours = times[sides[1].name]
    return median(base.wall) / median(ours.wall), median(base.cpu) / median(ours.cpu)


def equivalence(report: Report, dataset, graphs, side_c2: Side) -> float:
    """Same weights -> same outputs and gradients, train and eval mode, on one batch."""
    state = {k: v.clone() for k, v in side_c2.model.state_dict().items()}  # trained weights
    n = min(BATCH, len(graphs))
    inputs, _, _ = collate_pool([dataset[i] for i in range(n)])
    batch = collate_graphs(list(graphs[:n]))
    rows, worst = [], 0.0
    for mode in ("train", "eval"):
        original = CrystalGraphConvNet(92, 41, **ARCH)
        ours = CGCNN(load_atom_init(ATOM_INIT), **ARCH)
        original.load_state_dict(state)
        ours.load_state_dict(state)
        original.train(mode == "train")
        ours.train(mode == "train")
        out_c2, _ = original(*inputs)
        out_sk = ours(batch)
        out_c2.square().sum().backward()
        out_sk.square().sum().backward()
        grads_c2 = dict(original.named_parameters())
        scale = max(float(p.grad.abs().max()) for p in grads_c2.values())
        grad_diff = max(float((p.grad - grads_c2[name].grad).abs().max())
                        for name, p in ours.named_parameters()) / scale
        out_diff = float((out_c2 - out_sk).abs().max())
        worst = max(worst, out_diff)
        stats = ""
        if mode == "train":
            stats = max(float((ours.state_dict()[k].float() - original.state_dict()[k].float())
                              .abs().max()) for k in state if "running" in k)
        rows.append([mode, n, float(out_c2.abs().max()), out_diff, grad_diff, stats])
    report(f"\n### Same model: weights of the original model after training, loaded into both "
           f"(one batch of {n} crystals)\n")
    report(table(["mode", "crystals", "max |output|", "max |output difference|",
                  "max gradient difference / max gradient",
                  "max running-stat difference"], rows))
    return worst


def profile(report: Report, sides: list[Side]) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    for side in sides:
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            side.epoch()
        report(f"\n### torch.profiler, one epoch of {side.name} (top 12 by self CPU time)\n")
        report("```")
        report(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12,
                                         max_name_column_width=40))
        report("```")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer structures and epochs")
    parser.add_argument("--profile", action="store_true", help="add torch.profiler tables")
    parser.add_argument("--structures", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--epochs", type=int, default=None, help="timed epochs (default 5)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")

    report = Report("speed_train" if args.threads == 2 else f"speed_train_{args.threads}threads")
    report("# Training throughput (CPU, float32)")
    report(f"\nmachine: {machine()}")
    n = args.structures or (256 if args.quick else 1024)
    structures, y = load_sample(n, seed=2)
    y_std = (y - y.mean()) / y.std()
    graphs = CrystalGraphFeaturizer().graphs(structures)
    side_c2, side_sk, dataset = make_sides(structures, y_std, graphs)
    n_atoms = sum(len(s) for s in structures)
    epochs = args.epochs or (2 if args.quick else 5)
    ratio, ratio_cpu = throughput(report, [side_c2, side_sk], n, n_atoms, epochs)
    worst = equivalence(report, dataset, graphs, side_c2)
    if args.profile:
        profile(report, [side_c2, side_sk])
    report("\n### Targets")
    report(table(["target", "measured", "goal"], [
        ["training throughput, skcgcnn vs original model code (wall)", f"{ratio:.2f}x", ">= 3x"],
        ["training throughput, skcgcnn vs original model code (CPU)", f"{ratio_cpu:.2f}x",
         ">= 3x"],
        ["same outputs for the same weights (max abs difference)", f"{worst:.2g}", "<= 1e-5"],
    ]))
    report.save()


if __name__ == "__main__":
    main()
