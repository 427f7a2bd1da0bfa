"""The business profile customers see when they tap the shop's name: its fields and Meta's limits.

`POST /{phone-number-id}/whatsapp_business_profile` refuses a field over its limit, a website without
http(s)://, or a vertical outside Meta's list; the types here refuse the same things first, so
settings.yaml (`shop:`) and `bot whatsapp profile --set` name the field before any request is made.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

ABOUT_MAX = 139
ADDRESS_MAX = 256
DESCRIPTION_MAX = 512
EMAIL_MAX = 128
WEBSITE_MAX = 256
WEBSITES_MAX = 2

Vertical = Literal[
    "UNDEFINED",
    "OTHER",
    "AUTO",
    "BEAUTY",
    "APPAREL",
    "EDU",
    "ENTERTAIN",
    "EVENT_PLAN",
    "FINANCE",
    "GROCERY",
    "GOVT",
    "HOTEL",
    "HEALTH",
    "NONPROFIT",
    "PROF_SERVICES",
    "RETAIL",
    "TRAVEL",
    "RESTAURANT",
    "NOT_A_BIZ",
]
"""Meta's industry list for the profile (a repair shop is PROF_SERVICES or RETAIL)."""

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_WEBSITE = re.compile(r"^https?://\S+$", re.IGNORECASE)


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError(f"'{value}' is not an email address")
    return value


def _website(value: str) -> str:
    if not _WEBSITE.match(value):
        raise ValueError(f"'{value}' is not a web address: start it with https:// (or http://)")
    return value


def _strip(max_length: int) -> Any:
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length)


About = Annotated[str, _strip(ABOUT_MAX)]
"""Under the name in the profile: 1 to 139 characters."""
ProfileAddress = Annotated[str, _strip(ADDRESS_MAX)]
Description = Annotated[str, _strip(DESCRIPTION_MAX)]
Email = Annotated[str, _strip(EMAIL_MAX), AfterValidator(_email)]
Website = Annotated[str, _strip(WEBSITE_MAX), AfterValidator(_website)]
Websites = Annotated[list[Website], Field(max_length=WEBSITES_MAX)]


class BusinessProfile(BaseModel):
    """The profile fields the shop sets; a field left None is not sent (Meta keeps its value)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    about: About | None = None
    address: ProfileAddress | None = None
    description: Description | None = None
    email: Email | None = None
    websites: Websites | None = None
    vertical: Vertical | None = None

    def request_body(self) -> dict[str, Any]:
        """The POST body: `messaging_product` and the fields that are set."""
        return {"messaging_product": "whatsapp", **self.model_dump(exclude_none=True)}

    @property
    def empty(self) -> bool:
        return not self.model_dump(exclude_none=True)


class ProfileAtMeta(BaseModel):
    """`GET /{phone-number-id}/whatsapp_business_profile`'s `data[0]`: what customers see now. Lenient:
    Meta's values are shown, not checked."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    about: str | None = None
    address: str | None = None
    description: str | None = None
    email: str | None = None
    websites: list[str] = []
    vertical: str | None = None
    profile_picture_url: str | None = None


PROFILE_FIELDS = ("about", "address", "description", "email", "websites", "vertical")
