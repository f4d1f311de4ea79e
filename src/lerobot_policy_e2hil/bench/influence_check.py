"""Does each influence form predict the entropy change it is named for? (``e2hil-bench influence-check``)

A short synchronous sim run (:class:`.trainer.SyncTrainer`, fixed cube by default) trains an
E2HiL policy, or a snapshot of one is loaded. Then, for the forms ``policy_gradient``,
``natural`` and ``first_order``:

* **per sample**: on one replay batch of ``B`` states, for each of ``samples`` of them, one
  optimiser step on that sample's actor loss ``l_i`` alone (SAC's per-sample loss at a fixed
  reparameterisation draw, the draw ``first_order`` uses), once a plain SGD step
  (``theta - actor_lr * grad l_i``) and once an Adam step from a copy of the training actor
  optimiser's state (torch's own ``Adam.step``; no gradient clipping). The measured change is
  ``H(theta') - H(theta)``, the Monte Carlo entropy on all ``B`` states with the same
  ``entropy_samples`` noise draws per state before and after (common random numbers), in
  float64. Predicted: each form's ``c_i``. ``first_order`` is reported twice: with the training
  optimiser's preconditioner (what the algorithm uses with Adam) and with ``P = I`` (what it
  uses with SGD). Pearson and Spearman over the samples.
* **batch level** (the paper's Fig. 5 left): during training, every ``probe_every``-th actor
  step, each form's ``actor_lr * mean c`` over the samples that entered the step against the
  measured entropy change of that step (same states, common random numbers). ``first_order +
  momentum`` adds Adam's momentum: ``(b1 <g_H, P m> * (-actor_lr) + (1 - b1) mean c) / (1 - b1^(t+1))``.

Writes ``influence_check.md`` (tables), ``influence_check.json`` (every number) and
``influence_check.png`` (scatter plots), and ``snapshot.pt`` in the run directory.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..algorithm.e2hil_algorithm import action_distribution
from ..algorithm.influence import influence_values
from . import analysis as an
from .probe import entropy_from_noise, log_prob_from_noise, min_q_heads

PAPER_FORMS = ("policy_gradient", "natural")
# Rows of the per-sample table: the paper's forms, first_order with the training optimiser's P, and with P = I
SAMPLE_ROWS = ("policy_gradient", "natural", "first_order", "first_order_sgd")
BATCH_ROWS = ("policy_gradient", "natural", "first_order", "first_order_momentum")
ROW_LABELS = {
    "policy_gradient": "policy_gradient (paper Eq. 9)",
    "natural": "natural (Cov(log pi, A))",
    "first_order": "first_order, P of the training Adam",
    "first_order_sgd": "first_order, P = I (SGD)",
    "first_order_momentum": "first_order + Adam momentum",
}
SNAPSHOT_FILE = "snapshot.pt"


@dataclass
class CheckSettings:
    """What the check measures.

    Args:
        samples: Samples of the batch that each get their own one-step measurement (>= 64).
        entropy_samples: Noise draws per state of each entropy estimate.
        probe_every: Batch-level probe every n-th actor step of the training run (0: none).
        seed: Seeds the check's private generators.
    """

    samples: int = 128
    entropy_samples: int = 64
    probe_every: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        from ..errors import ConfigError

        for name, minimum in (("samples", 2), ("entropy_samples", 1), ("probe_every", 0)):
            if getattr(self, name) < minimum:
                raise ConfigError(f"{name}={getattr(self, name)!r} is invalid; allowed values: >= {minimum}")


def _state_on(batch: dict[str, Any], dtype: torch.dtype | None = None) -> dict[str, Tensor]:
    return {
        k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v)
        for k, v in batch["state"].items()
    }


def _encodings(algorithm: Any, observations: dict[str, Tensor], features: Any) -> tuple[Tensor, Tensor]:
    actor = algorithm.policy.actor
    with torch.no_grad():
        actor_encoding = actor.encoder(observations, cache=features, detach=actor.encoder_is_shared)
        critic_encoding = algorithm.critic_ensemble.encoder(observations, cache=features)
    return actor_encoding, critic_encoding


def _actor_distribution(algorithm: Any, observations: dict[str, Tensor], features: Any, encoding: Tensor):
    """The actor's distribution with its graph to the actor parameters (encoder included if stepped)."""
    return algorithm.actor_distribution_fn(observations, features, encoding)(algorithm.actor_parameters())


def influence_by_form(
    algorithm: Any,
    observations: dict[str, Tensor],
    features: Any,
    noise: Tensor,
    generator: torch.Generator,
    num_action_samples: int,
    density_clamp: float,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Every form's ``c`` on one batch, and ``grad H`` (by parameter name) of the first-order form.

    The paper's forms use ``num_action_samples`` actions per state from ``generator``; the
    first-order form uses ``noise`` as the draw of ``l_i`` and the global generator for its
    entropy draws. Leaves the model untouched.
    """
    actor_encoding, critic_encoding = _encodings(algorithm, observations, features)
    distribution = _actor_distribution(algorithm, observations, features, actor_encoding)
    result: dict[str, Tensor] = {}
    with torch.no_grad():
        loc = distribution.base_dist.loc
        mc_noise = torch.randn((num_action_samples, *loc.shape), generator=generator, dtype=torch.float64)
        actions, log_probs = log_prob_from_noise(distribution, mc_noise.to(loc.device, loc.dtype))
        q_values = min_q_heads(algorithm.critic_ensemble, critic_encoding.unsqueeze(0), actions)
        for form in PAPER_FORMS:
            result[form] = influence_values(
                log_probs.transpose(0, 1),
                q_values.transpose(0, 1),
                algorithm.temperature,
                form,
                density_clamp,
            )
    for name, identity in (("first_order", False), ("first_order_sgd", True)):
        state = torch.random.get_rng_state()
        result[name], _ = algorithm.first_order_influence(
            observations,
            features,
            distribution,
            noise,
            actor_encoding,
            critic_encoding,
            identity_preconditioner=identity,
        )
        torch.random.set_rng_state(state)  # both variants see the same entropy draws
    _, entropy_grad = algorithm.entropy_gradient(distribution, algorithm.actor_parameters())
    return result, entropy_grad


def _as_float64(algorithm: Any) -> Any:
    """A float64 deep copy of the algorithm, optimiser state included."""
    twin = copy.deepcopy(algorithm)
    for module in (twin.policy, twin.critic_ensemble, twin.critic_target):
        module.double()
    for optimizer in twin.optimizers.values():
        for state in optimizer.state.values():
            for key, value in state.items():
                if key != "step" and torch.is_tensor(value) and value.is_floating_point():
                    state[key] = value.double()
    return twin


def per_sample_check(algorithm: Any, batch: dict[str, Any], settings: CheckSettings) -> dict[str, Any]:
    """Predicted ``c_i`` of every form against the measured one-sample SGD and Adam step changes.

    Args:
        algorithm: The trained ``E2HiLAlgorithm`` (not modified: the check works on a float64 copy).
        batch: A forward batch (``algorithm._prepare_forward_batch``) of ``B >= samples`` states.
        settings: Sample counts and seed.

    Returns:
        ``{"predicted": {row: [n]}, "sgd": [n], "adam": [n], "stats": {row: {...}}, ...}``.
    """
    twin = _as_float64(algorithm)
    twin.policy.train()
    observations = _state_on(batch, torch.float64)
    features = batch.get("observation_feature")
    if features is not None:
        features = {k: v.double() for k, v in features.items()}
    params = twin.actor_parameters()
    lr = float(twin.config.actor_lr)
    generator = torch.Generator().manual_seed(settings.seed)
    batch_size = next(iter(observations.values())).shape[0]
    action_dim = twin.policy.actor.mean_layer.out_features
    count = min(settings.samples, batch_size)
    noise = torch.randn((batch_size, action_dim), generator=generator, dtype=torch.float64)
    torch.manual_seed(settings.seed)
    predicted, _ = influence_by_form(
        twin,
        observations,
        features,
        noise,
        generator,
        twin.config.num_action_samples,
        twin.config.density_clamp,
    )
    entropy_noise = torch.randn(
        (settings.entropy_samples, batch_size, action_dim), generator=generator, dtype=torch.float64
    )
    actor_encoding, critic_encoding = _encodings(twin, observations, features)
    distribution_fn = twin.actor_distribution_fn(observations, features, actor_encoding)

    def entropy(values: dict[str, Tensor]) -> float:
        with torch.no_grad():
            return entropy_from_noise(distribution_fn(values), entropy_noise)

    theta = {name: p.detach().clone() for name, p in params.items()}
    entropy_before = entropy(theta)
    losses = twin.per_sample_loss_fn(observations, features, actor_encoding, critic_encoding, noise)(
        dict(params)
    )
    optimizer = twin.optimizers["actor"]
    adam_step = ShadowStep(optimizer, params)
    sgd, adam = [], []
    for i in range(count):
        grads = torch.autograd.grad(losses[i], list(params.values()), retain_graph=True, allow_unused=True)
        grads = {
            n: torch.zeros_like(p) if g is None else g
            for (n, p), g in zip(params.items(), grads, strict=True)
        }
        sgd.append(entropy({n: theta[n] - lr * grads[n] for n in theta}) - entropy_before)
        adam.append(entropy(adam_step(grads)) - entropy_before)
    predicted_np = {row: predicted[row][:count].double().cpu().numpy() for row in SAMPLE_ROWS}
    measured = {"sgd": np.asarray(sgd), "adam": np.asarray(adam)}
    stats = {
        row: {
            f"{kind}_{name}": fn(*an.finite_pairs(predicted_np[row], measured[kind]))
            for kind in ("sgd", "adam")
            for name, fn in (("pearson", an.pearson), ("spearman", an.spearman))
        }
        for row in SAMPLE_ROWS
    }
    return {
        "samples": count,
        "batch_size": batch_size,
        "entropy_samples": settings.entropy_samples,
        "entropy_before": entropy_before,
        "optimizer_step": int(_optimizer_step(optimizer)),
        "predicted": {row: values.tolist() for row, values in predicted_np.items()},
        "sgd": measured["sgd"].tolist(),
        "adam": measured["adam"].tolist(),
        "stats": stats,
    }


def _optimizer_step(optimizer: torch.optim.Optimizer) -> float:
    steps = [float(state["step"]) for state in optimizer.state.values() if "step" in state]
    return max(steps) if steps else 0.0


class ShadowStep:
    """One step of a copy of ``optimizer`` from its current state and parameters, as often as needed.

    Args:
        optimizer: The training optimiser (left untouched).
        params: The parameters it steps that the caller gives gradients for, by name.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, params: dict[str, Tensor]):
        self.shadow, self.optimizer = _shadow_optimizer(optimizer, params)
        self.theta = {name: p.detach().clone() for name, p in params.items()}
        self.state = copy.deepcopy(optimizer.state_dict())

    def __call__(self, grads: dict[str, Tensor]) -> dict[str, Tensor]:
        """Parameter values after one step with ``grads`` from the saved parameters and state."""
        with torch.no_grad():
            for name, p in self.shadow.items():
                p.copy_(self.theta[name])
                p.grad = grads[name].clone()
        # load_state_dict keeps tensors of matching dtype and device by reference: give it a copy,
        # or each step would start from the moments of the previous one.
        self.optimizer.load_state_dict(copy.deepcopy(self.state))
        self.optimizer.step()
        return {name: p.detach().clone() for name, p in self.shadow.items()}


def _shadow_optimizer(
    optimizer: torch.optim.Optimizer, params: dict[str, Tensor]
) -> tuple[dict[str, Tensor], torch.optim.Optimizer]:
    """Leaf copies of ``params`` under a new optimiser of the same class and hyperparameters.

    Its parameter groups list the copies in the original's order, so the original's
    ``state_dict`` loads into it.
    """
    names = {id(p): n for n, p in params.items()}
    shadow: dict[str, Tensor] = {}
    groups = []
    for group in optimizer.param_groups:
        copies = []
        for p in group["params"]:
            twin = p.detach().clone().requires_grad_(p.requires_grad)
            if id(p) in names:
                shadow[names[id(p)]] = twin
            copies.append(twin)
        groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": copies})
    return shadow, type(optimizer)(groups)


class BatchLevelProbe:
    """Every form's predicted entropy change of selected actor steps against the measured one.

    Wraps the algorithm's ``_compute_loss_actor`` on the instance (as :class:`.probe.ActorStepProbe`):
    before the loss of a probed step it computes every form's ``c`` and the Adam momentum term
    with a private generator and a forked global generator (the training run draws the same
    numbers with or without the probe); :meth:`after_update` measures the step's entropy change.
    """

    def __init__(self, algorithm: Any, settings: CheckSettings):
        self.algorithm = algorithm
        self.settings = settings
        self.generator = torch.Generator().manual_seed(settings.seed + 1)
        self.records: list[dict[str, float]] = []
        self.actor_steps = 0
        self._pending: dict[str, Any] | None = None
        original = algorithm._compute_loss_actor

        def compute_loss_actor(batch: dict[str, Any]) -> Tensor:
            if settings.probe_every > 0 and self.actor_steps % settings.probe_every == 0:
                with torch.random.fork_rng(devices=[]):
                    self._before(batch)
            self.actor_steps += 1
            return original(batch)

        algorithm._compute_loss_actor = compute_loss_actor

    def _before(self, batch: dict[str, Any]) -> None:
        algorithm = self.algorithm
        observations, features = batch["state"], batch.get("observation_feature")
        actor_encoding, _ = _encodings(algorithm, observations, features)
        loc = algorithm.policy.actor.mean_layer(algorithm.policy.actor.network(actor_encoding)).detach()
        noise = torch.randn(loc.shape, generator=self.generator).to(loc.device, loc.dtype)
        c, entropy_grad = influence_by_form(
            algorithm,
            observations,
            features,
            noise,
            self.generator,
            algorithm.config.num_action_samples,
            algorithm.config.density_clamp,
        )
        entropy_noise = torch.randn((self.settings.entropy_samples, *loc.shape), generator=self.generator)
        entropy_noise = entropy_noise.to(loc.device, loc.dtype)
        with torch.no_grad():
            before = entropy_from_noise(
                action_distribution(algorithm.policy.actor, actor_encoding), entropy_noise
            )
        self._pending = {
            "batch": batch,
            "c": c,
            "momentum": self._momentum_term(entropy_grad),
            "noise": entropy_noise,
            "before": before,
        }

    def _momentum_term(self, entropy_grad: dict[str, Tensor]) -> tuple[float, float, float]:
        """``(-actor_lr * <g_H, P m>, beta1, 1 - beta1^(t+1))`` of the actor's Adam (zeros if none)."""
        from ..algorithm.influence import diagonal_preconditioner

        optimizer = self.algorithm.optimizers.get("actor")
        params = self.algorithm.actor_parameters()
        if not isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
            return 0.0, 0.0, 1.0
        beta1 = optimizer.param_groups[0]["betas"][0]
        preconditioner = diagonal_preconditioner(optimizer, params)
        total = 0.0
        for name, param in params.items():
            state = optimizer.state.get(param, {})
            if "exp_avg" in state:
                total += float((entropy_grad[name] * preconditioner[name] * state["exp_avg"]).sum())
        correction = 1.0 - beta1 ** (_optimizer_step(optimizer) + 1.0)
        return -float(self.algorithm.config.actor_lr) * total, beta1, correction

    @torch.no_grad()
    def after_update(self, opt_step: int) -> None:
        """Finish a pending probe once ``update()`` has returned."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        algorithm = self.algorithm
        batch = pending["batch"]
        actor_encoding, _ = _encodings(algorithm, batch["state"], batch.get("observation_feature"))
        after = entropy_from_noise(
            action_distribution(algorithm.policy.actor, actor_encoding), pending["noise"]
        )
        kept = algorithm.last_mask.detach().bool().cpu()
        lr = float(algorithm.config.actor_lr)
        record = {
            "opt_step": int(opt_step),
            "measured": after - pending["before"],
            "kept_fraction": float(kept.float().mean()),
        }
        for form, values in pending["c"].items():
            values = values.detach().double().cpu()
            use = kept & torch.isfinite(values)
            record[form] = lr * float(values[use].mean()) if bool(use.any()) else math.nan
        momentum, beta1, correction = pending["momentum"]
        record["first_order_momentum"] = (
            beta1 * momentum + (1.0 - beta1) * record["first_order"]
        ) / correction
        self.records.append(record)


def batch_level_stats(records: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Pearson, Spearman and sign agreement of each row's prediction with the measured change."""
    measured = np.asarray([r["measured"] for r in records], dtype=np.float64)
    stats = {}
    for row in BATCH_ROWS:
        predicted = np.asarray([r.get(row, math.nan) for r in records], dtype=np.float64)
        x, y = an.finite_pairs(predicted, measured)
        stats[row] = {
            "pearson": an.pearson(x, y),
            "spearman": an.spearman(x, y),
            "sign_agreement": float(np.mean(np.sign(x) == np.sign(y))) if x.size else math.nan,
            "n": int(x.size),
        }
    return stats


# --- the run -------------------------------------------------------------------------------


def train_and_probe(
    run: Any, settings: CheckSettings, root: Path | None, progress: bool = True
) -> dict[str, Any]:
    """Train ``run`` with :class:`.trainer.SyncTrainer` and the batch-level probe; return the pieces."""
    from .trainer import SyncTrainer

    trainer = SyncTrainer(run, root=root, progress=progress)
    try:
        trainer.build()
        probe = BatchLevelProbe(trainer.algorithm, settings)
        original_update = trainer._update

        def update(step: int, *args: Any) -> None:
            original_update(step, *args)
            probe.after_update(int(trainer.algorithm.optimization_step))

        trainer._update = update
        start = time.perf_counter()
        result = trainer.run()
        result["timing"]["check_train_s"] = time.perf_counter() - start
        batch = trainer.algorithm._prepare_forward_batch(
            next(trainer.trainer.recorder), include_complementary_info=False
        )
        return {"trainer": trainer, "result": result, "records": probe.records, "batch": batch}
    finally:
        trainer.close()


def save_snapshot(
    path: Path, algorithm: Any, batch: dict[str, Any], records: list, result: dict[str, Any], run: Any
) -> None:
    """Weights, optimiser states, the check's batch and the batch-level records, for ``--snapshot``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "run": run.to_dict(),
            "policy": algorithm.policy.state_dict(),
            "algorithm": algorithm.state_dict(),
            "optimizers": {name: opt.state_dict() for name, opt in algorithm.optimizers.items()},
            "optimization_step": int(algorithm.optimization_step),
            "batch": batch,
            "records": records,
            "result": {k: result[k] for k in ("name", "summary", "timing", "evals")},
        },
        path,
    )


def load_snapshot(path: Path, root: Path | None) -> dict[str, Any]:
    """Rebuild the algorithm of a snapshot (its run's config) and load its weights and optimisers."""
    from lerobot.policies import make_policy
    from lerobot.rl.algorithms.factory import make_algorithm

    from .config import RunConfig, load_pipeline_config

    data = torch.load(path, weights_only=False)
    run = RunConfig.from_dict(data["run"])
    cfg = load_pipeline_config(run, root)
    policy = make_policy(cfg=cfg.policy, env_cfg=cfg.env)
    policy.load_state_dict(data["policy"])
    algorithm = make_algorithm(cfg=cfg.algorithm, policy=policy)
    algorithm.make_optimizers_and_scheduler()
    algorithm.load_state_dict(data["algorithm"])
    for name, state in data["optimizers"].items():
        algorithm.optimizers[name].load_state_dict(state)
    algorithm._optimization_step = data["optimization_step"]
    return {
        "algorithm": algorithm,
        "batch": data["batch"],
        "records": data["records"],
        "result": data["result"],
        "run": run,
    }


def write_report(report: dict[str, Any], out_dir: Path, command: str) -> Path:
    """``influence_check.md``, ``.json`` and ``.png`` in ``out_dir``; returns the markdown path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "influence_check.json").write_text(json.dumps(report, indent=1, default=float))
    plot_check(report, out_dir / "influence_check.png")
    (out_dir / "influence_check.md").write_text(report_markdown(report, command))
    return out_dir / "influence_check.md"


def report_markdown(report: dict[str, Any], command: str) -> str:
    """The tables of the report."""
    sample, summary = report["per_sample"], report["training"]
    lines = [
        "# Influence check: predicted vs measured entropy change",
        "",
        f"Command: `{command}`",
        "",
        f"Policy: {report['policy']}; teacher-free success {summary.get('final_success', float('nan')):.2f}, "
        f"{summary.get('updates', '?')} updates (actor optimiser step {sample['optimizer_step']}).",
        "",
        f"## Per sample ({sample['samples']} samples of one batch of {sample['batch_size']} states; "
        f"entropy on all {sample['batch_size']} states, {sample['entropy_samples']} common noise draws each, float64)",
        "",
        "| form | Pearson vs SGD step | Spearman vs SGD step | Pearson vs Adam step | Spearman vs Adam step |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in SAMPLE_ROWS:
        s = sample["stats"][row]
        lines.append(
            f"| {ROW_LABELS[row]} | {s['sgd_pearson']:.3f} | {s['sgd_spearman']:.3f} | "
            f"{s['adam_pearson']:.3f} | {s['adam_spearman']:.3f} |"
        )
    batch = report["batch_level"]
    lines += [
        "",
        f"## Batch level along the run ({batch['n_steps']} probed actor steps): actor_lr * mean c of the kept samples "
        "vs the measured entropy change of the step",
        "",
        "| prediction | Pearson | Spearman | sign agreement |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row in BATCH_ROWS:
        s = batch["stats"][row]
        lines.append(
            f"| {ROW_LABELS[row]} | {s['pearson']:.3f} | {s['spearman']:.3f} | {s['sign_agreement']:.2f} |"
        )
    lines += ["", "![scatter](influence_check.png)", ""]
    return "\n".join(lines)


def plot_check(report: dict[str, Any], path: Path) -> Path:
    """Per-sample scatter (SGD and Adam rows) and batch-level scatter, one column per form."""
    from .plots import _linthresh, _pyplot, _save

    plt = _pyplot()
    sample, batch = report["per_sample"], report["batch_level"]
    fig, axes = plt.subplots(3, 4, figsize=(17, 11), squeeze=False)
    for row_index, kind in enumerate(("sgd", "adam")):
        measured = np.asarray(sample[kind])
        for ax, row in zip(axes[row_index], SAMPLE_ROWS, strict=True):
            predicted = np.asarray(sample["predicted"][row])
            ax.scatter(predicted, measured, s=6, alpha=0.6)
            s = sample["stats"][row]
            ax.set_title(
                f"{ROW_LABELS[row]}\nper sample vs {kind.upper()} step: r={s[kind + '_pearson']:.2f}, "
                f"rho={s[kind + '_spearman']:.2f}",
                fontsize=8,
            )
            ax.set_xlabel("predicted c_i", fontsize=8)
            ax.set_ylabel(f"measured dH, one {kind.upper()} step on sample i", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
    measured = np.asarray([r["measured"] for r in batch["records"]], dtype=np.float64)
    for ax, row in zip(axes[2], BATCH_ROWS, strict=True):
        predicted = np.asarray([r.get(row, math.nan) for r in batch["records"]], dtype=np.float64)
        ax.scatter(predicted, measured, s=6, alpha=0.5, c=np.arange(len(measured)), cmap="viridis")
        s = batch["stats"][row]
        ax.set_title(
            f"{ROW_LABELS[row]}\nbatch level: r={s['pearson']:.2f}, rho={s['spearman']:.2f}", fontsize=8
        )
        ax.set_xlabel("predicted dH of the step", fontsize=8)
        ax.set_ylabel("measured dH of the actor step", fontsize=8)
        if np.isfinite(predicted).any():
            ax.set_xscale("symlog", linthresh=_linthresh(predicted))
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def run_check(
    run: Any,
    settings: CheckSettings,
    out_dir: Path,
    run_dir: Path,
    command: str,
    root: Path | None,
    snapshot: Path | None = None,
    progress: bool = True,
) -> Path:
    """Train (or load ``snapshot``), run both checks and write the report; returns the markdown path."""
    start = time.perf_counter()
    if snapshot is not None:
        loaded = load_snapshot(snapshot, root)
        algorithm, batch, records, result = (
            loaded["algorithm"],
            loaded["batch"],
            loaded["records"],
            loaded["result"],
        )
        policy = f"snapshot {snapshot} of run {loaded['run'].name}"
    else:
        trained = train_and_probe(run, settings, root, progress)
        algorithm, batch, records, result = (trained[k] for k in ("trainer", "batch", "records", "result"))
        algorithm = algorithm.algorithm
        save_snapshot(run_dir / SNAPSHOT_FILE, algorithm, batch, records, result, run)
        policy = f"trained by this command ({run.name}, {run.env_steps} env steps, snapshot {run_dir / SNAPSHOT_FILE})"
    train_s = time.perf_counter() - start
    t0 = time.perf_counter()
    per_sample = per_sample_check(algorithm, batch, settings)
    report = {
        "policy": policy,
        "settings": asdict(settings),
        "training": result["summary"],
        "per_sample": per_sample,
        "batch_level": {"n_steps": len(records), "records": records, "stats": batch_level_stats(records)},
        "timing": {"train_or_load_s": train_s, "per_sample_s": time.perf_counter() - t0},
    }
    return write_report(report, out_dir, command)
