"""Alembic environment: runs the registry migrations on the connection or URL it is given."""

from alembic import context
from sqlalchemy import create_engine

import cloud.apportion.models  # noqa: F401  (adds the apportionment tables to Base.metadata)
from cloud.gateways import models as _gateway_models  # noqa: F401  (revisions 0003, 0005, 0012)
from cloud.ingest import models as _ingest_models  # noqa: F401  (the ingest ledger tables)
from cloud.registry.base import Base
from cloud.staff import models as _staff_models  # noqa: F401  (the staff tables, throttle too)

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
