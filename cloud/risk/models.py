"""Registry tables of the risk package (revision 0006): tenant surveys and activities (two
inputs of the health score), trained model versions and lease scores.

Repair tickets are :class:`cloud.leases.models.RepairComplaint` (0006 adds its category).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, DateTime, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cloud.registry.base import Base


class TenantSurvey(Base):
    """A tenant's answer to the net-promoter question, ``score`` 0–10, on a local date."""

    __tablename__ = "tenant_surveys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    answered_on: Mapped[date] = mapped_column(Date)
    score: Mapped[int] = mapped_column(Integer)


class TenantActivity(Base):
    """A tenant's participation in a community activity (an event, a meeting, a survey
    round) on a local date; ``kind`` names it."""

    __tablename__ = "tenant_activities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    held_on: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(32), default="event")


class RiskModelRow(Base):
    """A trained move-out model: version, when and on what it was trained (``as_of``: the
    last outcome date it saw), its parameters (:meth:`cloud.risk.model.RiskModel.to_json`)
    and its validation metrics. The newest ``active`` version scores leases."""

    __tablename__ = "risk_models"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trained_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    as_of: Mapped[date] = mapped_column(Date)
    examples: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class RiskScore(Base):
    """A lease's move-out probability as of ``scored_on`` with the model version, the top
    reasons, and the health score (0–100) with its band (green / yellow / red).

    A reason is ``{"feature": NAME, "value": V}``, worded when shown
    (:mod:`cloud.risk.wording`); rows stored before hold English sentences, shown as they are.
    """

    __tablename__ = "risk_scores"

    lease_id: Mapped[str] = mapped_column(ForeignKey("leases.id"), primary_key=True)
    scored_on: Mapped[date] = mapped_column(Date, primary_key=True, index=True)
    model_version: Mapped[int | None] = mapped_column(ForeignKey("risk_models.version"))
    probability: Mapped[float | None] = mapped_column(Float)
    health: Mapped[float] = mapped_column(Float)
    band: Mapped[str] = mapped_column(String(8))
    reasons: Mapped[list[str | dict[str, Any]]] = mapped_column(JSON, default=list)
