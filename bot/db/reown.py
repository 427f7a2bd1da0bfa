"""Rows that change customer: a merge moves everything of one customer to another, a phone moving takes
its orders and appointments along. Their encrypted values are sealed anew under the new owner's data key
(a ciphertext moved to another customer's row does not open, by design)."""

from __future__ import annotations

from typing import Any

from tortoise.models import Model

from bot.db.encrypted import PrivateModel, encrypted_fields
from bot.db.writes import update_rows


def private_models() -> list[type[PrivateModel]]:
    """The bot's models with values owned by a customer (found from the models: new ones count)."""
    from bot.db import models

    found = []
    for value in vars(models).values():
        if (
            isinstance(value, type)
            and issubclass(value, PrivateModel)
            and value is not PrivateModel
            and any(f.owner for f in encrypted_fields(value))
        ):
            found.append(value)
    return found


async def reown(gone: int, keep: int) -> None:
    """Every row owned by customer `gone` becomes `keep`'s, its values sealed anew under `keep`'s key
    (a customer's own row, whose owner is its id, is not moved: the merge copies its fields). Call
    inside the merge's transaction."""
    for model in private_models():
        for owner in _owner_fields(model):
            await move_rows(model, keep, **{owner: gone})


def _owner_fields(model: type[Model]) -> set[str]:
    return {f.owner for f in encrypted_fields(model) if f.owner and f.owner != model._meta.pk_attr}


async def move_rows(model: type[Model], new_owner: int, **where: Any) -> int:
    """Give the rows of `model` matching `where` to customer `new_owner`, their encrypted values sealed
    anew for them (a bare UPDATE of the owner would leave values that belong to another row)."""
    [owner] = _owner_fields(model)
    rows: list[Model] = await model.filter(**where)
    if not rows:
        return 0
    for row in rows:
        setattr(row, owner, new_owner)
    names = [f.model_field_name for f in encrypted_fields(model) if f.owner == owner]
    await update_rows(model, rows, [owner, *names])
    return len(rows)
