"""Validation of Box actions, shared by the PettingZoo face and the vector face.

The contract: float64, integer and boolean actions are cast to float32, and actions outside the
Box are clipped (in the input's precision, before the cast) and counted. NaN, infinite or
wrongly shaped actions raise ValueError naming the agent, the value and the expected space.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ledgerzoo.envs.core.market import Role


def validate_box_actions(
    actions: Any, role: Role, *, single_instance: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Check a role's batched actions, cast them to float32 and clip them into the Box.

    Args:
        actions: Array-like of shape (B, count, *action_shape).
        role: The role whose action space applies.
        single_instance: Whether to name agents without an instance index in messages.

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
    if array.ndim < 2 or array.shape[1:2] != (role.count,) or array.shape[2:] != space.shape:
        raise ValueError(
            f"actions of role {role.name!r} have shape {array.shape}; expected "
            f"(instances, {role.count}, *{space.shape}) for the space {space}"
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
