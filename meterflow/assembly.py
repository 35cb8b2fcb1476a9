"""Builds the cloud's services from Settings; the one place that knows every backend."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from cloud.registry.db import open_registry
from cloud.series.base import SeriesStore
from meterflow.settings import Settings


def series_store(settings: Settings) -> SeriesStore:
    """The configured series store: SQLite under the data directory, or InfluxDB."""
    if settings.series_backend == "influxdb":
        from cloud.series.influx import InfluxSeriesStore

        return InfluxSeriesStore(
            settings.influx_url,
            settings.influx_bucket,
            username=settings.influx_username,
            password=settings.influx_password.get_secret_value()
            if settings.influx_password
            else None,
            token=settings.influx_token.get_secret_value() if settings.influx_token else None,
        )
    from cloud.series.sqlite import SqliteSeriesStore

    return SqliteSeriesStore(settings.data_dir / "series.sqlite")


def registry(settings: Settings) -> sessionmaker[Session]:
    """The registry database at its newest schema."""
    return open_registry(settings.registry_url)
