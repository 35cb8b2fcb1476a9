"""Alembic environment: runs the registry migrations on the connection or URL it is given."""

from alembic import context
from sqlalchemy import create_engine

import cloud.apportion.models  # noqa: F401  (adds the apportionment tables to Base.metadata)
import cloud.staff.models  # noqa: F401  (the staff tables, sign-in throttle included)
from cloud.registry.base import Base

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
