"""Posterior estimators on summaries: neural posterior estimation through ``sbi``, neural likelihood
estimation through ``sbi`` sampled with ``emcee``, and the classical Gaussian-likelihood analysis
sampled with ``emcee``.

They store themselves as data: the NPE / NLE flows as safetensors weights plus the few numbers that rebuild
them (sbi's pickled posteriors break across versions, DESIGN.md section 13); the Gaussian analysis as
its emulator coefficients and covariance in an ``.npz``.
"""
from __future__ import annotations

import contextlib
import functools
import io
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..errors import ConfigError, InputError

__all__ = ["NPE", "NLE", "GaussianLikelihood", "make_estimator", "load_estimator", "box_prior"]

#: steps between draws kept per emcee walker: about the stretch move's autocorrelation time in 2-3 dimensions
AUTOCORR = 20
#: emcee walkers, burn-in steps and least steps after it, for the likelihood-based estimators
WALKERS, BURN, STEPS = 32, 300, 500
#: seconds sbi may spend rejecting posterior samples outside the prior box before it gives up
SAMPLING_BUDGET_S = 120.0


def box_prior(box: dict[str, tuple[float, float]]):
    from sbi.utils import BoxUniform

    lo, hi = zip(*box.values())
    return BoxUniform(torch.tensor(lo, dtype=torch.float32), torch.tensor(hi, dtype=torch.float32))


def mcmc_sample(log_likelihood, box: dict, n: int, seed: int, walkers: int = WALKERS, burn: int = BURN,
                steps: int = STEPS) -> np.ndarray:
    """``n`` draws (n, P) of the posterior under the uniform ``box`` by emcee's stretch move;
    ``log_likelihood`` maps parameters (M, P) inside the box to (M,). After ``burn`` steps, at least
    ``steps`` and enough for n draws spaced by AUTOCORR steps per walker."""
    import emcee

    lo, hi = np.array(list(box.values())).T
    rng = np.random.default_rng(seed)

    def log_post(theta):
        inside = np.all((theta >= lo) & (theta <= hi), axis=1)
        out = np.full(len(theta), -np.inf)
        out[inside] = log_likelihood(theta[inside])
        return out

    start = lo + (hi - lo) * rng.uniform(0.25, 0.75, (walkers, len(lo)))
    sampler = emcee.EnsembleSampler(walkers, len(lo), log_post, vectorize=True)
    sampler.random_state = np.random.RandomState(int(rng.integers(2**31))).get_state()
    sampler.run_mcmc(start, burn + max(steps, -(-n * AUTOCORR // walkers)))
    chain = sampler.get_chain(discard=burn, flat=True)
    return chain[rng.choice(len(chain), n, replace=len(chain) < n)]


@contextlib.contextmanager
def _quiet_flows():
    """nflows' LU layers call a torch function deprecated in 2.x at every evaluation: not the user's concern."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*triangular_solve is deprecated.*")
        yield


@functools.lru_cache(maxsize=None)
def _grouped(kind: str):
    from sbi.inference import NLE as SbiNLE, NPE as SbiNPE

    class Grouped({"npe": SbiNPE, "nle": SbiNLE}[kind]):
        """sbi's NPE / NLE with its validation split drawn over groups of simulations (``groups``) instead
        of single simulations; everything else is sbi's (``get_dataloaders`` is its extension point)."""

        groups: np.ndarray

        def get_dataloaders(self, starting_round=0, training_batch_size=200, validation_fraction=0.1,
                            resume_training=False, dataloader_kwargs=None):
            if not resume_training:
                labels = np.unique(self.groups)
                perm = labels[torch.randperm(len(labels)).numpy()]
                val = np.isin(self.groups, perm[:max(1, int(round(validation_fraction * len(labels))))])
                self.train_indices = torch.from_numpy(np.flatnonzero(~val))
                self.val_indices = torch.from_numpy(np.flatnonzero(val))
            # drop_last off: a validation set of whole groups may be smaller than one batch
            return super().get_dataloaders(starting_round, training_batch_size, validation_fraction, True,
                                           {**(dataloader_kwargs or {}), "drop_last": False})

    return Grouped


class NPE:
    """An ensemble of ``ensemble`` normalising flows q(theta | s) (``density``: maf or nsf) trained by
    ``sbi.inference.NPE`` on (theta, s) pairs; members differ in their initial weights and
    training/validation split, and the posterior is their equal-weight mixture."""

    kind = "npe"

    def __init__(self, box: dict[str, tuple[float, float]], density: str = "nsf", ensemble: int = 1,
                 hidden: int = 50, transforms: int = 5):
        if density not in ("maf", "nsf"):
            raise ConfigError(f"--density {density!r}: expected maf or nsf")
        if ensemble < 1:
            raise ConfigError(f"--ensemble {ensemble}: need at least one estimator")
        self.box, self.density, self.ensemble = dict(box), density, ensemble
        self.hidden, self.transforms = hidden, transforms
        self.nets: list[torch.nn.Module] = []
        self.x_dim = 0
        self.epochs: list[int] = []

    def _builder(self):
        from sbi.neural_nets import posterior_nn

        return posterior_nn(self.density, hidden_features=self.hidden, num_transforms=self.transforms)

    def fit(self, theta: np.ndarray, x: np.ndarray, seed: int, max_epochs: int = 500, log_dir: Path | None = None,
            groups: np.ndarray | None = None, batch_size: int = 200) -> "NPE":
        """Train the flows; sbi's TensorBoard logs go to ``log_dir``/npe_<member> (a temporary folder if None).
        ``groups`` (N,): simulations sharing a label (the views of one galaxy, the noise copies of one map)
        fall on the same side of sbi's validation split, so early stopping sees no near-copies of what it
        trains on (with a random split it would, and stop late: an over-confident posterior)."""
        import tempfile

        from sbi.utils.tracking import TensorBoardTracker
        from torch.utils.tensorboard import SummaryWriter

        theta_t = torch.as_tensor(theta, dtype=torch.float32)
        x_t = torch.as_tensor(x, dtype=torch.float32)
        if (x_t.std(0) == 0).any():  # sbi's z-scoring divides by it (NaN), DESIGN.md section 13
            raise InputError(f"summary feature {int(torch.nonzero(x_t.std(0) == 0)[0])} is constant over the "
                             f"training maps; nothing to learn from it")
        self.x_dim = x_t.shape[1]
        self.nets, self.epochs = [], []
        for member in range(self.ensemble):
            torch.manual_seed(seed * 1000 + member)
            logs = Path(log_dir or tempfile.mkdtemp(prefix="skymorph-npe-")) / f"npe_{member}"
            inference = _grouped(self.kind)(prior=box_prior(self.box), density_estimator=self._builder(),
                                       show_progress_bars=False,
                                       tracker=TensorBoardTracker(SummaryWriter(log_dir=str(logs))))
            inference.groups = np.arange(len(theta)) if groups is None else np.asarray(groups)
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # sbi prints its epochs
                warnings.filterwarnings("ignore", category=UserWarning)
                net = inference.append_simulations(theta_t, x_t).train(
                    training_batch_size=batch_size, max_num_epochs=max_epochs, show_train_summary=False)
            self.nets.append(net.eval())
            self.epochs.append(int(inference._summary["epochs_trained"][-1]))
        return self

    def _posterior(self):
        from sbi.inference.posteriors import DirectPosterior
        from sbi.inference.posteriors.ensemble_posterior import EnsemblePosterior

        prior = box_prior(self.box)
        posts = [DirectPosterior(net, prior) for net in self.nets]
        return posts[0] if len(posts) == 1 else EnsemblePosterior(posts)

    def sample(self, x: np.ndarray, n: int, seed: int, within_prior: bool = True) -> np.ndarray:
        with _quiet_flows():
            return self._sample(x, n, seed, within_prior)

    def _sample(self, x: np.ndarray, n: int, seed: int, within_prior: bool) -> np.ndarray:
        """``n`` posterior samples (n, P) for one summary vector ``x`` (D,): inside the prior box (sbi's
        rejection sampling), or with ``within_prior`` False straight from the flows (an observation
        outside the prior's range, whose mass rejection would never find)."""
        torch.manual_seed(seed)
        xo = torch.as_tensor(np.asarray(x, np.float32)[None])
        if not within_prior:
            counts = np.random.default_rng([seed, 7]).multinomial(n, [1 / len(self.nets)] * len(self.nets))
            with torch.no_grad():
                parts = [net.sample((int(c),), condition=xo)[:, 0] for net, c in zip(self.nets, counts) if c]
            return torch.cat(parts).numpy().astype(np.float64)
        post = self._posterior()
        try:
            s = post.sample((n,), x=xo, show_progress_bars=False, max_sampling_time=SAMPLING_BUDGET_S)
        except TypeError:  # EnsemblePosterior has no sampling-time budget
            s = post.sample((n,), x=xo, show_progress_bars=False)
        except RuntimeError as exc:
            raise InputError(f"posterior sampling gave up after {SAMPLING_BUDGET_S:g} s: almost all of the "
                             f"estimator's mass lies outside the prior box for this observation ({exc})") from None
        return s.numpy().astype(np.float64)

    def save(self, folder: Path) -> None:
        tensors = {f"{i}.{k}": v.contiguous() for i, net in enumerate(self.nets) for k, v in net.state_dict().items()}
        save_file(tensors, str(folder / "estimator.safetensors"))
        meta = {"kind": self.kind, "density": self.density, "ensemble": self.ensemble, "hidden": self.hidden,
                "transforms": self.transforms, "x_dim": self.x_dim, "box": self.box, "epochs": self.epochs}
        (folder / "estimator.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, folder: Path, meta: dict) -> "NPE":
        est = cls(meta["box"], meta["density"], meta["ensemble"], meta["hidden"], meta["transforms"])
        est.x_dim, est.epochs = meta["x_dim"], meta["epochs"]
        tensors = load_file(str(folder / "estimator.safetensors"))
        # the builder needs a batch to size the flow; its z-scoring buffers are then overwritten by the weights
        gen = torch.Generator().manual_seed(0)
        lo, hi = (torch.tensor(v, dtype=torch.float32) for v in zip(*est.box.values()))
        theta = lo + (hi - lo) * torch.rand(64, len(lo), generator=gen)
        x = torch.randn(64, est.x_dim, generator=gen)
        for i in range(est.ensemble):
            net = est._builder()(theta, x)
            own = {k[len(f"{i}."):]: v for k, v in tensors.items() if k.startswith(f"{i}.")}
            net.load_state_dict(own)
            est.nets.append(net.eval())
        return est


class NLE(NPE):
    """Neural likelihood estimation: flows q(s | theta) (``density``: maf or nsf) trained by
    ``sbi.inference.NLE`` on (theta, s) pairs (an ensemble's likelihood is the members' mean), the
    posterior under the uniform box sampled by emcee. It learns the summaries' distribution, not the
    posterior, so it does not depend on the prior the simulations were drawn from; its price is an
    MCMC chain per observation."""

    kind = "nle"

    def _builder(self):
        from sbi.neural_nets import likelihood_nn

        return likelihood_nn(self.density, hidden_features=self.hidden, num_transforms=self.transforms)

    def log_likelihood(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        """log q(x | theta) (M,) for parameters (M, P) and one summary vector x (D,)."""
        t = torch.as_tensor(np.atleast_2d(theta), dtype=torch.float32)
        xo = torch.as_tensor(np.asarray(x, np.float32)).expand(1, len(t), -1)
        with torch.no_grad():
            logs = torch.stack([net.log_prob(xo, condition=t)[0] for net in self.nets])
        return (torch.logsumexp(logs, 0) - np.log(len(self.nets))).numpy().astype(np.float64)

    def sample(self, x: np.ndarray, n: int, seed: int, within_prior: bool = True) -> np.ndarray:
        """``n`` samples of the posterior under the uniform box by MCMC (the box is the chain's support,
        so ``within_prior`` False cannot widen it)."""
        with _quiet_flows():
            return mcmc_sample(lambda t: self.log_likelihood(t, x), self.box, n, seed)


class GaussianLikelihood:
    """The analysis a cosmologist runs today: x ~ N(mu(theta), C) on the summaries, with mu a quadratic
    polynomial in theta fitted by least squares over the training simulations (the emulator) and C the
    covariance of the emulator residuals, the Hartlap factor (n - D - 2) / (n - 1) on its inverse; the
    posterior under the uniform prior box sampled by ``emcee``. C is the covariance averaged over the
    prior (the training set has no repeated fiducial), so it neglects its parameter dependence."""

    kind = "gaussian"

    def __init__(self, box: dict[str, tuple[float, float]], walkers: int = WALKERS, steps: int = STEPS,
                 burn: int = BURN):
        self.box, self.walkers, self.steps, self.burn = dict(box), walkers, steps, burn
        self.coef = self.precision = self.centre = self.scale = None

    def _features(self, theta: np.ndarray) -> np.ndarray:
        u = (np.atleast_2d(theta) - self.centre) / self.scale
        cols = [np.ones(len(u))] + [u[:, i] for i in range(u.shape[1])]
        cols += [u[:, i] * u[:, j] for i in range(u.shape[1]) for j in range(i, u.shape[1])]
        return np.stack(cols, 1)

    def fit(self, theta: np.ndarray, x: np.ndarray, seed: int = 0, max_epochs: int | None = None,
            log_dir: Path | None = None, groups: np.ndarray | None = None) -> "GaussianLikelihood":
        """Least squares and a covariance: closed form, so ``seed``, ``max_epochs``, ``log_dir`` and the
        validation ``groups`` play no part."""
        lo, hi = np.array(list(self.box.values())).T
        self.centre, self.scale = (lo + hi) / 2, (hi - lo) / 2
        feats = self._features(theta)
        n, d = x.shape
        if n < d + 3 or n <= feats.shape[1]:
            raise InputError(f"the Gaussian likelihood needs more training maps than summary features + 3 "
                             f"({d + 3}) and emulator terms ({feats.shape[1]}); got {n}")
        self.coef = np.linalg.lstsq(feats, x, rcond=None)[0]
        resid = x - feats @ self.coef
        cov = resid.T @ resid / (n - feats.shape[1])
        self.precision = (n - d - 2) / (n - 1) * np.linalg.inv(cov)
        return self

    def log_likelihood(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        r = np.asarray(x)[None] - self._features(theta) @ self.coef
        return -0.5 * np.einsum("ni,ij,nj->n", r, self.precision, r)

    def sample(self, x: np.ndarray, n: int, seed: int, within_prior: bool = True) -> np.ndarray:
        """``n`` samples of the posterior under the uniform box by MCMC; the box is the chain's support,
        so ``within_prior`` False cannot widen it: the chain then piles up at the box's edge (said in
        the posterior's notes)."""
        return mcmc_sample(lambda t: self.log_likelihood(t, x), self.box, n, seed, self.walkers, self.burn,
                           self.steps)

    def save(self, folder: Path) -> None:
        np.savez(folder / "estimator.npz", coef=self.coef, precision=self.precision, centre=self.centre,
                 scale=self.scale)
        meta = {"kind": self.kind, "box": self.box, "walkers": self.walkers, "steps": self.steps, "burn": self.burn}
        (folder / "estimator.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, folder: Path, meta: dict) -> "GaussianLikelihood":
        est = cls(meta["box"], meta["walkers"], meta["steps"], meta["burn"])
        with np.load(folder / "estimator.npz", allow_pickle=False) as z:
            est.coef, est.precision, est.centre, est.scale = z["coef"], z["precision"], z["centre"], z["scale"]
        return est


def make_estimator(kind: str, box, density: str = "nsf", ensemble: int = 1):
    if kind in ("npe", "nle"):
        return {"npe": NPE, "nle": NLE}[kind](box, density, ensemble)
    if kind == "gaussian":
        if ensemble != 1:
            raise ConfigError("--ensemble: the Gaussian likelihood is one analytic fit; use --ensemble 1")
        return GaussianLikelihood(box)
    raise ConfigError(f"--estimator {kind!r}: expected npe, nle or gaussian")


def load_estimator(folder: Path):
    f = folder / "estimator.json"
    if not f.exists():
        raise InputError(f"{folder}: no estimator.json (not a trained inference run)")
    meta = json.loads(f.read_text())
    cls = {"npe": NPE, "nle": NLE, "gaussian": GaussianLikelihood}.get(meta.get("kind"))
    if cls is None:
        raise InputError(f"{f}: unknown estimator kind {meta.get('kind')!r}")
    try:
        return cls.load(folder, meta)
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise InputError(f"{folder}: estimator weights unreadable or not matching estimator.json: {exc}") from None
