"""Time-series storage of meter readings behind one interface (SQLite or InfluxDB)."""

from cloud.series.base import SeriesFrame, SeriesPoint, SeriesStore, SeriesStoreError

__all__ = ["SeriesFrame", "SeriesPoint", "SeriesStore", "SeriesStoreError"]
