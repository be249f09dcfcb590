"""The CGCNN module: each convolution against its equation, read-outs, per-atom contributions."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pymatgen.core import Lattice, Structure

from skcgcnn import CGCNNClassifier, CGCNNRegressor
from skcgcnn.batch import collate_graphs
from skcgcnn.elements import cgcnn_encoding
from skcgcnn.graph import build_graph
from skcgcnn.model import CGCNN, CONV_LAYERS, ConvLayer, EdgeFeatures, GCNLayer, SimpleConvLayer


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


@pytest.fixture(scope="module")
def padded_batch():
    """Two crystals with padded slots (a sparse Xe lattice and a Po cube at 4 A radius) and NaCl."""
    xe = Structure(Lattice.cubic(5.0), ["Xe", "Xe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    po = Structure(Lattice.cubic(3.35), ["Po"], [[0, 0, 0]])
    nacl = _crystals()[0]
    graphs = [build_graph(s, radius=4.0, max_num_nbr=12, warn=False) for s in (xe, po, nacl)]
    batch = collate_graphs(graphs)
    assert 0 < int(batch.neighbor_mask.sum()) < batch.neighbor_mask.numel()
    return batch


def _scramble_padding(batch):
    """The batch with every padded slot pointing elsewhere, at a distance inside the radius: a
    layer that lets padded slots in (or re-derives padding from distances) sees new input."""
    gen = torch.Generator().manual_seed(1)
    padded = ~batch.neighbor_mask
    indices = batch.neighbor_indices.clone()
    distances = batch.distances.clone()
    indices[padded] = torch.randint(0, batch.n_atoms, (int(padded.sum()),), generator=gen)
    distances[padded] = 1.0 + 2.0 * torch.rand(int(padded.sum()), generator=gen)
    return replace(batch, neighbor_indices=indices, distances=distances)


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
    torch.testing.assert_close(layer(atom_fea, u, idx, batch.neighbor_mask), expected, rtol=0,
                               atol=1e-12)


def test_gated_layer_batchnorm_in_training_mode(batch):
    """In training mode both BatchNorms use the batch's statistics (bn1 over all N*M edge rows,
    padded slots included) and update their running statistics, as the reference does."""
    torch.manual_seed(0)
    layer = ConvLayer(6, 41).double().train()
    atom_fea, idx = _inputs(batch)
    u = CGCNN(cgcnn_encoding()).gaussians(batch.distances).double()
    n, m = idx.shape
    z = torch.cat([atom_fea.unsqueeze(1).expand(n, m, 6), atom_fea[idx], u], dim=2)
    g = layer.fc_full(z).view(n * m, -1)
    g = (g - g.mean(0)) / torch.sqrt(g.var(0, unbiased=False) + layer.bn1.eps)
    filt, core = (g * layer.bn1.weight + layer.bn1.bias).view(n, m, -1).chunk(2, dim=2)
    summed = (torch.sigmoid(filt) * F.softplus(core)).sum(1)
    normed = (summed - summed.mean(0)) / torch.sqrt(summed.var(0, unbiased=False) + layer.bn2.eps)
    expected = F.softplus(atom_fea + normed * layer.bn2.weight + layer.bn2.bias)
    out = layer(atom_fea, u, idx, batch.neighbor_mask)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-10)
    # running statistics moved by momentum 0.1 towards the (unbiased) batch statistics
    torch.testing.assert_close(layer.bn2.running_mean, 0.1 * summed.mean(0), rtol=0, atol=1e-10)
    torch.testing.assert_close(layer.bn2.running_var, 0.9 + 0.1 * summed.var(0), rtol=0,
                               atol=1e-10)
    assert int(layer.bn1.num_batches_tracked) == 1
    # and the gradient flows through the batch statistics the same way
    out.sum().backward()
    grad = layer.fc_full.weight.grad.clone()
    layer.zero_grad()
    expected.sum().backward()
    torch.testing.assert_close(grad, layer.fc_full.weight.grad, rtol=0, atol=1e-9)


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
    # the mask alone decides: the slot masked above is a real neighbour by its distance
    assert batch.distances[0, -1] <= 5.0


def test_gcn_layer_is_kipf_welling(batch):
    """H' = softplus(D^-1/2 (A + I) D^-1/2 H W + b) with A_ij = sum of 1/r_ij over slots."""
    torch.manual_seed(0)
    layer = GCNLayer(6).double()
    atom_fea, idx = _inputs(batch)
    distances = batch.distances.double()
    mask = batch.neighbor_mask.clone()
    mask[1, -2:] = False  # two padded slots: no edge
    weights = GCNLayer.edge_weights(distances, mask)
    n = batch.n_atoms
    adjacency = torch.eye(n, dtype=torch.float64)
    for i in range(n):
        for slot, j in enumerate(idx[i]):
            if mask[i, slot]:
                adjacency[i, j] += 1.0 / distances[i, slot]
    degree = adjacency.sum(dim=1)
    a_hat = adjacency / degree.sqrt().unsqueeze(1) / degree.sqrt().unsqueeze(0)
    expected = F.softplus(a_hat @ atom_fea @ layer.fc.weight.T + layer.fc.bias)
    torch.testing.assert_close(layer(atom_fea, distances, idx, mask), expected, atol=1e-12, rtol=0)
    assert weights[1, -1] == 0 and weights[0, 0] == pytest.approx(1 / float(distances[0, 0]))


@pytest.mark.parametrize("conv", ["simple", "gcn"])
def test_simple_and_gcn_ignore_padded_slots(padded_batch, conv):
    """Whatever a padded slot holds (index, distance inside the radius), simple and gcn give the
    same output: padding never leaks in as a neighbour, in train and eval mode."""
    torch.manual_seed(0)
    model = CGCNN(cgcnn_encoding(), conv=conv, radius=4.0).double()
    scrambled = _scramble_padding(padded_batch)
    for training in (True, False):
        model.train(training)
        torch.testing.assert_close(model(scrambled), model(padded_batch), rtol=0, atol=1e-12)
    # and the scrambled slots would have changed the result had they been real neighbours
    unmasked = replace(scrambled, neighbor_mask=torch.ones_like(scrambled.neighbor_mask))
    assert (model(unmasked) - model(padded_batch)).abs().max() > 1e-6


def test_gated_keeps_the_reference_padded_sum(padded_batch):
    """The gated layer sums over all M slots, padded ones included, as the original code does
    (that is what its checkpoints were trained with): a padded slot's neighbour matters."""
    torch.manual_seed(0)
    model = CGCNN(cgcnn_encoding(), radius=4.0).double().eval()
    moved = replace(padded_batch, neighbor_indices=_scramble_padding(padded_batch).neighbor_indices)
    assert (model(moved) - model(padded_batch)).abs().max() > 1e-6


# --------------------------------------------------------------------------- settings
def test_module_rejects_graphs_of_another_radius(batch):
    model = CGCNN(cgcnn_encoding(), radius=8.0)  # the graphs of `batch` have radius 5
    with pytest.raises(ValueError, match="built with radius 5 A but the module has radius=8"):
        model(batch)
    for conv in ("simple", "gcn"):
        with pytest.raises(ValueError, match="radius"):
            CGCNN(cgcnn_encoding(), conv=conv, radius=6.0)(batch)
    with pytest.raises(ValueError, match="radius must be positive"):
        CGCNN(cgcnn_encoding(), radius=0.0)


def test_gaussian_step_only_where_used():
    gated = CGCNN(cgcnn_encoding())
    assert gated.gaussians.n_centers == 41 and gated.gaussians.step == 0.2
    assert CGCNN(cgcnn_encoding(), gaussian_step=0.5).gaussians.n_centers == 17
    gcn = CGCNN(cgcnn_encoding(), conv="gcn")
    assert gcn.gaussians is None  # no unused Gaussian module
    assert not any(isinstance(m, type(gated.gaussians)) for m in gcn.modules())
    with pytest.raises(ValueError, match="does not use Gaussian distance features"):
        CGCNN(cgcnn_encoding(), conv="gcn", gaussian_step=0.2)
    for bad in (0.0, -0.2, 9.0, float("nan")):
        with pytest.raises(ValueError, match="gaussian_step must be in"):
            CGCNN(cgcnn_encoding(), gaussian_step=bad)


def test_estimator_rejects_mismatched_module_settings():
    X = _crystals() * 2
    y = np.arange(6.0)
    with pytest.raises(ValueError, match="built with radius 8 A but the module has radius=6"):
        CGCNNRegressor(max_epochs=1, verbose=0, train_split=None, module__radius=6.0).fit(X, y)
    with pytest.raises(ValueError, match="gaussian_step must be None"):
        CGCNNRegressor(max_epochs=1, verbose=0, train_split=None, module__conv="gcn",
                       module__gaussian_step=0.2).fit(X, y)


def test_conv_layers_is_the_dispatch(batch, monkeypatch):
    """A class registered in CONV_LAYERS is a conv= option, built and fed by its declaration."""
    calls = []

    class Mean(torch.nn.Module):
        uses_gaussians = False

        def __init__(self, atom_fea_len):
            super().__init__()
            self.fc = torch.nn.Linear(atom_fea_len, atom_fea_len)

        def forward(self, atom_fea, nbr_fea, nbr_fea_idx, nbr_mask):
            calls.append((nbr_fea.shape, nbr_mask.dtype))
            keep = nbr_mask.unsqueeze(-1).to(atom_fea.dtype)
            return self.fc((atom_fea[nbr_fea_idx] * keep).sum(1))

    monkeypatch.setitem(CONV_LAYERS, "mean", Mean)
    model = CGCNN(cgcnn_encoding(), conv="mean", n_conv=2, radius=5.0)
    assert model.gaussians is None and all(isinstance(c, Mean) for c in model.convs)
    assert model(batch).shape == (3, 1)
    assert calls == [(batch.distances.shape, torch.bool)] * 2


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


def test_composition_statistics_are_those_of_the_element_rows():
    """CGCNN.composition: mean, population std, min and max of the table rows of each crystal's
    atoms; a disordered site counts as the occupancy-weighted mean of its species' rows."""
    table = cgcnn_encoding()
    nacl, batio3, si = _crystals()
    mixed = Structure(Lattice.cubic(4.12), [{"Cs": 0.5, "K": 0.5}, "Cl"],
                      [[0, 0, 0], [0.5, 0.5, 0.5]])
    graphs = [build_graph(s, radius=5.0, warn=False) for s in (nacl, batio3, mixed)]
    model = CGCNN(table, radius=5.0, readout="mean_embedding+composition")
    stats = model.composition(collate_graphs(graphs)).numpy()
    d = table.shape[1]
    assert stats.shape == (3, 4 * d)
    site_rows = [table[[11] * 4 + [17] * 4], table[[56, 22, 8, 8, 8]],
                 np.stack([(table[55] + table[19]) / 2, table[17]])]
    for got, rows in zip(stats, site_rows, strict=True):
        expected = np.concatenate([rows.mean(0), rows.std(0), rows.min(0), rows.max(0)])
        np.testing.assert_allclose(got, expected, atol=1e-6)
    assert not np.allclose(stats[0], stats[1])  # (si: one element, zero spread)
    si_stats = model.composition(collate_graphs([build_graph(si, radius=5.0, warn=False)]))
    np.testing.assert_allclose(si_stats[0, d:2 * d].numpy(), 0.0, atol=1e-6)


def test_composition_readout_feeds_the_head(batch):
    """readout="mean_embedding+composition": the head's first layer takes F + 4 d inputs, the
    prediction is head(mean embedding, composition) and the composition columns get gradient."""
    table = cgcnn_encoding()
    torch.manual_seed(0)
    model = CGCNN(table, n_outputs=2, radius=5.0, readout="mean_embedding+composition").eval()
    assert model.conv_to_fc.in_features == 64 + 4 * table.shape[1]
    out = model(batch)
    torch.testing.assert_close(out, model.head(model.embed(batch), model.composition(batch)))
    per_atom = model.atom_outputs(batch)  # each atom with its crystal's composition
    assert per_atom.shape == (batch.n_atoms, 2)
    out.sum().backward()
    composition_grad = model.conv_to_fc.weight.grad[:, 64:]
    assert composition_grad.abs().sum() > 0
    with pytest.raises(ValueError, match="composition statistics"):
        model.head(model.embed(batch))
    plain = CGCNN(table, radius=5.0)
    with pytest.raises(ValueError, match="composition statistics"):
        plain.head(plain.embed(batch), model.composition(batch))


def test_composition_readout_round_trips_and_refuses_a_plain_pretrained_head(tmp_path):
    from skcgcnn import load_checkpoint, save_checkpoint

    X = _crystals() * 3
    y = np.array([-2.1, -3.5, 0.0] * 3)
    reg = CGCNNRegressor(max_epochs=3, random_state=0, verbose=0, train_split=None,
                         module__readout="mean_embedding+composition").fit(X, y)
    loaded = load_checkpoint(save_checkpoint(reg, tmp_path / "comp.pth.tar"))
    assert loaded.get_params()["module__readout"] == "mean_embedding+composition"
    np.testing.assert_allclose(loaded.predict(X), reg.predict(X), atol=1e-9)
    plain = CGCNNRegressor(max_epochs=1, random_state=0, verbose=0, train_split=None).fit(X, y)
    start = save_checkpoint(plain, tmp_path / "plain.pth.tar")
    with pytest.raises(ValueError, match=r"readout as in the pretrained model.*conv_to_fc"):
        CGCNNRegressor(max_epochs=1, verbose=0, train_split=None, init_from=str(start),
                       module__readout="mean_embedding+composition").fit(X, y)


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


def test_gcn_checkpoint_round_trip_has_no_gaussian_step(tmp_path):
    from skcgcnn.checkpoints import load_checkpoint, read_checkpoint, save_checkpoint

    X = _crystals() * 2
    reg = CGCNNRegressor(max_epochs=2, verbose=0, train_split=None, random_state=0,
                         module__conv="gcn").fit(X, np.arange(6.0))
    path = save_checkpoint(reg, tmp_path / "gcn.pth.tar")
    assert read_checkpoint(path)["skcgcnn"]["gaussian_step"] is None
    loaded = load_checkpoint(path)
    assert loaded.module_.gaussians is None
    np.testing.assert_allclose(loaded.predict(X), reg.predict(X), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="gaussian_step must be None"):
        load_checkpoint(path, gaussian_step=0.2)


# --------------------------------------------------------------------------- determinism
@contextlib.contextmanager
def _threads(n):
    """torch with ``n`` intra-op threads inside the block (conftest pins 1 for the suite)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("conv", ["gated", "simple", "gcn"])
def test_forward_backward_bit_identical_at_two_threads(perovskite_graphs, conv):
    """Outputs and every gradient are bitwise equal from run to run with 2 threads: no op on the
    training path accumulates in a thread-dependent order (advanced-indexing backward did)."""
    batch = collate_graphs(list(perovskite_graphs[0][:256]))  # 1280 atoms: parallel kernels
    results = []
    with _threads(2):
        for _ in range(4):
            torch.manual_seed(0)
            model = CGCNN(cgcnn_encoding(), conv=conv).train()
            out = model(batch)
            out.square().sum().backward()
            results.append([out.detach()] + [p.grad for p in model.parameters()])
    for other in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], other))


def test_seeded_fits_bit_identical_at_two_threads(perovskite_graphs):
    graphs, y = perovskite_graphs[0][:300], perovskite_graphs[1][:300]
    with _threads(2):
        assert torch.get_num_threads() == 2
        predictions = [
            CGCNNRegressor(max_epochs=3, batch_size=128, random_state=0, verbose=0)
            .fit(graphs, y).predict(graphs)
            for _ in range(2)
        ]
    assert torch.get_num_threads() == 1  # restored
    np.testing.assert_array_equal(predictions[0], predictions[1])


# --------------------------------------------------------------------------- compact edges
def test_gated_layer_compact_edge_features_equal_dense(batch):
    """Edge features given once per distinct distance (EdgeFeatures) = the dense (N, M, B)."""
    torch.manual_seed(0)
    layer = ConvLayer(6, 41).double().train()
    atom_fea, idx = _inputs(batch)
    gaussians = CGCNN(cgcnn_encoding()).gaussians
    compact = EdgeFeatures(gaussians(batch.distance_values).double(), batch.distance_index)
    dense = gaussians(batch.distances).double()
    assert compact.rows.shape[0] < dense.shape[0] * dense.shape[1] / 2  # shared distances
    torch.testing.assert_close(compact.dense(), dense, rtol=0, atol=0)
    torch.testing.assert_close(layer(atom_fea, compact, idx, batch.neighbor_mask),
                               layer(atom_fea, dense, idx, batch.neighbor_mask), rtol=0,
                               atol=1e-12)


@pytest.mark.parametrize("conv", ["gated", "simple"])
def test_module_finds_distinct_distances_when_the_batch_has_none(batch, conv):
    torch.manual_seed(0)
    model = CGCNN(cgcnn_encoding(), conv=conv, radius=5.0).eval()
    bare = replace(batch, distance_values=None, distance_index=None)
    with torch.no_grad():
        torch.testing.assert_close(model(bare), model(batch), rtol=0, atol=1e-6)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_same_function_as_the_original_model_code(perovskite_graphs, training):
    """Same weights -> same outputs (within 1e-5) and gradients as cgcnn2's CrystalGraphConvNet
    (the original model code), fed the reference's dense inputs."""
    original_model = pytest.importorskip("cgcnn2.model")
    table = cgcnn_encoding()
    batch = collate_graphs(list(perovskite_graphs[0][:64]))
    torch.manual_seed(0)
    ours = CGCNN(table).train(training)
    original = original_model.CrystalGraphConvNet(table.shape[1], 41, 64, 3, 128, 1)
    original.load_state_dict(ours.state_dict())
    original.train(training)
    atom_fea = torch.as_tensor(table, dtype=torch.float32)[batch.atomic_numbers]
    nbr_fea = ours.gaussians(batch.distances)
    crystals = [torch.nonzero(batch.crystal_index == c).flatten() for c in range(len(batch))]
    expected = original(atom_fea, nbr_fea, batch.neighbor_indices, crystals)
    expected = expected[0] if isinstance(expected, tuple) else expected
    out = ours(batch)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
    out.square().sum().backward()
    expected.square().sum().backward()
    theirs = dict(original.named_parameters())
    for name, p in ours.named_parameters():
        if name.endswith("fc_full.bias") and training:
            continue  # analytically zero behind the batch norm: rounding noise on both sides
        scale = float(theirs[name].grad.abs().max()) + 1e-12
        assert float((p.grad - theirs[name].grad).abs().max()) <= 1e-4 * scale, name
