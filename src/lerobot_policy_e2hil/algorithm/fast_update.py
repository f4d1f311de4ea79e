"""Faster ``update()`` for LeRobot's SAC and for E2HiL, computing the same numbers.

:class:`FastUpdateMixin` overrides three narrow hooks of ``SACAlgorithm``; nothing of LeRobot's
update loop, losses or networks is copied:

* ``make_optimizers_and_scheduler``: LeRobot's Adam optimizers with ``foreach=True`` (one
  multi-tensor kernel per Adam operation instead of a Python loop over parameters; on CPU torch
  otherwise picks the loop). Each element gets the same operations in the same order.
* ``_update_target_networks``: the Polyak average with ``torch._foreach_mul_`` /
  ``_foreach_add_``: ``target * (1 - tau) + online * tau`` in the same rounding as LeRobot's
  per-parameter ``copy_``.
* ``_compute_loss_actor``: the critic heads' parameters do not require grad while SAC's actor loss
  is built, so its backward pass skips their weight gradients. Those gradients are never used:
  the critic step of this update is done, the actor's clip norm and step only read actor
  parameters, and the next critic step's ``zero_grad`` drops them. Gradients still flow through
  the heads into the action (and into a shared encoder, which the actor's clip norm reads).
  E2HiL's actor loss reads the heads through detached parameters, so it has nothing to skip.

Each hook runs only when the algorithm's config says ``fast_update: true``; otherwise it is
LeRobot's. The field is part of the saved config (``config.json``, ``train_config.json``), so
a checkpoint says which update it trained with. Two classes carry the mixin: ``"sac_fast"``
(:mod:`.sac_fast`, LeRobot's SAC config plus the field) and ``"e2hil"``, which also reads the field
to score its Monte Carlo actions from each critic head's first layer at the actor loss's own
action (:func:`first_layer_outputs`, :func:`heads_min_q`), in buffers reused from one update to
the next (:class:`HeadWorkspace`). LeRobot's ``"sac"`` is built as LeRobot builds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer


class FastUpdateMixin:
    """Put before ``SACAlgorithm`` in the bases: same results, less time per update.

    Active when ``self.config.fast_update`` is true (the config class must declare the field).
    """

    config: Any

    def make_optimizers_and_scheduler(self) -> dict[str, Optimizer]:
        optimizers = super().make_optimizers_and_scheduler()
        if self.config.fast_update:
            for optimizer in optimizers.values():
                use_foreach(optimizer)
        return optimizers

    def _update_target_networks(self) -> None:
        if not self.config.fast_update:
            return super()._update_target_networks()
        tau = self.config.critic_target_update_weight
        polyak_update(self.critic_target.parameters(), self.critic_ensemble.parameters(), tau)
        if self.policy_config.num_discrete_actions is not None:
            polyak_update(
                self.discrete_critic_target.parameters(), self.policy.discrete_critic.parameters(), tau
            )
        return None

    def _compute_loss_actor(self, batch: dict[str, Any]) -> Tensor:
        if not self.config.fast_update:
            return super()._compute_loss_actor(batch)
        with frozen(self.critic_ensemble.critics.parameters()):
            return super()._compute_loss_actor(batch)


def uses_fast_update(algorithm: Any) -> bool:
    """Whether ``algorithm`` runs the fast update (its class has the mixin and its config says so)."""
    return isinstance(algorithm, FastUpdateMixin) and bool(algorithm.config.fast_update)


@contextmanager
def frozen(parameters: Iterable[nn.Parameter]) -> Iterator[None]:
    """Parameters that required grad do not for the block (graphs built inside skip them)."""
    thawed = [p for p in parameters if p.requires_grad]
    for parameter in thawed:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in thawed:
            parameter.requires_grad_(True)


def use_foreach(optimizer: Optimizer) -> None:
    """Make ``optimizer`` use its multi-tensor (``foreach``) implementation from its next step.

    Also after ``load_state_dict`` (a resumed learner), which restores the saved groups' flags.
    """
    _set_foreach(optimizer)
    optimizer.register_load_state_dict_post_hook(_set_foreach)


def _set_foreach(optimizer: Optimizer) -> None:
    optimizer.defaults["foreach"] = True
    for group in optimizer.param_groups:
        group["foreach"] = True


@torch.no_grad()
def polyak_update(targets: Iterable[Tensor], sources: Iterable[Tensor], tau: float) -> None:
    """``target <- target * (1 - tau) + source * tau`` for every pair, in place.

    The same two products and one sum per element as LeRobot's
    ``copy_(source * tau + target * (1 - tau))`` (addition commutes exactly), so the result is
    bit for bit the same.
    """
    targets, sources = list(targets), list(sources)
    if len(targets) != len(sources):
        raise ValueError(f"{len(targets)} target tensors for {len(sources)} source tensors")
    scaled = torch._foreach_mul(sources, tau)
    torch._foreach_mul_(targets, 1.0 - tau)
    torch._foreach_add_(targets, scaled)


class HeadWorkspace:
    """Buffers the Monte Carlo critic-head forwards write into, kept from one update to the next.

    The K x B-row hidden activations are megabytes each; allocated afresh at every update they
    come from new pages of memory (the allocator returns large blocks to the system), and the
    page faults cost as much as the layers' arithmetic. Two buffers per width, used in turn.
    """

    def __init__(self):
        self._buffers: dict[tuple, Tensor] = {}

    def get(self, slot: int, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """The buffer ``slot`` of ``shape`` with ``like``'s dtype and device (uninitialised)."""
        key = (slot, tuple(shape), like.dtype, like.device)
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = torch.empty(shape, dtype=like.dtype, device=like.device)
        return buffer


def state_parts(heads: Iterable[nn.Module], state_encoding: Tensor) -> list[Tensor]:
    """``W_e e + b`` of each head's first layer: its output for the states and a zero action.

    Args:
        heads: LeRobot ``CriticHead`` modules (``net.net`` a ``Sequential`` starting with a
            ``Linear`` on ``[state encoding, action]``).
        state_encoding: ``[B, E]`` critic encodings of the states.

    Returns:
        One ``[B, hidden]`` tensor per head, without gradient.
    """
    encoding_dim = state_encoding.shape[-1]
    with torch.no_grad():
        return [
            torch.nn.functional.linear(state_encoding, first.weight[:, :encoding_dim], first.bias)
            for first in (head.net.net[0] for head in heads)
        ]


@contextmanager
def first_layer_outputs(heads: Iterable[nn.Module], enabled: bool = True) -> Iterator[list[Tensor]]:
    """Collect, detached, the output of each head's first layer in the forwards run in the block.

    Run around one forward of the heads on ``[state encoding, actions]`` (any way of calling
    them, ``functional_call`` included): the list then holds one ``[B, hidden]`` tensor per
    head, in order, and the forward computes exactly what it computes without the hooks.
    """
    outputs: list[Tensor] = []
    if not enabled:
        yield outputs
        return
    handles = [
        head.net.net[0].register_forward_hook(
            lambda _module, _inputs, output: outputs.append(output.detach())
        )
        for head in heads
    ]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


def heads_min_q(
    heads: Iterable[nn.Module],
    first_layer_base: list[Tensor],
    action_offsets: Tensor,
    workspace: HeadWorkspace | None = None,
) -> Tensor:
    """Min over critic heads of Q for K actions per state, from each head's first layer at a base action.

    Each head's first layer is linear in ``[state encoding, action]``, so at ``a = a0 + d`` it is
    ``h0 + W_a d`` with ``h0`` its output at the base action ``a0``. With ``h0 = W_e e + b``
    (:func:`state_parts`, ``a0 = 0``) or with the first layer's output at the actor loss's own
    action (:func:`first_layer_outputs`), the K x B rows pay only for the ``action_dim`` columns
    of the first layer; the result equals the concatenated forward up to float rounding. The
    layers after the first run as the head's modules do (the same kernels), writing into
    ``workspace``'s buffers when one is given.

    Args:
        heads: LeRobot ``CriticHead`` modules.
        first_layer_base: One ``[B, hidden]`` first-layer output per head, at the base actions.
        action_offsets: ``[K, B, A]`` actions minus the base actions, K per state.
        workspace: Buffers to reuse across calls (None: allocate).

    Returns:
        ``[K, B]`` minimum over the heads, without gradient.
    """
    workspace = workspace if workspace is not None else HeadWorkspace()
    num_actions, batch_size, action_dim = action_offsets.shape
    rows = action_offsets.reshape(num_actions * batch_size, action_dim)
    q_values = []
    with torch.no_grad():
        for head, base in zip(heads, first_layer_base, strict=True):
            first, *rest = head.net.net
            hidden = workspace.get(0, (rows.shape[0], first.out_features), rows)
            torch.mm(rows, first.weight[:, first.in_features - action_dim :].t(), out=hidden)
            hidden.view(num_actions, batch_size, -1).add_(base)
            for layer in rest:
                hidden = _apply_in_workspace(layer, hidden, workspace)
            q_values.append(head.output_layer(hidden).squeeze(-1))
    return torch.stack(q_values, dim=0).min(dim=0)[0].view(num_actions, batch_size)


def _apply_in_workspace(layer: nn.Module, hidden: Tensor, workspace: HeadWorkspace) -> Tensor:
    """``layer(hidden)`` by the same kernel, into a workspace buffer or in place where it can."""
    if isinstance(layer, nn.Linear):
        out = _other_buffer(workspace, hidden, layer.out_features)
        if layer.bias is None:
            return torch.mm(hidden, layer.weight.t(), out=out)
        return torch.addmm(layer.bias, hidden, layer.weight.t(), out=out)
    if isinstance(layer, nn.LayerNorm) and len(layer.normalized_shape) == 1:
        out = _other_buffer(workspace, hidden, hidden.shape[-1])
        stats = [workspace.get(slot, (hidden.shape[0], 1), hidden) for slot in (2, 3)]
        torch.ops.aten.native_layer_norm.out(
            hidden,
            list(layer.normalized_shape),
            layer.weight,
            layer.bias,
            layer.eps,
            out0=out,
            out1=stats[0],
            out2=stats[1],
        )
        return out
    if isinstance(layer, nn.SiLU):
        return torch.nn.functional.silu(hidden, inplace=True)
    if isinstance(layer, nn.ReLU):
        return hidden.relu_()
    if isinstance(layer, nn.Tanh):
        return hidden.tanh_()
    return layer(hidden)


def _other_buffer(workspace: HeadWorkspace, hidden: Tensor, width: int) -> Tensor:
    """The workspace buffer of ``width`` columns that is not ``hidden``'s storage."""
    for slot in (0, 1):
        buffer = workspace.get(slot, (hidden.shape[0], width), hidden)
        if buffer.data_ptr() != hidden.data_ptr():
            return buffer
    raise AssertionError("two distinct workspace buffers of one shape")


def split_head_min_q(
    heads: Iterable[nn.Module],
    state_encoding: Tensor,
    actions: Tensor,
    workspace: HeadWorkspace | None = None,
) -> Tensor:
    """Min over critic heads of Q(s, a) for many actions per state, without gradient.

    :func:`heads_min_q` from the state part of each head's first layer (:func:`state_parts`):
    ``W [e; a] + b = (W_e e + b) + W_a a``, computed once per state and broadcast over the
    actions. Equal to the concatenated forward up to float rounding.

    Args:
        heads: LeRobot ``CriticHead`` modules.
        state_encoding: ``[B, E]`` critic encodings of the states.
        actions: ``[K, B, A]`` actions, K per state.
        workspace: Buffers to reuse across calls (None: allocate).

    Returns:
        ``[K, B]`` minimum over the heads.
    """
    heads = list(heads)
    return heads_min_q(heads, state_parts(heads, state_encoding), actions, workspace)
