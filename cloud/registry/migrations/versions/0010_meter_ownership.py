"""meters are keyed by (site, id): two sites may use the same meter ids

A meter belongs to one site; the registry's ``meters`` rows of a site are the meters its
gateways may report (docs/decisions/0015-meter-ownership.md). The primary key becomes
(site_id, id), ``parent_id`` names a meter of the same site, and ``meter_installations``
loses its foreign key to ``meters.id`` (no longer unique on its own).

On SQLite the foreign key is removed by rewriting the table's stored definition (the
procedure SQLite's ALTER TABLE documentation gives for dropping a constraint) and ``meters``
is copied into a new table; foreign-key checks are deferred to the commit meanwhile.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 06:00:00.000000
"""

import re
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INSTALLATION_FK = re.compile(
    r',\s*FOREIGN KEY\s*\(\s*"?meter_id"?\s*\)\s*REFERENCES\s*"?meters"?\s*\(\s*"?id"?\s*\)',
    re.IGNORECASE,
)
_COLUMNS = "id, site_id, gateway_id, protocol, address, parent_id"


def _meters_table(name: str, by_site: bool) -> sa.Table:
    key = ["site_id", "id"] if by_site else ["id"]
    parent = (
        sa.ForeignKeyConstraint(["site_id", "parent_id"], [f"{name}.site_id", f"{name}.id"])
        if by_site
        else sa.ForeignKeyConstraint(["parent_id"], [f"{name}.id"])
    )
    metadata = sa.MetaData()
    for referred in ("sites", "gateways"):  # named by the foreign keys (not created here)
        sa.Table(referred, metadata, sa.Column("id", sa.String(length=64), primary_key=True))
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("gateway_id", sa.String(length=64), nullable=True),
        sa.Column("protocol", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=32), nullable=False),
        sa.Column("parent_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["gateway_id"], ["gateways.id"]),
        parent,
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"]),
        sa.PrimaryKeyConstraint(*key),
    )


def _sqlite_set_installation_sql(transform: Callable[[str], str]) -> None:
    bind = op.get_bind()
    sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'meter_installations'"
    ).scalar_one()
    new = transform(sql)
    if new == sql:
        return
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.exec_driver_sql(
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'meter_installations'",
        (new,),
    )
    bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def _sqlite_copy_meters(by_site: bool) -> None:
    bind = op.get_bind()
    bind.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
    new = _meters_table("_meters_new", by_site)
    new.create(bind)
    bind.exec_driver_sql(f"INSERT INTO _meters_new ({_COLUMNS}) SELECT {_COLUMNS} FROM meters")
    bind.exec_driver_sql("DROP TABLE meters")
    bind.exec_driver_sql("ALTER TABLE _meters_new RENAME TO meters")
    op.create_index("ix_meters_gateway_id", "meters", ["gateway_id"], unique=False)
    op.create_index("ix_meters_site_id", "meters", ["site_id"], unique=False)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_set_installation_sql(lambda sql: _INSTALLATION_FK.sub("", sql))
        _sqlite_copy_meters(by_site=True)
        return
    op.drop_constraint(
        "meter_installations_meter_id_fkey", "meter_installations", type_="foreignkey"
    )
    op.drop_constraint("meters_parent_id_fkey", "meters", type_="foreignkey")
    op.drop_constraint("meters_pkey", "meters", type_="primary")
    op.create_primary_key("meters_pkey", "meters", ["site_id", "id"])
    op.create_foreign_key(
        "meters_site_id_parent_id_fkey",
        "meters",
        "meters",
        ["site_id", "parent_id"],
        ["site_id", "id"],
    )


def downgrade() -> None:
    """Back to ids unique across sites: fails (integrity error) while two sites share one."""
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_copy_meters(by_site=False)
        _sqlite_set_installation_sql(
            lambda sql: (
                sql
                if _INSTALLATION_FK.search(sql)
                else sql.rstrip().removesuffix(")").rstrip()
                + ", \n\tFOREIGN KEY(meter_id) REFERENCES meters (id)\n)"
            )
        )
        return
    op.drop_constraint("meters_site_id_parent_id_fkey", "meters", type_="foreignkey")
    op.drop_constraint("meters_pkey", "meters", type_="primary")
    op.create_primary_key("meters_pkey", "meters", ["id"])
    op.create_foreign_key("meters_parent_id_fkey", "meters", "meters", ["parent_id"], ["id"])
    op.create_foreign_key(
        "meter_installations_meter_id_fkey", "meter_installations", "meters", ["meter_id"], ["id"]
    )
