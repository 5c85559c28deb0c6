"""Validation of actions, shared by the PettingZoo face and the vector face.

The contract for Box actions: float64, integer and boolean actions are cast to float32, and
actions outside the Box are clipped (in the input's precision, before the cast) and counted.
NaN, infinite or wrongly shaped actions raise ValueError naming the agent, the value and the
expected space. Discrete actions must be integers (integral floats are accepted) in range and
allowed by the agent's action mask, or they raise ValueError; they are never clipped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ledgerzoo.envs.core.market import Role


def validate_box_actions(
    actions: Any, role: Role, *, single_instance: bool = False, instances: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Check a role's batched actions, cast them to float32 and clip them into the Box.

    Args:
        actions: Array-like of shape (B, count, *action_shape).
        role: The role whose action space applies.
        single_instance: Whether to name agents without an instance index in messages.
        instances: The number of instances B the actions must have, or None to accept any.

    Returns:
        The clipped float32 actions, same shape, and the number of clipped actions per agent
        (B, count), int64 (0 or 1 per step).

    Raises:
        ValueError: For a wrong shape, a non-numeric dtype, or NaN or infinite entries.
    """
    space = role.action_space
    array = np.asarray(actions)
    if array.dtype.kind not in "biuf":
        raise ValueError(
            f"actions of role {role.name!r} must be numeric, got dtype {array.dtype}; "
            f"expected values in {space}"
        )
    if (
        array.ndim < 2
        or array.shape[1:2] != (role.count,)
        or array.shape[2:] != space.shape
        or (instances is not None and array.shape[0] != instances)
    ):
        raise ValueError(
            f"actions of role {role.name!r} have shape {array.shape}; expected "
            f"({_instances(instances)}, {role.count}, *{space.shape}) for the space {space}"
        )
    if array.dtype.kind == "b":
        array = array.astype(np.uint8)
    # Check and clip in the input's own precision before casting: a finite float64 action far
    # outside the Box would overflow float32 and look infinite.
    finite = np.isfinite(array)
    if not finite.all():
        instance, agent = np.argwhere(~finite)[0][:2]
        name = f"{role.name}_{agent}"
        where = name if single_instance else f"{name} in instance {instance}"
        raise ValueError(
            f"invalid action for {where}: {array[instance, agent].tolist()} is not finite; "
            f"expected values in {space}"
        )
    low = space.low.astype(np.float32)
    high = space.high.astype(np.float32)
    outside = (array < low) | (array > high)
    clipped: np.ndarray = np.any(outside.reshape(array.shape[0], role.count, -1), axis=2)
    if clipped.any():
        array = np.clip(array, low, high)
    return array.astype(np.float32, copy=False), clipped.astype(np.int64)


def validate_discrete_actions(
    actions: Any,
    role: Role,
    mask: np.ndarray | None = None,
    *,
    single_instance: bool = False,
    instances: int | None = None,
) -> np.ndarray:
    """Check a role's batched Discrete actions against the space and the action mask.

    Args:
        actions: Array-like of shape (B, count).
        role: The role, whose action space is ``Discrete(n)``.
        mask: Allowed actions (B, count, n), or None when every action is allowed.
        single_instance: Whether to name agents without an instance index in messages.
        instances: The number of instances B the actions must have, or None to accept any.

    Returns:
        The actions as int64, (B, count).

    Raises:
        ValueError: For a wrong shape, a non-numeric dtype, a non-integral value, or an action
            out of range or masked off.
    """
    space = role.action_space
    n = int(space.n)
    array = np.asarray(actions)
    if array.dtype.kind not in "iuf":
        raise ValueError(
            f"actions of role {role.name!r} must be integers, got dtype {array.dtype}; "
            f"expected values in {space}"
        )
    if (
        array.ndim != 2
        or array.shape[1] != role.count
        or (instances is not None and array.shape[0] != instances)
    ):
        raise ValueError(
            f"actions of role {role.name!r} have shape {array.shape}; expected "
            f"({_instances(instances)}, {role.count}) for the space {space}"
        )
    start = int(space.start)
    with np.errstate(invalid="ignore"):
        integral = np.isfinite(array) & (np.floor(array) == array)
        bad = ~integral | (array < start) | (array >= start + n)
    if bad.any():
        instance, agent = np.argwhere(bad)[0]
        raise ValueError(
            f"invalid action for {_agent(role, instance, agent, single_instance)}: "
            f"{array[instance, agent].item()!r}; expected an integer in {space}"
        )
    chosen = array.astype(np.int64) - start
    if mask is not None:
        allowed = np.take_along_axis(mask, chosen[..., None], axis=2)[..., 0]
        if not allowed.all():
            instance, agent = np.argwhere(~allowed)[0]
            legal = np.flatnonzero(mask[instance, agent]) + start
            raise ValueError(
                f"invalid action for {_agent(role, instance, agent, single_instance)}: "
                f"{int(chosen[instance, agent]) + start} is masked off; the allowed actions are "
                f"{legal.tolist()} (see the observation's action_mask)"
            )
    return chosen + start


def _instances(instances: int | None) -> str:
    return "instances" if instances is None else str(instances)


def _agent(role: Role, instance: int, agent: int, single_instance: bool) -> str:
    name = f"{role.name}_{agent}"
    return name if single_instance else f"{name} in instance {instance}"
