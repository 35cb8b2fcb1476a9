"""The visibility policy (pure) and the rules of the lease-operation roles' accounts: a
manager needs a building, buildings are SITE/BUILDING and only for the lease roles."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.registry.db import open_registry
from cloud.staff.accounts import AccountService, InvalidAccount, Role
from cloud.staff.visibility import (
    FULL_VIEW,
    LeaseFields,
    Sensitive,
    mask_id_number,
    visible,
    withheld,
)

PASSWORD = "correct horse battery"
FIELDS = LeaseFields(arrears_cents=800_000, credit_cents=20_000, id_number="110105199001011234")


def test_the_table_of_who_sees_what() -> None:
    assert {f: {r.value for r in roles} for f, roles in FULL_VIEW.items()} == {
        Sensitive.ARREARS: {"admin", "finance", "supervisor"},
        Sensitive.CREDIT_NOTES: {"admin", "finance", "supervisor"},
        Sensitive.ID_NUMBER: {"admin", "legal"},
    }
    masked = "110***********1234"
    assert visible(Role.ADMIN, FIELDS) == FIELDS
    assert visible(Role.FINANCE, FIELDS) == LeaseFields(800_000, 20_000, masked)
    assert visible(Role.SUPERVISOR, FIELDS) == LeaseFields(800_000, 20_000, masked)
    assert visible(Role.LEGAL, FIELDS) == LeaseFields(None, None, "110105199001011234")
    assert visible(Role.MANAGER, FIELDS) == LeaseFields(None, None, masked)
    assert visible(Role.ENGINEER, FIELDS) == LeaseFields(None, None, masked)
    assert visible(Role.MANAGER, LeaseFields(0, 0, None)) == LeaseFields(None, None, None)
    assert withheld(Role.MANAGER) == ["arrears", "credit_notes", "id_number"]
    assert withheld(Role.LEGAL) == ["arrears", "credit_notes"]
    assert withheld(Role.ADMIN) == []


def test_masking_keeps_the_length_and_both_ends() -> None:
    assert mask_id_number("110105199001011234") == "110***********1234"
    assert mask_id_number("91310000MA1K000001") == "913***********0001"
    assert mask_id_number("A1234567") == "A12*4567"
    assert mask_id_number("1234567") == "*******"
    assert mask_id_number("") == ""


@pytest.fixture()
def accounts(tmp_path: Path) -> AccountService:
    return AccountService(open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}"))


@pytest.mark.parametrize(
    ("role", "sites", "buildings", "message"),
    [
        ("manager", ["park-a"], [], "a manager account needs at least one building"),
        ("manager", [], ["park-a"], "expected SITE/BUILDING, e.g. park-a/A"),
        ("manager", [], ["park-a/A B"], "expected SITE/BUILDING"),
        ("manager", [], ["park a/A"], "expected SITE/BUILDING"),
        ("finance", ["park-a"], ["park-a/A"], "the finance role acts on whole sites"),
        ("engineer", ["park-a"], ["park-a/A"], "the engineer role acts on whole sites"),
        ("admin", [], ["park-a/A"], "the admin role acts on whole sites"),
        ("supervisor", [], [], "a supervisor account needs at least one site"),
        ("auditor", ["park-a"], [], "expected one of admin, finance, engineer, manager"),
    ],
)
def test_account_rules_of_the_new_roles(
    accounts: AccountService, role: str, sites: list[str], buildings: list[str], message: str
) -> None:
    with pytest.raises(InvalidAccount, match=message):
        accounts.create_account("someone", PASSWORD, role, sites, buildings=buildings)


def test_buildings_add_their_sites_and_a_reset_replaces_them(accounts: AccountService) -> None:
    assert accounts.create_account(
        "mgr", PASSWORD, "manager", buildings=["park-a/A", "park-b/1号楼"]
    )
    who = accounts.acting("mgr")
    assert who.sites == {"park-a", "park-b"}
    assert who.buildings_of("park-b") == {"1号楼"} and who.buildings_of("park-c") is None
    assert who.may_see_unit("park-b", "1号楼") and not who.may_see_unit("park-b", "2号楼")
    assert not who.may_see_unit("park-c", "A")
    # a supervisor of park-a with one building limited at park-b
    accounts.create_account("sup", PASSWORD, "supervisor", ["park-a"], buildings=["park-b/A"])
    sup = accounts.acting("sup")
    assert sup.may_see_unit("park-a", "anything") and not sup.may_see_unit("park-b", "B")
    accounts.create_account("mgr", PASSWORD, "supervisor", ["park-c"])
    assert accounts.buildings().get("mgr") is None
    assert accounts.acting("mgr").may_see_unit("park-c", "Z")
