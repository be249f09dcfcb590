"""Training throughput: the original CGCNN code, PyTorch Geometric, skcgcnn eager and compiled.

Usage (from the repository root, in the benchmark environment of ``benchmarks/README.md``)::

    nice -n 10 /work/bench-venv/bin/python benchmarks/train.py [--quick] [--threads 1,2]

One script, one run, one table. Four ways of training the same-sized network, float32 on the CPU,
batch size 256, SGD (lr 0.01, momentum 0.9), MSE on standardised band gaps, on the same structures
of matbench_mp_gap_sample10k (1,024 by default), featurized before timing:

* original: ``cgcnn2.model.CrystalGraphConvNet`` (the reference model code) fed by
  ``cgcnn2.data.CIFData`` (its LRU cache warmed) through a ``DataLoader`` with ``collate_pool``;
* PyG: ``Linear(92, 64)`` -> 3 x ``torch_geometric.nn.CGConv(64, dim=41, batch_norm=True)`` ->
  ``global_mean_pool`` -> ``Linear(64, 128)`` -> ``Linear(128, 1)`` (softplus in between), fed by
  PyG's own ``DataLoader`` over ``Data`` objects with Gaussian-expanded ``edge_attr`` (the same
  graphs, padded slots left out), as PyG users write it;
* skcgcnn eager: ``skcgcnn.model.CGCNN`` fed by ``skcgcnn.batch.collate``;
* skcgcnn compiled: the same module through ``skcgcnn._compile.compiled_forward`` (the path of
  ``CGCNNRegressor(compile=True)``: ``torch.compile``, inductor, dynamic shapes, compiled once).

At every thread count (``torch.set_num_threads``) each side trains 4 epochs; epochs of the sides
alternate (so CPU contention hits all alike) and the table gives the median of epochs 2-4, as
wall-clock and as CPU time of this process. Then: the compile cost (first call, and a new module's
first call), a parity check (same weights -> same outputs, train and eval mode, against the
original code), a roofline line (matmul FLOPs per atom-epoch counted with
``torch.utils.flop_counter``, achieved GFLOP/s, a large ``torch.mm`` as the machine's peak) and a
torch.profiler table of the fastest path. Output: ``benchmarks/results/speed_train.txt`` (written
as the run goes).
"""

from __future__ import annotations

import argparse
import copy
import os
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from _common import (
    ATOM_INIT,
    Report,
    cgcnn2_dataset,
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
from torch.utils.flop_counter import FlopCounterMode

from skcgcnn import CrystalGraphFeaturizer, _compile
from skcgcnn.batch import collate, collate_graphs
from skcgcnn.elements import load_atom_init
from skcgcnn.model import CGCNN, GaussianExpansion

ARCH = {"atom_fea_len": 64, "n_conv": 3, "h_fea_len": 128, "n_h": 1}
BATCH, LR, MOMENTUM, EPOCHS = 256, 0.01, 0.9, 4
ORIGINAL, PYG, EAGER, COMPILED = "original", "PyG", "skcgcnn eager", "skcgcnn compiled"
DESCRIPTION = {
    ORIGINAL: "original model code (cgcnn2 0.6.0 CrystalGraphConvNet, CIFData + collate_pool)",
    PYG: "PyTorch Geometric CGConv model (PyG DataLoader over Data objects)",
    EAGER: "skcgcnn CGCNN + collate",
    COMPILED: "skcgcnn CGCNN + collate, torch.compile (compiled_forward)",
}


def load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def git_commit() -> str:
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, cwd=os.path.dirname(__file__)).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, cwd=os.path.dirname(__file__))
        return head + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


class Side:
    """One model with its data loader and optimizer; ``epoch()`` runs one training epoch."""

    def __init__(self, name: str, model: nn.Module, loader, step) -> None:
        self.name, self.model, self.loader, self._step = name, model, loader, step
        self.optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
        self.wall: dict[int, list[float]] = {}
        self.cpu: dict[int, list[float]] = {}
        self.first_step: tuple[float, float] | None = None  # (wall, CPU) of the very first step

    def train_step(self, item) -> None:
        output, target = self._step(self.model, item)
        loss = F.mse_loss(output, target)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    def epoch(self) -> tuple[float, float]:
        self.model.train()
        start = cpu_clock()
        for item in self.loader:
            if self.first_step is None:
                t = cpu_clock()
                self.train_step(item)
                self.first_step = (time.perf_counter() - t[0], time.process_time() - t[1])
            else:
                self.train_step(item)
        return time.perf_counter() - start[0], time.process_time() - start[1]


def original_step(model, item):
    (atom_fea, nbr_fea, nbr_fea_idx, crystal_atom_idx), target, _ = item
    output, _ = model(atom_fea, nbr_fea, nbr_fea_idx, crystal_atom_idx)
    return output, target


def eager_step(model, item):
    batch, target = item
    return model(batch), target


def compiled_step(model, item):
    batch, target = item
    return _compile.compiled_forward(model, batch), target


def pyg_step(model, data):
    return model(data), data.y


def pyg_model_and_loader(graphs, y_std, atom_table: np.ndarray, seed: int):
    """The PyG model of the issue and its loader, over the same graphs (real neighbours only)."""
    from torch_geometric.data import Data
    from torch_geometric.loader import DataLoader as PygLoader
    from torch_geometric.nn import CGConv, global_mean_pool

    class PygCGCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Linear(92, 64)
            self.convs = nn.ModuleList(CGConv(64, dim=41, batch_norm=True) for _ in range(3))
            self.fc = nn.Linear(64, 128)
            self.out = nn.Linear(128, 1)

        def forward(self, data):
            x = self.embedding(data.x)
            for conv in self.convs:
                x = F.softplus(conv(x, data.edge_index, data.edge_attr))
            x = global_mean_pool(x, data.batch)
            return self.out(F.softplus(self.fc(F.softplus(x))))

    expand = GaussianExpansion(0.0, 8.0, 0.2)
    data = []
    for graph, target in zip(graphs, y_std):
        real = graph.distances <= graph.radius
        centre = np.repeat(np.arange(graph.n_atoms), graph.max_num_nbr).reshape(real.shape)
        edge_index = torch.as_tensor(
            np.stack([graph.neighbor_indices[real], centre[real]]), dtype=torch.long
        )  # source j -> target i: messages flow to the centre atom
        with torch.no_grad():
            edge_attr = expand(torch.as_tensor(graph.distances[real], dtype=torch.float32))
        x = torch.as_tensor(atom_table[graph.atomic_numbers], dtype=torch.float32)
        data.append(Data(x=x, edge_index=edge_index, edge_attr=edge_attr,
                         y=torch.tensor([[float(target)]], dtype=torch.float32)))
    torch.manual_seed(seed)
    model = PygCGCNN()
    loader = PygLoader(data, batch_size=BATCH, shuffle=True,
                       generator=torch.Generator().manual_seed(seed))
    return model, loader


def make_sides(structures, y_std, graphs, seed: int = 0) -> tuple[dict[str, Side], object]:
    dataset = cgcnn2_dataset(structures, y_std)  # LRU-cached items: featurized once
    for i in range(len(dataset)):
        dataset[i]
    torch.manual_seed(seed)
    original = CrystalGraphConvNet(92, 41, **ARCH)
    atom_table = load_atom_init(ATOM_INIT)
    eager, compiled = CGCNN(atom_table, **ARCH), CGCNN(atom_table, **ARCH)
    eager.load_state_dict(original.state_dict())  # same start
    compiled.load_state_dict(original.state_dict())
    targets = np.asarray(y_std, dtype=np.float32).reshape(-1, 1)
    items = list(zip(graphs, targets))

    def loader(data, collate_fn):
        return DataLoader(data, batch_size=BATCH, shuffle=True, collate_fn=collate_fn,
                          generator=torch.Generator().manual_seed(seed))

    pyg_model, pyg_loader = pyg_model_and_loader(graphs, y_std, np.asarray(atom_table), seed)
    sides = {
        ORIGINAL: Side(ORIGINAL, original, loader(dataset, collate_pool), original_step),
        PYG: Side(PYG, pyg_model, pyg_loader, pyg_step),
        EAGER: Side(EAGER, eager, loader(items, collate), eager_step),
        COMPILED: Side(COMPILED, compiled, loader(items, collate), compiled_step),
    }
    return sides, dataset


def throughput(report: Report, sides: dict[str, Side], threads: int, n_atoms: int) -> None:
    """EPOCHS epochs of every side, round-robin; the first one is the warm-up."""
    torch.set_num_threads(threads)
    start_load = load()
    for epoch in range(EPOCHS):
        for side in sides.values():
            wall, cpu = side.epoch()
            if epoch > 0:
                side.wall.setdefault(threads, []).append(wall)
                side.cpu.setdefault(threads, []).append(cpu)
            else:
                report(f"  ({threads} thread(s): warm-up epoch of {side.name}: {wall:.1f} s wall, "
                       f"{cpu:.1f} s CPU; load average {load()})")
    report(f"  ({threads} thread(s) done; load average {start_load} at start, {load()} at end)")


def rate(side: Side, threads: int, n_atoms: int, kind: str) -> float:
    times = side.wall[threads] if kind == "wall" else side.cpu[threads]
    return n_atoms / median(times)


def throughput_table(report: Report, sides: dict[str, Side], thread_counts, n_atoms: int,
                     n_structures: int) -> dict:
    report(f"\n### Training throughput: {n_structures} structures ({n_atoms} atoms), "
           f"batch {BATCH}, median of epochs 2-{EPOCHS}, atom-epochs per second\n")
    rows, ratios = [], {}
    for t in thread_counts:
        for name, side in sides.items():
            rows.append([t, DESCRIPTION[name], median(side.wall[t]), spread(side.wall[t]),
                         rate(side, t, n_atoms, "wall"), median(side.cpu[t]),
                         rate(side, t, n_atoms, "cpu")])
    report(table(["threads", "model + data loader", "s/epoch (wall)", "spread",
                  "atom-epochs/s (wall)", "CPU s/epoch", "atom-epochs per CPU-s"], rows))
    report("\nRatios (wall-clock / CPU time of this process):\n")
    rows = []
    for t in thread_counts:
        row = [t]
        for num, den in [(EAGER, ORIGINAL), (COMPILED, ORIGINAL), (EAGER, PYG), (COMPILED, PYG),
                         (PYG, ORIGINAL)]:
            w = rate(sides[num], t, n_atoms, "wall") / rate(sides[den], t, n_atoms, "wall")
            c = rate(sides[num], t, n_atoms, "cpu") / rate(sides[den], t, n_atoms, "cpu")
            ratios[(t, num, den)] = (w, c)
            row.append(f"{w:.2f}x / {c:.2f}x")
        rows.append(row)
    report(table(["threads", "eager / original", "compiled / original", "eager / PyG",
                  "compiled / PyG", "PyG / original"], rows))
    return ratios


def compile_cost(report: Report, sides: dict[str, Side], graphs, targets) -> None:
    """First compiled step of the run, and the first step of a new module (a second fit)."""
    first = sides[COMPILED].first_step
    eager_first = sides[EAGER].first_step
    batch, target = collate([(g, t) for g, t in zip(graphs[:BATCH], targets[:BATCH])])
    unique = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    fresh = CGCNN(load_atom_init(ATOM_INIT), **ARCH)  # a new instance: as in the next fit
    side = Side("fresh", fresh, [], compiled_step)
    times = []
    for _ in range(3):
        t = cpu_clock()
        side.train_step((batch, target))
        times.append((time.perf_counter() - t[0], time.process_time() - t[1]))
    recompiled = torch._dynamo.utils.counters["stats"]["unique_graphs"] - unique
    status = _compile.compile_status()
    report("\n### Compile cost (paid once per process)\n")
    report(table(["step", "wall s", "CPU s"], [
        ["inductor availability probe (tiny kernel, once per process)", status["probe_s"], ""],
        ["first compiled training step of the run (tracing + inductor + step)", *first],
        ["first eager training step of the run (for comparison)", *eager_first],
        ["first step of a NEW module instance (a second fit / next fold)", *times[0]],
        ["its next steps (median of 2)", median([x[0] for x in times[1:]]),
         median([x[1] for x in times[1:]])],
    ]))
    report(f"\nGraphs compiled for the new module instance: {recompiled} (0 = the compiled code "
           f"was reused)")


def equivalence(report: Report, dataset, graphs, state: dict) -> float:
    """Same weights -> same outputs and gradients, train and eval mode, on one batch."""
    n = min(BATCH, len(graphs))
    inputs, _, _ = collate_pool([dataset[i] for i in range(n)])
    batch = collate_graphs(list(graphs[:n]))
    rows, worst = [], 0.0
    for mode in ("train", "eval"):
        original = CrystalGraphConvNet(92, 41, **ARCH)
        original.load_state_dict(state)
        original.train(mode == "train")
        out_c2, _ = original(*inputs)
        out_c2.square().sum().backward()
        grads_c2 = dict(original.named_parameters())
        scale = max(float(p.grad.abs().max()) for p in grads_c2.values())
        for name, forward in [(EAGER, lambda m, b: m(b)), (COMPILED, _compile.compiled_forward)]:
            ours = CGCNN(load_atom_init(ATOM_INIT), **ARCH)
            ours.load_state_dict(state)
            ours.train(mode == "train")
            out_sk = forward(ours, batch)
            out_sk.square().sum().backward()
            grad_diff = max(float((p.grad - grads_c2[k].grad).abs().max())
                            for k, p in ours.named_parameters()) / scale
            out_diff = float((out_c2 - out_sk).abs().max())
            worst = max(worst, out_diff)
            stats = ""
            if mode == "train":
                stats = max(float((ours.state_dict()[k].float() - original.state_dict()[k].float())
                                  .abs().max()) for k in state if "running" in k)
            rows.append([name, mode, n, float(out_c2.abs().max()), out_diff, grad_diff, stats])
    report(f"\n### Parity: weights of the original model after training, loaded into each "
           f"(one batch of {n} crystals)\n")
    report(table(["model", "mode", "crystals", "max |output|", "max |output - original|",
                  "max gradient difference / max gradient", "max running-stat difference"], rows))
    report(f"\nParity line: max |output difference| vs the original code {worst:.2g} "
           f"(train and eval mode, eager and compiled; goal <= 1e-5)")
    return worst


def count_flops(side: Side, n_atoms_of) -> float:
    """Matmul FLOPs per atom of one training step (forward + backward) on the side's first
    batch, counted by torch; the per-crystal head is a negligible part."""
    item = next(iter(side.loader))
    with FlopCounterMode(display=False) as counter:
        side.train_step(item)
    return float(counter.get_total_flops()) / n_atoms_of(item)


def matmul_peak(threads: int, n: int = 2048) -> tuple[float, float]:
    """Best GFLOP/s of a large square float32 torch.mm at ``threads`` threads: per wall-clock
    second, and per CPU-second of this process (what a core delivers while it runs us)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best_wall = best_cpu = 0.0
    for _ in range(5):
        t = cpu_clock()
        torch.mm(a, b)
        wall, cpu = time.perf_counter() - t[0], time.process_time() - t[1]
        best_wall = max(best_wall, 2 * n**3 / wall / 1e9)
        best_cpu = max(best_cpu, 2 * n**3 / max(cpu, 1e-9) / 1e9)
    return best_wall, best_cpu


def roofline(report: Report, sides: dict[str, Side], thread_counts, n_atoms: int) -> None:
    torch.set_num_threads(thread_counts[0])
    atoms_in = {ORIGINAL: lambda item: item[0][0].shape[0], PYG: lambda data: data.x.shape[0],
                EAGER: lambda item: item[0].n_atoms}
    flops = {name: count_flops(sides[name], atoms_in[name]) for name in atoms_in}
    flops[COMPILED] = flops[EAGER]  # the same matmuls (inductor leaves them to the BLAS)
    peaks = {t: matmul_peak(t) for t in thread_counts}
    report("\n### Roofline: matmul FLOPs per atom-epoch (forward + backward, torch's flop "
           "counter on one batch of 256 crystals), achieved rate and the machine's measured "
           "matmul peak (torch.mm of two 2048 x 2048 float32 matrices, best of 5, same run), "
           "per wall-clock second and per CPU-second of this process\n")
    rows = []
    for t in thread_counts:
        for name, side in sides.items():
            wall = flops[name] * rate(side, t, n_atoms, "wall") / 1e9
            cpu = flops[name] * rate(side, t, n_atoms, "cpu") / 1e9
            rows.append([t, name, flops[name] / 1e6, wall, peaks[t][0],
                         f"{100 * wall / peaks[t][0]:.0f}%", cpu, peaks[t][1],
                         f"{100 * cpu / peaks[t][1]:.0f}%"])
    report(table(["threads", "model", "MFLOP per atom-epoch", "GFLOP/s (wall)",
                  "mm peak (wall)", "% of peak", "GFLOP per CPU-s", "mm peak per CPU-s",
                  "% of peak (CPU)"], rows))
    t = thread_counts[0]
    best = max(sides, key=lambda k: rate(sides[k], t, n_atoms, "cpu"))
    cpu = flops[best] * rate(sides[best], t, n_atoms, "cpu") / 1e9
    wall = flops[best] * rate(sides[best], t, n_atoms, "wall") / 1e9
    report(f"\nRoofline line ({t} thread(s), fastest path: {best}): "
           f"{flops[best] / 1e6:.2f} MFLOP per atom-epoch; achieved {wall:.1f} GFLOP/s wall "
           f"({100 * wall / peaks[t][0]:.0f}% of the measured torch.mm peak {peaks[t][0]:.1f}), "
           f"{cpu:.1f} GFLOP per CPU-second ({100 * cpu / peaks[t][1]:.0f}% of "
           f"{peaks[t][1]:.1f}); at the CPU-time peak the matmuls alone would allow "
           f"{peaks[t][1] * 1e9 / flops[best]:,.0f} atom-epochs per CPU-second")


CATEGORIES = [  # (category, substrings of operator names), first match wins
    ("compiled (inductor) kernels", ("compiled", "graph_", "cpp_fused", "inductor")),
    ("matrix products", ("aten::mm", "aten::addmm", "aten::bmm", "mkldnn", "aten::linear")),
    ("gather / scatter", ("index", "scatter", "gather", "embedding")),
    ("batch norm", ("batch_norm",)),
    ("optimizer", ("sgd", "foreach", "optimizer")),
    ("element-wise", ("add", "mul", "sigmoid", "softplus", "exp", "sub", "div", "pow", "sum",
                      "fill", "copy", "zero", "cat", "neg", "where", "mse")),
]


def profile(report: Report, side: Side, threads: int) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    torch.set_num_threads(threads)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        side.epoch()
    averages = prof.key_averages()
    report(f"\n### torch.profiler, one epoch of the fastest path ({DESCRIPTION[side.name]}, "
           f"{threads} thread(s)), top 15 by self CPU time\n")
    report("```")
    report(averages.table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=55))
    report("```")
    total = sum(e.self_cpu_time_total for e in averages)
    groups: dict[str, float] = {}
    for e in averages:
        name = e.key.lower()
        group = next((g for g, keys in CATEGORIES if any(k in name for k in keys)), "other")
        groups[group] = groups.get(group, 0.0) + e.self_cpu_time_total
    report("\nWhat the time is made of (self CPU time by operator group):\n")
    report(table(["group", "self CPU s", "share"],
                 [[g, s / 1e6, f"{100 * s / total:.0f}%"]
                  for g, s in sorted(groups.items(), key=lambda x: -x[1])]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256 structures")
    parser.add_argument("--structures", type=int, default=None)
    parser.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    parser.add_argument("--name", default="speed_train", help="results file name")
    args = parser.parse_args()
    thread_counts = [int(t) for t in args.threads.split(",")]
    torch.set_num_threads(thread_counts[0])
    warnings.simplefilter("ignore")

    report = Report(args.name)
    report("# Training throughput (CPU, float32)")
    report(f"\nmachine: {machine()}")
    report(f"code: skcgcnn at git commit {git_commit()}")
    report(f"command: benchmarks/train.py --threads {args.threads}"
           + (f" --structures {args.structures}" if args.structures else "")
           + (" --quick" if args.quick else ""))
    n = args.structures or (256 if args.quick else 1024)
    structures, y = load_sample(n, seed=2)
    y_std = (y - y.mean()) / y.std()
    graphs = CrystalGraphFeaturizer().graphs(structures)
    sides, dataset = make_sides(structures, y_std, graphs)
    n_atoms = sum(len(s) for s in structures)
    report(f"\ninductor: {_compile.unavailable_reason() or 'available'}")
    ratios = {}
    for t in thread_counts:  # each thread count's table as soon as it is measured
        throughput(report, sides, t, n_atoms)
        ratios.update(throughput_table(report, sides, [t], n_atoms, n))
        report.save()
    targets = np.asarray(y_std, dtype=np.float32).reshape(-1, 1)
    compile_cost(report, sides, graphs, targets)
    state = copy.deepcopy(sides[ORIGINAL].model.state_dict())  # trained weights
    worst = equivalence(report, dataset, graphs, state)
    report.save()
    roofline(report, sides, thread_counts, n_atoms)
    report.save()
    t0 = thread_counts[0]
    fastest = max((EAGER, COMPILED), key=lambda k: rate(sides[k], t0, n_atoms, "wall"))
    profile(report, sides[fastest], t0)
    report("\n### Targets (ratios as wall-clock / CPU time)")
    rows = []
    for t in thread_counts:
        rows.append([f"skcgcnn eager vs original, {t} thread(s)",
                     "{:.2f}x / {:.2f}x".format(*ratios[(t, EAGER, ORIGINAL)]), ">= 3x"])
    rows.append([f"skcgcnn compiled vs original, {t0} thread(s)",
                 "{:.2f}x / {:.2f}x".format(*ratios[(t0, COMPILED, ORIGINAL)]), ">= 5x"])
    for t in thread_counts:
        best = max((EAGER, COMPILED), key=lambda k: ratios[(t, k, PYG)][0])
        rows.append([f"skcgcnn ({best.split()[1]}) vs PyG, {t} thread(s)",
                     "{:.2f}x / {:.2f}x".format(*ratios[(t, best, PYG)]), ">= 2x"])
    rows.append(["same outputs for the same weights (max abs difference)", f"{worst:.2g}",
                 "<= 1e-5"])
    report(table(["target", "measured", "goal"], rows))
    report(f"\nload average at the end: {load()}")
    report.save()


if __name__ == "__main__":
    main()
