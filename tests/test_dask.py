"""Scale-out through joblib's backend system on a dask.distributed cluster.

``with joblib.parallel_config(backend="dask")`` must run ``CrystalGraphFeaturizer.featurize_many``
and ``GridSearchCV(CGCNNRegressor(), ...)`` on the cluster's workers, unchanged, and give the same
graphs and the same cross-validation scores as the local run. Real data: 300 structures of the
shipped Matbench perovskites demo subset. Skipped when ``dask[distributed]`` is not installed
(``pip install skcgcnn[dask]``). Every cluster and client is closed before its test returns.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import joblib
import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV, KFold

from skcgcnn import CGCNNRegressor, CrystalGraphFeaturizer

distributed = pytest.importorskip("distributed")

N_STRUCTURES = 300


@pytest.fixture(scope="module")
def structures_and_targets(perovskites):
    subset = perovskites.iloc[:N_STRUCTURES]
    return subset["structure"].to_numpy(), subset["e_form"].to_numpy()


@contextmanager
def dask_cluster(processes: bool):
    """A 2-worker in-process LocalCluster and its Client, both closed on exit."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "port in use", "Creating scratch directories"...
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=processes,
            dashboard_address=None,
            # one torch thread per worker process (dask's default too, made explicit)
            **({"env": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}} if processes else {}),
        )
    try:
        with distributed.Client(cluster) as client:
            yield client
    finally:
        cluster.close()
    assert client.status == "closed"
    assert cluster.status.name == "closed"
    with pytest.raises(ValueError):  # no default client left behind
        distributed.default_client()


@contextmanager
def one_torch_thread():
    """Bitwise-reproducible CPU training: as many intra-op threads as a dask worker (one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def test_featurize_many_runs_on_the_workers_and_gives_the_same_graphs(structures_and_targets):
    structures, _ = structures_and_targets
    featurizer = CrystalGraphFeaturizer()  # n_jobs=None: the active joblib backend decides
    local = featurizer.featurize_many(structures)

    with dask_cluster(processes=False) as client:
        workers = set(client.scheduler_info()["workers"])
        with joblib.parallel_config(backend="dask"):
            assert joblib.effective_n_jobs(featurizer.n_jobs) == 2
            with distributed.get_task_stream(client) as stream:
                remote = featurizer.featurize_many(structures)

    tasks = [t for t in stream.data if "_featurize_chunk" in str(t["key"])]
    assert len(tasks) >= 2  # split into chunks...
    assert {t["worker"] for t in tasks} == workers  # ...that ran on both workers
    assert len(remote) == len(local) == N_STRUCTURES
    assert all(r[0] == loc[0] for r, loc in zip(remote, local))  # bitwise-equal graphs


@pytest.mark.slow
def test_grid_search_on_dask_matches_the_local_run(structures_and_targets):
    """The same search, local and on a 2-process cluster: identical scores, split by split.

    Worker *processes*: threads of one process share torch's global random generator, so two
    seeded fits running at once in threads disturb each other's shuffling and initialisation.
    """
    structures, y = structures_and_targets

    def search():
        reg = CGCNNRegressor(max_epochs=3, batch_size=32, train_split=None, random_state=0,
                             verbose=0)
        return GridSearchCV(reg, {"lr": [1e-3, 3e-3]}, cv=KFold(3, shuffle=True, random_state=0),
                            scoring="neg_mean_absolute_error", refit=False)

    with one_torch_thread():
        local = search().fit(structures, y)  # structures are featurized inside each fit

    with dask_cluster(processes=True) as client:
        workers = set(client.scheduler_info()["workers"])
        with joblib.parallel_config(backend="dask"):
            with distributed.get_task_stream(client) as stream:
                remote = search().fit(structures, y)

    fits = [t for t in stream.data if "fit_and_score" in str(t["key"])]
    assert {t["worker"] for t in fits} == workers
    assert remote.best_params_ == local.best_params_
    for key in [f"split{i}_test_score" for i in range(3)] + ["mean_test_score"]:
        np.testing.assert_array_equal(remote.cv_results_[key], local.cv_results_[key])
    assert np.all(local.cv_results_["mean_test_score"] > -1.0)  # it learned: MAE < 1 eV/cell
