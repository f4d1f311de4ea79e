"""Configuration of the E2HiL algorithm (``"algorithm": {"type": "e2hil"}``)."""

from __future__ import annotations

from dataclasses import dataclass

from lerobot.rl.algorithms.configs import RLAlgorithmConfig
from lerobot.rl.algorithms.sac import SACAlgorithmConfig

from ..errors import ConfigError

# The paper's Monte Carlo covariance forms (Eq. 9, Cui et al. 2025 Thm. 2)
COVARIANCE_FORMS = ("policy_gradient", "natural")
# Every accepted influence_form: the covariance forms and the first-order (JVP) estimate
INFLUENCE_FORMS = (*COVARIANCE_FORMS, "first_order")


class E2HiLConfigError(ConfigError):
    """An invalid value in the ``"e2hil"`` algorithm config."""


@RLAlgorithmConfig.register_subclass("e2hil")
@dataclass
class E2HiLAlgorithmConfig(SACAlgorithmConfig):
    """SAC/RLPD with entropy-guided sample selection in the actor update (E2HiL, Eq. 9-12).

    Every SAC field keeps its meaning and default; critic, discrete-critic and temperature
    losses are SAC's. Only the actor loss is restricted to the samples whose influence on the
    policy entropy, ``|c|``, lies between two batch quantiles.
    """

    # Monte Carlo actions K per state: for the covariance of Eq. 9, or for grad H in "first_order" (K >= 2)
    num_action_samples: int = 8
    # Samples with |c| below this batch quantile are dropped ("noisy", Eq. 11 lower bound l)
    influence_lower_quantile: float = 0.05
    # Samples with |c| above this batch quantile are dropped ("shortcut", Eq. 11 upper bound u)
    influence_upper_quantile: float = 0.90
    # "policy_gradient": c = -Cov(log pi, pi * A) (Eq. 9); "natural": c = -Cov(log pi, A);
    # "first_order": c = -actor_lr * <grad l_i, P grad H> (docs/algorithm.md, one JVP per batch)
    influence_form: str = "policy_gradient"
    # Upper clamp on the density pi(a|s) in the policy_gradient form (pi of a narrow policy explodes)
    density_clamp: float = 1e6
    # Added to the kept-sample count in the masked mean of Eq. 12, so an empty mask gives loss 0
    eps: float = 1e-8
    # False keeps every sample (plain SAC actor loss) while still logging the E2HiL diagnostics
    selection: bool = True
    # True: the control rule; each actor batch drops a uniformly random subset of the size the band drops
    random_mask: bool = False
    # True: the fast update (.fast_update: same SAC numbers, the Monte Carlo Q from each head's first layer)
    fast_update: bool = True

    def __post_init__(self) -> None:
        parent_post_init = getattr(super(), "__post_init__", None)
        if parent_post_init is not None:
            parent_post_init()
        k = self.num_action_samples
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            self._invalid("num_action_samples", "integers >= 2 (a covariance needs two actions per state)")
        for name in ("influence_lower_quantile", "influence_upper_quantile"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                self._invalid(name, "[0, 1]")
        if self.influence_lower_quantile >= self.influence_upper_quantile:
            self._invalid(
                "influence_lower_quantile",
                f"0 <= influence_lower_quantile < influence_upper_quantile (={self.influence_upper_quantile})",
            )
        if self.influence_form not in INFLUENCE_FORMS:
            self._invalid("influence_form", ", ".join(repr(form) for form in INFLUENCE_FORMS))
        if not self.density_clamp > 0:
            self._invalid("density_clamp", "> 0")
        if not self.eps > 0:
            self._invalid("eps", "> 0")
        for name in ("selection", "random_mask", "fast_update"):
            if not isinstance(getattr(self, name), bool):
                self._invalid(name, "true, false")

    def _invalid(self, name: str, allowed: str) -> None:
        raise E2HiLConfigError(
            f"algorithm.{name}={getattr(self, name)!r} is invalid for type 'e2hil'; allowed values: {allowed}"
        )
