"""The CGCNN module: each convolution against its equation, read-outs, per-atom contributions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pymatgen.core import Lattice, Structure

from skcgcnn import CGCNNClassifier, CGCNNRegressor
from skcgcnn.batch import collate_graphs
from skcgcnn.elements import cgcnn_encoding
from skcgcnn.graph import build_graph
from skcgcnn.model import CGCNN, ConvLayer, GCNLayer, SimpleConvLayer


def _crystals() -> list[Structure]:
    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"],
                                     [[0, 0, 0], [0.5, 0.5, 0.5]])
    batio3 = Structure(Lattice.cubic(4.0), ["Ba", "Ti", "O", "O", "O"],
                       [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    si = Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.43), ["Si"], [[0, 0, 0]])
    return [nacl, batio3, si]


@pytest.fixture(scope="module")
def batch():
    graphs = [build_graph(s, radius=5.0, max_num_nbr=12, warn=False) for s in _crystals()]
    return collate_graphs(graphs)


def _inputs(batch, width=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    atom_fea = torch.randn(batch.n_atoms, width, generator=gen, dtype=torch.float64)
    return atom_fea, batch.neighbor_indices


# --------------------------------------------------------------------------- layers = equations
def test_gated_layer_equals_reference_concatenation(batch):
    """Eq. 5 as the reference codes it: fc_full on the concatenation v_i ⊕ v_j ⊕ u_ij."""
    torch.manual_seed(0)
    layer = ConvLayer(6, 41).double().eval()
    for bn in (layer.bn1, layer.bn2):  # non-trivial running statistics
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    atom_fea, idx = _inputs(batch)
    u = CGCNN(cgcnn_encoding()).gaussians(batch.distances).double()
    n, m = idx.shape
    z = torch.cat([atom_fea.unsqueeze(1).expand(n, m, 6), atom_fea[idx], u], dim=2)
    g = layer.bn1(layer.fc_full(z).view(n * m, -1)).view(n, m, -1)
    filt, core = g.chunk(2, dim=2)
    expected = F.softplus(atom_fea + layer.bn2((torch.sigmoid(filt) * F.softplus(core)).sum(1)))
    torch.testing.assert_close(layer(atom_fea, u, idx), expected, rtol=0, atol=1e-12)


def test_simple_layer_is_eq4(batch):
    """v_i <- softplus((sum_j v_j ⊕ u_ij) W_c + v_i W_s + b), neighbours within the radius."""
    torch.manual_seed(0)
    layer = SimpleConvLayer(6, 41).double()
    atom_fea, idx = _inputs(batch)
    u = CGCNN(cgcnn_encoding()).gaussians(batch.distances).double()
    mask = batch.distances <= 5.0
    mask[0, -1] = False  # pretend the last slot of atom 0 is padding
    w_c, w_s, b = layer.fc_nbr.weight, layer.fc_self.weight, layer.fc_self.bias
    rows = []
    for i in range(batch.n_atoms):
        total = torch.zeros(6 + 41, dtype=torch.float64)
        for slot, j in enumerate(idx[i]):
            if mask[i, slot]:
                total += torch.cat([atom_fea[j], u[i, slot]])
        rows.append(F.softplus(total @ w_c.T + atom_fea[i] @ w_s.T + b))
    torch.testing.assert_close(layer(atom_fea, u, idx, mask), torch.stack(rows), atol=1e-12,
                               rtol=0)


def test_gcn_layer_is_kipf_welling(batch):
    """H' = softplus(D^-1/2 (A + I) D^-1/2 H W + b) with A_ij = sum of 1/r_ij over slots."""
    torch.manual_seed(0)
    layer = GCNLayer(6).double()
    atom_fea, idx = _inputs(batch)
    distances = batch.distances.double().clone()
    distances[1, -2:] = 6.0  # two padded slots (beyond the 5 A radius): no edge
    weights = GCNLayer.edge_weights(distances, 5.0)
    n = batch.n_atoms
    adjacency = torch.eye(n, dtype=torch.float64)
    for i in range(n):
        for slot, j in enumerate(idx[i]):
            if distances[i, slot] <= 5.0:
                adjacency[i, j] += 1.0 / distances[i, slot]
    degree = adjacency.sum(dim=1)
    a_hat = adjacency / degree.sqrt().unsqueeze(1) / degree.sqrt().unsqueeze(0)
    expected = F.softplus(a_hat @ atom_fea @ layer.fc.weight.T + layer.fc.bias)
    torch.testing.assert_close(layer(atom_fea, weights, idx), expected, atol=1e-12, rtol=0)
    assert weights[1, -1] == 0 and weights[0, 0] == pytest.approx(1 / float(distances[0, 0]))


def test_module_rejects_unknown_conv_and_readout():
    with pytest.raises(ValueError, match="conv must be one of"):
        CGCNN(cgcnn_encoding(), conv="attention")
    with pytest.raises(ValueError, match="readout must be one of"):
        CGCNN(cgcnn_encoding(), readout="sum")


@pytest.mark.parametrize("conv", ["gated", "simple", "gcn"])
def test_readouts(batch, conv):
    torch.manual_seed(0)
    model = CGCNN(cgcnn_encoding(), n_outputs=2, conv=conv, radius=5.0, readout="mean_output")
    model.eval()
    with torch.no_grad():
        per_atom = model.atom_outputs(batch)
        out = model(batch)
        embed = model.embed(batch)
        atoms = model.atom_embeddings(batch)
    for c in range(batch.n_crystals):
        rows = batch.crystal_index == c
        torch.testing.assert_close(out[c], per_atom[rows].mean(0), atol=1e-6, rtol=0)
        torch.testing.assert_close(embed[c], atoms[rows].mean(0), atol=1e-6, rtol=0)
    model.readout = "mean_embedding"
    with torch.no_grad():
        torch.testing.assert_close(model(batch), model.head(embed))


# --------------------------------------------------------------------------- estimators
def test_atom_contributions_average_to_prediction():
    X = _crystals() * 3
    y = np.array([-2.1, -3.5, 0.0] * 3)
    reg = CGCNNRegressor(max_epochs=3, random_state=0, verbose=0, train_split=None,
                         module__readout="mean_output").fit(X, y)
    contributions = reg.atom_contributions(X)
    assert [c.shape for c in contributions[:3]] == [(8,), (5,), (8,)]
    np.testing.assert_allclose([c.mean() for c in contributions], reg.predict(X), atol=1e-5)
    # the site energies of symmetry-equivalent atoms are equal (Si: all 8; NaCl: 4 + 4)
    assert np.ptp(contributions[2]) < 1e-4
    assert len(np.unique(contributions[0].round(4))) == 2
    # the embedding decomposition is exact for any read-out
    embeddings = reg.atom_contributions(X[:3], output="embedding")
    np.testing.assert_allclose([e.mean(0) for e in embeddings], reg.transform(X[:3]), atol=1e-5)
    with pytest.raises(ValueError, match="output must be"):
        reg.atom_contributions(X, output="energy")

    clf = CGCNNClassifier(max_epochs=2, random_state=0, verbose=0, train_split=None,
                          module__readout="mean_output").fit(X, ["a", "b", "c"] * 3)
    logits = clf.atom_contributions(X[:3])
    proba = np.stack([torch.softmax(torch.as_tensor(c.mean(0)), 0).numpy() for c in logits])
    np.testing.assert_allclose(proba, clf.predict_proba(X[:3]), atol=1e-5)


def test_each_convolution_trains_and_they_differ(perovskite_graphs):
    graphs, y = perovskite_graphs[0][:120], perovskite_graphs[1][:120]  # real perovskites
    predictions, losses = {}, {}
    for conv in ("gated", "simple", "gcn"):
        reg = CGCNNRegressor(module__conv=conv, module__n_conv=2, max_epochs=20, lr=3e-3,
                             batch_size=16, train_split=None, random_state=0, verbose=0)
        reg.fit(graphs, y)
        losses[conv] = reg.history[:, "train_loss"]
        predictions[conv] = reg.predict(graphs)
    for conv, loss in losses.items():  # MSE on standardised y: 1.0 = predicting the mean
        assert loss[-1] < 0.7 and loss[-1] < 0.7 * loss[0], (conv, loss[0], loss[-1])
    assert min(np.abs(predictions["gated"] - predictions["simple"]).max(),
               np.abs(predictions["gated"] - predictions["gcn"]).max(),
               np.abs(predictions["simple"] - predictions["gcn"]).max()) > 1e-3
