"""Who sees which sensitive field of a lease in full: the one policy (decision 0028).

Pure: no I/O. Every surface that shows a lease (the lease list page and its API) applies
:func:`visible` to what it is about to show, so a role's view is decided here and nowhere else.

| field          | in full for                      | others see                           |
|----------------|----------------------------------|--------------------------------------|
| arrears        | admin, finance, supervisor       | nothing (the field is withheld)      |
| credit notes   | admin, finance, supervisor       | nothing (the field is withheld)      |
| ID number      | admin, legal                     | masked: ``110***********1234``       |

Amounts are integer cents. A withheld amount is ``None`` (not 0: "you may not see it" is not
"nothing is owed").
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from cloud.staff.accounts import Role


class Sensitive(StrEnum):
    """A field of a lease some roles may not see in full."""

    ARREARS = "arrears"  # what is owed on invoices past due [cents]
    CREDIT_NOTES = "credit_notes"  # the tenant's credit not yet applied [cents]
    ID_NUMBER = "id_number"  # the tenant's ID number or credit code


#: The roles that see each sensitive field in full.
FULL_VIEW: dict[Sensitive, frozenset[Role]] = {
    Sensitive.ARREARS: frozenset({Role.ADMIN, Role.FINANCE, Role.SUPERVISOR}),
    Sensitive.CREDIT_NOTES: frozenset({Role.ADMIN, Role.FINANCE, Role.SUPERVISOR}),
    Sensitive.ID_NUMBER: frozenset({Role.ADMIN, Role.LEGAL}),
}
#: How many characters of an ID number stay visible at each end when it is masked.
KEEP_HEAD, KEEP_TAIL = 3, 4


def sees(role: Role, field: Sensitive) -> bool:
    """Whether ``role`` sees ``field`` in full."""
    return role in FULL_VIEW[field]


def mask_id_number(value: str) -> str:
    """An ID number with all but its first 3 and last 4 characters replaced by ``*`` (one per
    character, so the length shows): ``110105199001011234`` → ``110***********1234``. A
    number of 7 characters or fewer is masked whole."""
    if len(value) <= KEEP_HEAD + KEEP_TAIL:
        return "*" * len(value)
    return value[:KEEP_HEAD] + "*" * (len(value) - KEEP_HEAD - KEEP_TAIL) + value[-KEEP_TAIL:]


@dataclass(frozen=True)
class LeaseFields:
    """The sensitive fields of one lease as stored: amounts in cents, the ID number as given
    (None: not recorded)."""

    arrears_cents: int | None
    credit_cents: int | None
    id_number: str | None


def visible(role: Role, fields: LeaseFields) -> LeaseFields:
    """What ``role`` may see of ``fields``: amounts withheld (None), the ID number masked."""
    shown = fields
    if not sees(role, Sensitive.ARREARS):
        shown = replace(shown, arrears_cents=None)
    if not sees(role, Sensitive.CREDIT_NOTES):
        shown = replace(shown, credit_cents=None)
    if shown.id_number is not None and not sees(role, Sensitive.ID_NUMBER):
        shown = replace(shown, id_number=mask_id_number(shown.id_number))
    return shown


def withheld(role: Role) -> list[str]:
    """The sensitive fields ``role`` does not see in full, by name (for the API and page)."""
    return [field.value for field in Sensitive if not sees(role, field)]
