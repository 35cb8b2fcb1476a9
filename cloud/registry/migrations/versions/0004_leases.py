"""leases: tenants, staff, unit profiles, policies, CPI, leases and their audit, rent plans,
invoices, payments, credits, collections, reminders, offers, complaints, deposits, tasks,
statement access, notification outbox

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 13:42:29.046841
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cpi_indices",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("level", sa.Numeric(precision=12, scale=4), nullable=False),
        sa.PrimaryKeyConstraint("month"),
    )
    op.create_table(
        "lease_policies",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("doc", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "notification_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("recipient", sa.String(length=200), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index(
        op.f("ix_notification_outbox_status"), "notification_outbox", ["status"], unique=False
    )
    op.create_table(
        "staff",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("address", sa.String(length=200), nullable=False),
        sa.Column("supervisor_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["supervisor_id"],
            ["staff.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("address", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "leases",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("unit_id", sa.String(length=64), nullable=False),
        sa.Column("manager_id", sa.String(length=64), nullable=False),
        sa.Column("parent_id", sa.String(length=64), nullable=True),
        sa.Column("renewed_from_id", sa.String(length=64), nullable=True),
        sa.Column("policy_id", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("signed_on", sa.Date(), nullable=True),
        sa.Column("start_on", sa.Date(), nullable=False),
        sa.Column("end_on", sa.Date(), nullable=False),
        sa.Column("handover_on", sa.Date(), nullable=True),
        sa.Column("rent_from", sa.Date(), nullable=True),
        sa.Column("ended_on", sa.Date(), nullable=True),
        sa.Column("cycle_months", sa.Integer(), nullable=False),
        sa.Column("due_days", sa.Integer(), nullable=False),
        sa.Column("auto_renew", sa.Boolean(), nullable=False),
        sa.Column("renewal_term_months", sa.Integer(), nullable=False),
        sa.Column("deposit_cents", sa.BigInteger(), nullable=False),
        sa.Column("schedule", sa.JSON(), nullable=False),
        sa.Column("plan_known_until", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["manager_id"],
            ["staff.id"],
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["leases.id"],
        ),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["lease_policies.id"],
        ),
        sa.ForeignKeyConstraint(
            ["renewed_from_id"],
            ["leases.id"],
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["units.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("renewed_from_id"),
    )
    op.create_index(op.f("ix_leases_parent_id"), "leases", ["parent_id"], unique=False)
    op.create_index(op.f("ix_leases_status"), "leases", ["status"], unique=False)
    op.create_index(op.f("ix_leases_tenant_id"), "leases", ["tenant_id"], unique=False)
    op.create_index(op.f("ix_leases_unit_id"), "leases", ["unit_id"], unique=False)
    op.create_table(
        "repair_complaints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("unit_id", sa.String(length=64), nullable=False),
        sa.Column("opened_on", sa.Date(), nullable=False),
        sa.Column("resolved_on", sa.Date(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["units.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_repair_complaints_tenant_id"), "repair_complaints", ["tenant_id"], unique=False
    )
    op.create_table(
        "unit_profiles",
        sa.Column("unit_id", sa.String(length=64), nullable=False),
        sa.Column("unit_type", sa.String(length=32), nullable=False),
        sa.Column("rentable", sa.Boolean(), nullable=False),
        sa.Column("asking_cents", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["units.id"],
        ),
        sa.PrimaryKeyConstraint("unit_id"),
    )
    op.create_table(
        "credit_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("lease_id", sa.String(length=64), nullable=False),
        sa.Column("booked_on", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.String(length=80), nullable=False),
        sa.Column("cents", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lease_id"],
            ["leases.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("lease_id", "kind", "ref", name="uq_credit_once"),
    )
    op.create_index(
        op.f("ix_credit_entries_lease_id"), "credit_entries", ["lease_id"], unique=False
    )
    op.create_table(
        "deposit_refunds",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("lease_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("deposit_cents", sa.BigInteger(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("inspected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("inspected_by", sa.String(length=64), nullable=True),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("settled_by", sa.String(length=64), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approved_by", sa.String(length=64), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paid_by", sa.String(length=64), nullable=True),
        sa.Column("deductions_cents", sa.BigInteger(), nullable=False),
        sa.Column("refund_cents", sa.BigInteger(), nullable=True),
        sa.Column("shortfall_cents", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lease_id"],
            ["leases.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("lease_id"),
    )
    op.create_index(op.f("ix_deposit_refunds_state"), "deposit_refunds", ["state"], unique=False)
    op.create_table(
        "invoices",
        sa.Column("id", sa.String(length=80), nullable=False),
        sa.Column("lease_id", sa.String(length=64), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("total_cents", sa.BigInteger(), nullable=False),
        sa.Column("paid_cents", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("paid_on", sa.Date(), nullable=True),
        sa.Column("fee_cents", sa.BigInteger(), nullable=False),
        sa.Column("fee_billed_cents", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lease_id"],
            ["leases.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("lease_id", "period_start", name="uq_invoices_lease_period"),
    )
    op.create_index(op.f("ix_invoices_status"), "invoices", ["status"], unique=False)
    op.create_table(
        "lease_tasks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("lease_id", sa.String(length=64), nullable=False),
        sa.Column("assignee_id", sa.String(length=64), nullable=False),
        sa.Column("opened_on", sa.Date(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("closed_on", sa.Date(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignee_id"],
            ["staff.id"],
        ),
        sa.ForeignKeyConstraint(
            ["lease_id"],
            ["leases.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index(op.f("ix_lease_tasks_kind"), "lease_tasks", ["kind"], unique=False)
    op.create_index(op.f("ix_lease_tasks_lease_id"), "lease_tasks", ["lease_id"], unique=False)
    op.create_table(
        "lease_transitions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("lease_id", sa.String(length=64), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=False),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("before", sa.JSON(), nullable=False),
        sa.Column("after", sa.JSON(), nullable=False),
        sa.Column("effects", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lease_id"],
            ["leases.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_lease_transitions_lease_id"), "lease_transitions", ["lease_id"], unique=False
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("lease_id", sa.String(length=64), nullable=False),
        sa.Column("ref", sa.String(length=80), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("cents", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lease_id"],
            ["leases.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("lease_id", "ref", name="uq_payments_lease_ref"),
    )
    op.create_index(op.f("ix_payments_lease_id"), "payments", ["lease_id"], unique=False)
    op.create_table(
        "renewal_offers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("lease_id", sa.String(length=64), nullable=False),
        sa.Column("made_on", sa.Date(), nullable=False),
        sa.Column("by", sa.String(length=64), nullable=False),
        sa.Column("current_cents", sa.BigInteger(), nullable=False),
        sa.Column("suggested_cents", sa.BigInteger(), nullable=False),
        sa.Column("band_low_cents", sa.BigInteger(), nullable=False),
        sa.Column("band_high_cents", sa.BigInteger(), nullable=False),
        sa.Column("offered_cents", sa.BigInteger(), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("flag_reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("successor_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["lease_id"],
            ["leases.id"],
        ),
        sa.ForeignKeyConstraint(
            ["successor_id"],
            ["leases.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_renewal_offers_lease_id"), "renewal_offers", ["lease_id"], unique=False
    )
    op.create_table(
        "renewal_reminders",
        sa.Column("lease_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("offset_days", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("sent_on", sa.Date(), nullable=False),
        sa.Column("recipient_id", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=24), nullable=False),
        sa.Column("priority", sa.Boolean(), nullable=False),
        sa.Column("notification_key", sa.String(length=200), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["lease_id"],
            ["leases.id"],
        ),
        sa.ForeignKeyConstraint(
            ["recipient_id"],
            ["staff.id"],
        ),
        sa.PrimaryKeyConstraint("lease_id", "kind", "offset_days"),
    )
    op.create_table(
        "rent_steps",
        sa.Column("lease_id", sa.String(length=64), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("monthly_cents", sa.BigInteger(), nullable=False),
        sa.Column("free", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["lease_id"],
            ["leases.id"],
        ),
        sa.PrimaryKeyConstraint("lease_id", "starts_on"),
    )
    op.create_table(
        "statement_access",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("unit_id", sa.String(length=64), nullable=False),
        sa.Column("lease_id", sa.String(length=64), nullable=False),
        sa.Column("granted_on", sa.Date(), nullable=False),
        sa.Column("revoked_on", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["lease_id"],
            ["leases.id"],
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["units.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_statement_access_tenant_unit",
        "statement_access",
        ["tenant_id", "unit_id"],
        unique=False,
    )
    op.create_table(
        "collection_events",
        sa.Column("invoice_id", sa.String(length=80), nullable=False),
        sa.Column("step", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("action", sa.String(length=24), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("happened_on", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("recipient", sa.String(length=200), nullable=False),
        sa.Column("outcome", sa.String(length=24), nullable=False),
        sa.Column("notification_key", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
        ),
        sa.PrimaryKeyConstraint("invoice_id", "step"),
    )
    op.create_table(
        "deposit_deductions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("refund_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("cents", sa.BigInteger(), nullable=False),
        sa.Column("evidence_uri", sa.String(length=500), nullable=False),
        sa.Column("evidence_sha256", sa.String(length=64), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["refund_id"],
            ["deposit_refunds.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_deposit_deductions_refund_id"), "deposit_deductions", ["refund_id"], unique=False
    )
    op.create_table(
        "deposit_sla_flags",
        sa.Column("refund_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("flagged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("waited_hours", sa.Integer(), nullable=False),
        sa.Column("sla_hours", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["refund_id"],
            ["deposit_refunds.id"],
        ),
        sa.PrimaryKeyConstraint("refund_id", "step"),
    )
    op.create_table(
        "invoice_lines",
        sa.Column("invoice_id", sa.String(length=80), nullable=False),
        sa.Column("line_no", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("lease_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("covers_from", sa.Date(), nullable=True),
        sa.Column("covers_to", sa.Date(), nullable=True),
        sa.Column("cents", sa.BigInteger(), nullable=False),
        sa.Column("ref", sa.String(length=80), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
        ),
        sa.ForeignKeyConstraint(
            ["lease_id"],
            ["leases.id"],
        ),
        sa.PrimaryKeyConstraint("invoice_id", "line_no"),
        sa.UniqueConstraint("lease_id", "kind", "covers_from", name="uq_invoice_lines_once"),
    )
    op.create_table(
        "payment_allocations",
        sa.Column("payment_id", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.String(length=80), nullable=False),
        sa.Column("cents", sa.BigInteger(), nullable=False),
        sa.Column("allocated_on", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
        ),
        sa.PrimaryKeyConstraint("payment_id", "invoice_id"),
    )
    op.create_index(
        op.f("ix_payment_allocations_invoice_id"),
        "payment_allocations",
        ["invoice_id"],
        unique=False,
    )
    op.create_table(
        "utility_billings",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("unit_id", sa.String(length=64), nullable=False),
        sa.Column("party", sa.String(length=64), nullable=False),
        sa.Column("invoice_id", sa.String(length=80), nullable=False),
        sa.Column("cents", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "unit_id", "party"),
    )


def downgrade() -> None:
    op.drop_table("utility_billings")
    op.drop_index(op.f("ix_payment_allocations_invoice_id"), table_name="payment_allocations")
    op.drop_table("payment_allocations")
    op.drop_table("invoice_lines")
    op.drop_table("deposit_sla_flags")
    op.drop_index(op.f("ix_deposit_deductions_refund_id"), table_name="deposit_deductions")
    op.drop_table("deposit_deductions")
    op.drop_table("collection_events")
    op.drop_index("ix_statement_access_tenant_unit", table_name="statement_access")
    op.drop_table("statement_access")
    op.drop_table("rent_steps")
    op.drop_table("renewal_reminders")
    op.drop_index(op.f("ix_renewal_offers_lease_id"), table_name="renewal_offers")
    op.drop_table("renewal_offers")
    op.drop_index(op.f("ix_payments_lease_id"), table_name="payments")
    op.drop_table("payments")
    op.drop_index(op.f("ix_lease_transitions_lease_id"), table_name="lease_transitions")
    op.drop_table("lease_transitions")
    op.drop_index(op.f("ix_lease_tasks_lease_id"), table_name="lease_tasks")
    op.drop_index(op.f("ix_lease_tasks_kind"), table_name="lease_tasks")
    op.drop_table("lease_tasks")
    op.drop_index(op.f("ix_invoices_status"), table_name="invoices")
    op.drop_table("invoices")
    op.drop_index(op.f("ix_deposit_refunds_state"), table_name="deposit_refunds")
    op.drop_table("deposit_refunds")
    op.drop_index(op.f("ix_credit_entries_lease_id"), table_name="credit_entries")
    op.drop_table("credit_entries")
    op.drop_table("unit_profiles")
    op.drop_index(op.f("ix_repair_complaints_tenant_id"), table_name="repair_complaints")
    op.drop_table("repair_complaints")
    op.drop_index(op.f("ix_leases_unit_id"), table_name="leases")
    op.drop_index(op.f("ix_leases_tenant_id"), table_name="leases")
    op.drop_index(op.f("ix_leases_status"), table_name="leases")
    op.drop_index(op.f("ix_leases_parent_id"), table_name="leases")
    op.drop_table("leases")
    op.drop_table("tenants")
    op.drop_table("staff")
    op.drop_index(op.f("ix_notification_outbox_status"), table_name="notification_outbox")
    op.drop_table("notification_outbox")
    op.drop_table("lease_policies")
    op.drop_table("cpi_indices")
