"""``torch``: a small neural ranker that also produces embeddings (CPU, deterministic per seed).

- node tasks: an MLP over standardised features (signed log, median fill plus missing
  indicators), with binary cross-entropy, cross-entropy or a regression loss on the standardised
  target; the last hidden layer is the entity embedding.
- pair tasks: score = MLP(pair features) + <entity embedding, class embedding> + class bias, the
  embeddings indexed by ``extra["entity_code"]`` / ``extra["class_code"]`` (table sizes from
  ``extra["n_entity_codes"]`` / ``extra["n_class_codes"]``), trained pointwise with binary
  cross-entropy on every positive plus negatives re-sampled per epoch.

The epoch kept is the best on ``valid`` (MAP@k for pair tasks, the loss otherwise). torch is
imported only when the ranker is used, so ``import pql`` stays fast.
"""

from __future__ import annotations

import contextlib
import copy
import json
import pickle
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from pql.ast import TaskType
from pql.errors import PQLRunError
from pql.rankers._common import (ALL_TASKS, VALUE_TASKS, check_fitted, check_labels, grouped_map_at_k,
                                 heuristic_pair_score, importance_sample, permutation_importance,
                                 resolve_params, sample_pair_rows, thread_count)
from pql.rankers.base import Progress, Ranker
from pql.tasks import FeatureSet, TaskInfo

__all__ = ["TorchRanker"]

DEFAULTS: dict[str, Any] = {
    "hidden": 64,
    "layers": 2,
    "dropout": 0.0,
    "embedding_dim": 32,
    "epochs": 8,
    "min_steps": 400,              # at least this many optimiser steps (more epochs on small data)
    "patience": 2,                 # epochs without a validation gain before stopping
    "batch_size": 2048,
    "learning_rate": 3e-3,
    "weight_decay": 1e-5,
    "loss": "l1",                  # regression / forecasting: "l1" (MAE is their tune metric), "mse", "huber"
    "negatives_per_group": 40,     # pair tasks, per epoch
    "positives_per_group": 40,     # pair tasks, per epoch (0: all); sampled rows are weighted
    "hard_share": 0.5,
    "weighted": True,              # weight sampled negatives by their inverse inclusion probability
    "n_threads": 0,                # 0: half the CPUs
    "importance_rows": 4000,       # rows kept for permutation importance
}
_LOSSES = ("l1", "mse", "huber")


class _Standardizer:
    """Signed log, median fill, z-score, clip; missing indicators for columns with NaN in training.

    Statistics come from at most ``FIT_ROWS`` evenly spaced rows; transforms run in float32, in
    place, a block of rows at a time (the flagship's candidate sets have millions of rows)."""

    FIT_ROWS = 200_000
    BLOCK = 262_144

    def fit(self, X: np.ndarray) -> "_Standardizer":
        if len(X) > self.FIT_ROWS:
            X = X[np.linspace(0, len(X) - 1, self.FIT_ROWS).astype(np.int64)]
        Z = _slog(X).astype(np.float64)
        nan = np.isnan(Z)
        self.missing = np.flatnonzero(nan.any(axis=0))
        with np.errstate(all="ignore"), _quiet():
            med = np.nanmedian(Z, axis=0) if len(Z) else np.zeros(Z.shape[1])
        self.median = np.nan_to_num(med, nan=0.0)
        filled = np.where(nan, self.median, Z)
        self.mean = filled.mean(axis=0) if len(Z) else np.zeros(Z.shape[1])
        std = filled.std(axis=0) if len(Z) else np.ones(Z.shape[1])
        self.std = np.where(std > 1e-9, std, 1.0)
        return self

    @property
    def width(self) -> int:
        return len(self.mean) + len(self.missing)

    def transform(self, X: np.ndarray) -> np.ndarray:
        d = len(self.mean)
        out = np.empty((len(X), self.width), dtype=np.float32)
        median, mean = self.median.astype(np.float32), self.mean.astype(np.float32)
        inv_std = (1.0 / self.std).astype(np.float32)
        for lo in range(0, len(X), self.BLOCK):
            Z = _slog(X[lo:lo + self.BLOCK])
            nan = np.isnan(Z)
            np.copyto(Z, median, where=nan)  # median broadcasts over the block's rows
            Z -= mean
            Z *= inv_std
            np.clip(Z, -8.0, 8.0, out=Z)
            out[lo:lo + len(Z), :d] = Z
            out[lo:lo + len(Z), d:] = nan[:, self.missing]
        return out


def _slog(X: np.ndarray) -> np.ndarray:
    """sign(x) * log(1 + |x|) as a new float32 array."""
    Z = np.abs(np.asarray(X, dtype=np.float32))
    np.log1p(Z, out=Z)
    return np.copysign(Z, X, out=Z)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


@contextlib.contextmanager
def _torch_state(seed: int, n_threads: int) -> Iterator[Any]:
    """Seeded, deterministic, thread-limited torch; the global settings are restored afterwards."""
    import torch

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(thread_count(n_threads))
    _set_deterministic(torch, True)
    torch.manual_seed(seed)
    try:
        yield torch
    finally:
        torch.set_num_threads(threads)
        _set_deterministic(torch, deterministic)


def _set_deterministic(torch: Any, mode: bool) -> None:
    # The public torch.use_deterministic_algorithms also imports the inductor compiler's config
    # (seconds on a small machine) to set a flag only compiled code reads; pql never compiles, so
    # set the eager flag directly when this torch has it.
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None:
        torch.use_deterministic_algorithms(mode)
    else:
        setter(mode)


class _AdamW:
    """Adam with decoupled weight decay (Loshchilov & Hutter), as torch.optim.AdamW computes it;
    sparse gradients (embedding tables) update only the rows a batch touched ("lazy" Adam, as
    torch.optim.SparseAdam), so a step costs the batch, not the table.

    Written out because torch.optim imports the dynamo compiler on first use, which costs seconds
    on a small machine for nothing pql needs."""

    def __init__(self, torch: Any, params: list[Any], *, lr: float, weight_decay: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.torch, self.params = torch, params
        self.lr, self.wd, self.betas, self.eps = lr, weight_decay, betas, eps
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        with self.torch.no_grad():
            for p, m, v in zip(self.params, self.m, self.v):
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    self._sparse_step(p, m, v, c1, c2)
                    continue
                p.mul_(1 - self.lr * self.wd)
                m.mul_(b1).add_(p.grad, alpha=1 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                denom = (v / c2).sqrt_().add_(self.eps)
                p.addcdiv_(m, denom, value=-self.lr / c1)


    def _sparse_step(self, p: Any, m: Any, v: Any, c1: float, c2: float) -> None:
        b1, b2 = self.betas
        grad = p.grad.coalesce()
        rows, g = grad.indices()[0], grad.values()
        mr = m[rows].mul_(b1).add_(g, alpha=1 - b1)
        vr = v[rows].mul_(b2).addcmul_(g, g, value=1 - b2)
        m[rows], v[rows] = mr, vr
        pr = p[rows].mul_(1 - self.lr * self.wd)
        p[rows] = pr.addcdiv_(mr, (vr / c2).sqrt_().add_(self.eps), value=-self.lr / c1)


def _build(arch: dict[str, Any]) -> Any:
    """The network for ``arch`` (classes defined here so torch is imported lazily)."""
    import torch
    from torch import nn

    class MLP(nn.Module):
        def __init__(self, d_in: int, d_out: int) -> None:
            super().__init__()
            blocks: list[nn.Module] = []
            d = d_in
            for _ in range(arch["layers"]):
                blocks += [nn.Linear(d, arch["hidden"]), nn.ReLU(), nn.Dropout(arch["dropout"])]
                d = arch["hidden"]
            self.body = nn.Sequential(*blocks)
            self.head = nn.Linear(d, d_out)
            self.skip = nn.Linear(d_in, d_out, bias=False)  # wide part: linear effects learn fast

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            h = self.body(x)
            return self.head(h) + self.skip(x), h

    class PairNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            dim = arch["embedding_dim"]
            self.mlp = MLP(arch["d_in"], 1)
            # one extra row each for codes never seen (out of range)
            self.entity = nn.Embedding(arch["n_entities"] + 1, dim, sparse=True)
            self.cls = nn.Embedding(arch["n_classes"] + 1, dim, sparse=True)
            self.bias = nn.Embedding(arch["n_classes"] + 1, 1, sparse=True)
            for table in (self.entity, self.cls):
                nn.init.normal_(table.weight, std=0.05)
            nn.init.zeros_(self.bias.weight)

        def forward(self, x: torch.Tensor, ent: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
            s, _ = self.mlp(x)
            dot = (self.entity(ent) * self.cls(cls)).sum(-1)
            return s.squeeze(-1) + dot + self.bias(cls).squeeze(-1)

    return PairNet() if arch["pair"] else MLP(arch["d_in"], arch["d_out"])


class TorchRanker(Ranker):
    name = "torch"
    supported_tasks = ALL_TASKS
    produces_embeddings = True
    requires = "torch"

    def __init__(self, *, seed: int = 0, **params: Any) -> None:
        super().__init__(seed=seed, **params)
        self.config = resolve_params(self.name, DEFAULTS, params)
        if self.config["loss"] not in _LOSSES:
            raise PQLRunError(f"loss = {self.config['loss']!r} is invalid: expected one of "
                              f"{', '.join(_LOSSES)}", code="E602")
        self.net: Any = None
        self.arch: dict[str, Any] = {}
        self.scaler: _Standardizer | None = None
        self.names: list[str] = []
        self.target_mean, self.target_std = 0.0, 1.0
        self.class_keys: list[Any] = []
        self.class_codes = np.zeros(0, dtype=np.int64)
        self.epochs_run = 0
        self._sample: FeatureSet | None = None
        self._importances: dict[str, float] | None = None

    # -- fitting ----------------------------------------------------------------------------------
    def fit(self, train: FeatureSet, task: TaskInfo, *, valid: FeatureSet | None = None,
            progress: Progress | None = None) -> None:
        y = check_labels(train, task, self.name)
        self.task, self.names = task, list(train.names)
        self.scaler = _Standardizer().fit(train.X)
        self.arch = {k: self.config[k] for k in ("hidden", "layers", "dropout", "embedding_dim")}
        self.arch.update(pair=task.is_pair, d_in=self.scaler.width, d_out=self._out_width(task))
        if task.is_pair:
            self._fit_pair_codes(train, valid)
        with _torch_state(self.seed, int(self.config["n_threads"])) as torch:
            self.net = _build(self.arch)
            if task.is_pair:
                self._fit_pair(torch, train, y, valid, progress)
            else:
                self._fit_node(torch, train, y, valid, progress)
            self.net.eval()
        self._importances = None
        source = valid if valid is not None and valid.y is not None and len(valid) else train
        rng = np.random.default_rng(self.seed + 3)
        rows = None
        if task.is_pair and source.group is not None:
            rows = sample_pair_rows(np.asarray(source.y), source.group, int(self.config["negatives_per_group"]),
                                    rng)
        self._sample = importance_sample(source, rows, int(self.config["importance_rows"]), rng)

    def feature_importances(self) -> dict[str, float] | None:
        """Permutation importance on a small held-out sample (see _common.permutation_importance)."""
        if self.net is None or self._sample is None:
            return None
        if self._importances is None:
            self._importances = permutation_importance(self.predict, self._sample, self.task, self.seed)
        return dict(self._importances)

    @staticmethod
    def _out_width(task: TaskInfo) -> int:
        return len(task.classes) if task.task_type == TaskType.MULTICLASS_CLASSIFICATION else 1

    def _fit_pair_codes(self, train: FeatureSet, valid: FeatureSet | None) -> None:
        for key in ("entity_code", "class_code"):
            if key not in train.extra:
                raise PQLRunError(f"ranker 'torch' needs extra['{key}'] in the pair feature set", code="E615")
        self.arch["n_entities"] = _count(train, valid, "entity_code", "n_entity_codes")
        self.arch["n_classes"] = _count(train, valid, "class_code", "n_class_codes")
        codes, keys = [], []
        for fs in (train, valid):
            if fs is not None and "class_code" in fs.extra and "CLASS" in fs.keys.column_names:
                codes.append(np.asarray(fs.extra["class_code"], dtype=np.int64))
                keys.extend(fs.keys.column("CLASS").to_pylist())
        all_codes = np.concatenate(codes)
        uniq, first = np.unique(all_codes, return_index=True)
        self.class_codes = uniq
        self.class_keys = [keys[i] for i in first]

    def _loop(self, torch: Any, epochs: tuple[int, int], run_epoch: Any, evaluate: Any,
              progress: Progress | None) -> None:
        epochs, least = epochs
        patience = max(int(self.config["patience"]), epochs // 10)
        opt = _AdamW(torch, list(self.net.parameters()), lr=self.config["learning_rate"],
                     weight_decay=self.config["weight_decay"])
        best, best_state, stale = -np.inf, None, 0
        for epoch in range(epochs):
            self.net.train()
            loss = run_epoch(opt, epoch)
            self.epochs_run = epoch + 1
            if progress:
                progress(f"torch: epoch {epoch + 1}/{epochs}, loss {loss:.4f}", (epoch + 1) / epochs)
            if evaluate is None:
                continue
            self.net.eval()
            with torch.no_grad():
                quality = evaluate()
            if quality > best + 1e-7:
                best, best_state, stale = quality, copy.deepcopy(self.net.state_dict()), 0
            else:
                stale += 1
                if stale >= patience and epoch + 1 >= least:
                    break
        if best_state is not None:
            self.net.load_state_dict(best_state)

    def _epochs(self, rows_per_epoch: int) -> tuple[int, int]:
        """(epochs, epochs before early stopping may act): the configured epochs, more when the
        data is too small for ``min_steps`` optimiser steps; no stopping before those steps."""
        batches = max(1, -(-rows_per_epoch // int(self.config["batch_size"])))
        least = min(200, -(-int(self.config["min_steps"]) // batches))
        return max(int(self.config["epochs"]), least), least

    def _batches(self, torch: Any, n: int, epoch: int) -> Iterator[Any]:
        gen = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        order = torch.randperm(n, generator=gen)
        bs = int(self.config["batch_size"])
        for i in range(0, n, bs):
            yield order[i:i + bs]

    def _fit_node(self, torch: Any, train: FeatureSet, y: np.ndarray, valid: FeatureSet | None,
                  progress: Progress | None) -> None:
        task = self.task
        X = torch.from_numpy(self.scaler.transform(train.X))
        if task.task_type in VALUE_TASKS:
            yf = y.astype(np.float64)
            self.target_mean = float(yf.mean())
            self.target_std = float(yf.std()) or 1.0
        target = torch.from_numpy(self._encode(y))
        loss_fn = self._node_loss(torch)

        def run_epoch(opt: Any, epoch: int) -> float:
            total = 0.0
            for idx in self._batches(torch, len(X), epoch):
                opt.zero_grad()
                out, _ = self.net(X[idx])
                loss = loss_fn(out, target[idx])
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            return total / max(len(X), 1)

        evaluate = None
        if valid is not None and valid.y is not None and len(valid):
            vX = torch.from_numpy(self.scaler.transform(self._aligned(valid)))
            vt = torch.from_numpy(self._encode(np.asarray(valid.y)))
            evaluate = lambda: -float(loss_fn(self.net(vX)[0], vt))  # noqa: E731
        self._loop(torch, self._epochs(len(X)), run_epoch, evaluate, progress)

    def _encode(self, y: np.ndarray) -> np.ndarray:
        t = self.task.task_type
        if t == TaskType.MULTICLASS_CLASSIFICATION:
            return y.astype(np.int64)
        if t in VALUE_TASKS:
            return ((y.astype(np.float64) - self.target_mean) / self.target_std).astype(np.float32)[:, None]
        return y.astype(np.float32)[:, None]

    def _node_loss(self, torch: Any) -> Any:
        t = self.task.task_type
        if t == TaskType.MULTICLASS_CLASSIFICATION:
            return torch.nn.CrossEntropyLoss()
        if t in VALUE_TASKS:
            return {"mse": torch.nn.MSELoss(), "l1": torch.nn.L1Loss(),
                    "huber": torch.nn.HuberLoss()}[self.config["loss"]]
        return torch.nn.BCEWithLogitsLoss()

    def _fit_pair(self, torch: Any, train: FeatureSet, y: np.ndarray, valid: FeatureSet | None,
                  progress: Progress | None) -> None:
        X = self.scaler.transform(train.X)
        ent, cls = self._codes(train)
        rel = (y > 0.5).astype(np.float32)
        hard = heuristic_pair_score(train)
        rng = np.random.default_rng(self.seed)
        loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")
        c = self.config

        def sample() -> tuple[np.ndarray, np.ndarray]:
            rows, weight = sample_pair_rows(y, train.group, int(c["negatives_per_group"]), rng, hard=hard,
                                            hard_share=float(c["hard_share"]), with_weights=True,
                                            positives=int(c["positives_per_group"]))
            return rows, (weight if c["weighted"] else np.ones(len(rows))).astype(np.float32)

        first = sample()

        def run_epoch(opt: Any, epoch: int) -> float:
            rows, weight = first if epoch == 0 else sample()
            tX, te, tc = (torch.from_numpy(a[rows]) for a in (X, ent, cls))
            tr, tw = torch.from_numpy(rel[rows]), torch.from_numpy(weight)
            total = 0.0
            for idx in self._batches(torch, len(rows), epoch):
                opt.zero_grad()
                w = tw[idx]
                loss = (loss_fn(self.net(tX[idx], te[idx], tc[idx]), tr[idx]) * w).sum() / w.sum()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            return total / max(len(rows), 1)

        evaluate = None
        if valid is not None and valid.y is not None and valid.group is not None and len(valid):
            k = int(self.task.k or 10)
            vy, vg = np.asarray(valid.y), valid.group
            vX = self.scaler.transform(self._aligned(valid))
            evaluate = lambda: grouped_map_at_k(self._pair_scores(torch, valid, vX), vy, vg, k)  # noqa: E731
        self._loop(torch, self._epochs(len(first[0])), run_epoch, evaluate, progress)

    def _codes(self, data: FeatureSet) -> tuple[np.ndarray, np.ndarray]:
        def clip(key: str, n: int) -> np.ndarray:
            code = np.asarray(data.extra[key], dtype=np.int64)
            return np.where((code >= 0) & (code < n), code, n)

        return clip("entity_code", self.arch["n_entities"]), clip("class_code", self.arch["n_classes"])

    # -- scoring ----------------------------------------------------------------------------------
    def _aligned(self, data: FeatureSet) -> np.ndarray:
        if list(data.names) == self.names:
            return data.X
        missing = [n for n in self.names if n not in data.names]
        if missing:
            raise PQLRunError(f"ranker 'torch' was trained with feature '{missing[0]}', which this "
                              f"feature set does not have", code="E615")
        index = {n: i for i, n in enumerate(data.names)}
        return data.X[:, [index[n] for n in self.names]]

    def _pair_scores(self, torch: Any, data: FeatureSet, X: np.ndarray | None = None) -> np.ndarray:
        if X is None:
            X = self.scaler.transform(self._aligned(data))
        ent, cls = self._codes(data)
        out = np.empty(len(data), dtype=np.float64)
        step = 65536
        for i in range(0, len(data), step):
            sl = slice(i, i + step)
            out[sl] = self.net(torch.from_numpy(X[sl]), torch.from_numpy(ent[sl]),
                               torch.from_numpy(cls[sl])).double().numpy()
        return out

    def _node_forward(self, torch: Any, data: FeatureSet) -> tuple[np.ndarray, np.ndarray]:
        out, hidden = self.net(torch.from_numpy(self.scaler.transform(self._aligned(data))))
        return out.double().numpy(), hidden.double().numpy()

    def predict(self, data: FeatureSet) -> np.ndarray:
        task = check_fitted(self)
        with _torch_state(self.seed, int(self.config["n_threads"])) as torch, torch.no_grad():
            self.net.eval()
            if task.is_pair:
                return self._pair_scores(torch, data)
            out, _ = self._node_forward(torch, data)
        if task.task_type == TaskType.MULTICLASS_CLASSIFICATION:
            z = out - out.max(axis=1, keepdims=True)
            e = np.exp(z)
            return e / e.sum(axis=1, keepdims=True)
        if task.task_type in VALUE_TASKS:
            return out[:, 0] * self.target_std + self.target_mean
        return 1.0 / (1.0 + np.exp(-out[:, 0]))

    def entity_embeddings(self, data: FeatureSet) -> np.ndarray:
        task = check_fitted(self)
        if task.is_pair:
            ent, _ = self._codes(data)
            return self.net.entity.weight.detach().numpy()[ent].astype(np.float32)
        with _torch_state(self.seed, int(self.config["n_threads"])) as torch, torch.no_grad():
            self.net.eval()
            _, hidden = self._node_forward(torch, data)
        return hidden.astype(np.float32)

    def class_embeddings(self) -> tuple[list[Any], np.ndarray] | None:
        task = check_fitted(self)
        if not task.is_pair:
            return None
        return list(self.class_keys), self.net.cls.weight.detach().numpy()[self.class_codes].astype(np.float32)

    # -- persistence: weights as a state_dict, the rest (scaler, config) pickled ---------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["net"] = None
        return state

    def save(self, directory: Path) -> None:
        import torch

        directory.mkdir(parents=True, exist_ok=True)
        (directory / "ranker.json").write_text(json.dumps({"name": self.name, "seed": self.seed,
                                                            "params": self.params}, default=str, indent=2))
        with open(directory / "ranker.pkl", "wb") as fh:
            pickle.dump(self, fh, protocol=pickle.HIGHEST_PROTOCOL)
        if self.net is not None:
            torch.save({"arch": self.arch, "state_dict": self.net.state_dict()}, directory / "model.pt")

    @classmethod
    def load(cls, directory: Path) -> "TorchRanker":
        import torch

        obj = super().load(directory)
        if not isinstance(obj, TorchRanker):
            raise PQLRunError(f"'{directory}' does not hold a torch ranker", code="E613")
        weights = directory / "model.pt"
        if weights.is_file():
            saved = torch.load(weights, map_location="cpu", weights_only=True)
            obj.net = _build(saved["arch"])
            obj.net.load_state_dict(saved["state_dict"])
            obj.net.eval()
        return obj


def _count(train: FeatureSet, valid: FeatureSet | None, code: str, size: str) -> int:
    """Embedding table size: the declared code count, else one more than the largest code seen."""
    if size in train.extra and len(train.extra[size]):
        return int(np.asarray(train.extra[size]).ravel()[0])
    seen = [int(np.max(fs.extra[code])) + 1 for fs in (train, valid)
            if fs is not None and code in fs.extra and len(fs.extra[code])]
    return max(seen, default=1)
