"""Who may call which route: the one table of access policies, and the check that applies it
to every request.

Each route of the app is named in :data:`POLICIES`; a route without a policy is refused to
everybody (and fails the authorization matrix test). Staff sign in with a browser session
cookie (HttpOnly, SameSite=Lax, Secure over HTTPS) or an API bearer token; a browser
session's unsafe requests carry its CSRF token (form field ``csrf`` or header
``X-CSRF-Token``), which the registry keeps with the session. Site scope (a finance or
engineer account acts on its own sites) and building scope (a manager acts on some buildings
of a site) are checked by the services on each record they touch, and a record out of scope
is reported as not found. Which fields of a lease a role sees is
:mod:`cloud.staff.visibility`'s policy (docs/roles.md).
"""

from __future__ import annotations

import hmac
from dataclasses import replace
from enum import StrEnum

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from cloud.apportion.site_import import SITE_IMPORT_ROLES
from cloud.leases.offers import APPROVER_ROLES, OFFER_READ_ROLES, OFFER_ROLES
from cloud.leases.queue import OVERSEER_ROLES, QUEUE_ROLES
from cloud.leases.reports import REPORT_ROLES, Report
from cloud.staff.accounts import (
    ENGINEER_ROLES,
    FINANCE_ROLES,
    LEASE_ROLES,
    LEDGER_ROLES,
    PAYMENT_ROLES,
    POLICY_ROLES,
    RISK_ROLES,
    Principal,
    Role,
    SessionKind,
)

SESSION_COOKIE = "mf_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Access(StrEnum):
    """The kinds of access a route grants."""

    PUBLIC = "public"  # anybody (health check, OpenAPI, sign-in, provisioning by claim token)
    TENANT_LINK = "tenant_link"  # whoever holds the statement link in the path
    STAFF = "staff"  # any signed-in staff member
    FINANCE = "finance"  # admin, finance
    ENGINEER = "engineer"  # admin, engineer
    ADMIN = "admin"  # admin
    LEASES = "leases"  # admin, finance, manager, supervisor, legal
    RISK = "risk"  # admin, finance, manager, supervisor
    PAYMENTS = "payments"  # admin, finance, manager, supervisor
    QUEUE = "queue"  # admin, manager, supervisor, legal: their work queue
    OVERSIGHT = "oversight"  # admin, supervisor: everybody's overdue items
    OFFERS_READ = "offers_read"  # admin, finance, manager, supervisor
    OFFERS = "offers"  # admin, manager, supervisor: make offers, move them along
    APPROVALS = "approvals"  # admin, supervisor: approve or reject out-of-band offers
    LEDGER = "ledger"  # admin, manager, supervisor: change leases (import, sign ...)
    POLICIES = "policies"  # admin, supervisor (lease policies of sites, lease overrides)
    CREDIT_APPROVAL = "credit_approval"  # admin, finance, supervisor (never the requester)
    REPORTS = "reports"  # admin, finance, manager, supervisor, legal
    PORTFOLIO_REPORTS = "portfolio_reports"  # admin, finance, manager, supervisor
    SITES = "sites"  # admin, finance, engineer: a site's set-up (import, export)


#: The roles each staff access admits.
ROLES: dict[Access, frozenset[Role]] = {
    Access.STAFF: frozenset(Role),
    Access.FINANCE: FINANCE_ROLES,
    Access.ENGINEER: ENGINEER_ROLES,
    Access.ADMIN: frozenset({Role.ADMIN}),
    Access.LEASES: LEASE_ROLES,
    Access.RISK: RISK_ROLES,
    Access.PAYMENTS: PAYMENT_ROLES,
    Access.QUEUE: QUEUE_ROLES,
    Access.OVERSIGHT: OVERSEER_ROLES,
    Access.OFFERS_READ: OFFER_READ_ROLES,
    Access.OFFERS: OFFER_ROLES,
    Access.APPROVALS: APPROVER_ROLES,
    Access.LEDGER: LEDGER_ROLES,
    Access.POLICIES: POLICY_ROLES,
    Access.CREDIT_APPROVAL: frozenset({Role.ADMIN, Role.FINANCE, Role.SUPERVISOR}),
    Access.REPORTS: REPORT_ROLES[Report.EXPIRING],
    Access.PORTFOLIO_REPORTS: REPORT_ROLES[Report.OCCUPANCY],
    Access.SITES: SITE_IMPORT_ROLES,
}

#: Route name → access. Route names are the handlers' function names.
POLICIES: dict[str, Access] = {
    # public
    "healthz": Access.PUBLIC,
    "openapi": Access.PUBLIC,
    "static": Access.PUBLIC,
    "provision": Access.PUBLIC,
    "login_page": Access.PUBLIC,
    "login_form": Access.PUBLIC,
    "api_sign_in": Access.PUBLIC,
    # tenants, by statement link
    "tenant_page": Access.TENANT_LINK,
    "tenant_statement_csv": Access.TENANT_LINK,
    "tenant_confirm_form": Access.TENANT_LINK,
    "tenant_dispute_form": Access.TENANT_LINK,
    "tenant_language_form": Access.TENANT_LINK,
    "api_tenant_statement": Access.TENANT_LINK,
    "api_tenant_confirm": Access.TENANT_LINK,
    "api_tenant_dispute": Access.TENANT_LINK,
    "api_tenant_language": Access.TENANT_LINK,
    # any staff member
    "home": Access.STAFF,
    "logout_form": Access.STAFF,
    "api_sign_out": Access.STAFF,
    "api_me": Access.STAFF,
    "password_page": Access.STAFF,
    "password_form": Access.STAFF,
    "api_password_change": Access.STAFF,
    # finance
    "runs_page": Access.FINANCE,
    "run_page": Access.FINANCE,
    "run_confirm_page": Access.FINANCE,
    "run_action_form": Access.FINANCE,
    "statement_print_page": Access.FINANCE,
    "run_print_page": Access.FINANCE,
    "disputes_page": Access.FINANCE,
    "dispute_resolve_form": Access.FINANCE,
    "api_runs": Access.FINANCE,
    "api_run": Access.FINANCE,
    "api_run_action": Access.FINANCE,
    "api_run_statement": Access.FINANCE,
    "api_run_lines_csv": Access.FINANCE,
    "api_run_lines_xlsx": Access.FINANCE,
    "api_disputes": Access.FINANCE,
    "api_dispute_resolve": Access.FINANCE,
    "close_page": Access.FINANCE,
    "close_form": Access.FINANCE,
    "api_close": Access.FINANCE,
    "manual_reading_form": Access.FINANCE,
    "close_again_form": Access.FINANCE,
    "api_close_again": Access.FINANCE,
    # the CPI series CPI-linked rents rise by (decision 0042)
    "cpi_page": Access.FINANCE,
    "cpi_set_form": Access.FINANCE,
    "cpi_upload_form": Access.FINANCE,
    "api_cpi": Access.FINANCE,
    "api_cpi_set": Access.FINANCE,
    "api_cpi_import": Access.FINANCE,
    # the move-out risk list: finance, managers and supervisors
    "risk_page": Access.RISK,
    "api_risk_leases": Access.RISK,
    # leases: finance, managers, supervisors, legal (fields per cloud/staff/visibility.py)
    "leases_page": Access.LEASES,
    "lease_page": Access.LEASES,
    "api_leases": Access.LEASES,
    "api_lease": Access.LEASES,
    "api_lease_history": Access.LEASES,
    "api_lease_payment": Access.PAYMENTS,
    "lease_payment_form": Access.PAYMENTS,
    "api_site_import": Access.SITES,
    "api_site_export": Access.SITES,
    "site_import_page": Access.SITES,
    "site_import_form": Access.SITES,
    # the work queue and renewal offers (decision 0034)
    "queue_page": Access.QUEUE,
    "queue_overdue_page": Access.OVERSIGHT,
    "queue_ack_form": Access.QUEUE,
    "queue_done_form": Access.QUEUE,
    "api_queue": Access.QUEUE,
    "api_queue_overdue": Access.OVERSIGHT,
    "api_queue_ack": Access.QUEUE,
    "api_queue_done": Access.QUEUE,
    "offers_page": Access.OFFERS_READ,
    "offer_form": Access.OFFERS,
    "offer_move_form": Access.OFFERS,
    "offer_decide_form": Access.APPROVALS,
    "api_offer_suggestion": Access.OFFERS_READ,
    "api_offer_make": Access.OFFERS,
    "api_offers": Access.OFFERS_READ,
    "api_offers_funnel": Access.OFFERS_READ,
    "api_offer_approve": Access.APPROVALS,
    "api_offer_reject": Access.APPROVALS,
    "api_offer_invite": Access.OFFERS,
    "api_offer_negotiate": Access.OFFERS,
    "api_offer_sign": Access.OFFERS,
    "api_offer_lose": Access.OFFERS,
    # the lease ledger and lease operations: admin, managers, supervisors (decision 0032)
    "api_ledger_template": Access.LEASES,
    "api_ledger_export": Access.LEDGER,
    "api_ledger_import": Access.LEDGER,
    "ledger_import_page": Access.LEDGER,
    "ledger_import_form": Access.LEDGER,
    "api_lease_sign": Access.LEDGER,
    "api_lease_handover": Access.LEDGER,
    "api_lease_renew": Access.LEDGER,
    "api_lease_terminate": Access.LEDGER,
    "lease_sign_form": Access.LEDGER,
    "lease_handover_form": Access.LEDGER,
    "lease_renew_form": Access.LEDGER,
    "lease_terminate_form": Access.LEDGER,
    "policies_page": Access.LEASES,
    "api_policies": Access.LEASES,
    "api_lease_policy": Access.LEASES,
    "api_policy_create": Access.POLICIES,
    "policy_form": Access.POLICIES,
    "api_lease_policy_overrides": Access.POLICIES,
    # bank statements and credit notes (decision 0033)
    "bank_page": Access.PAYMENTS,
    "bank_upload_form": Access.PAYMENTS,
    "bank_assign_form": Access.PAYMENTS,
    "bank_dismiss_form": Access.PAYMENTS,
    "api_bank_statement_import": Access.PAYMENTS,
    "api_bank_lines": Access.PAYMENTS,
    "api_bank_line_assign": Access.PAYMENTS,
    "api_bank_line_dismiss": Access.PAYMENTS,
    "credit_notes_page": Access.PAYMENTS,
    "credit_note_request_form": Access.PAYMENTS,
    "credit_note_decide_form": Access.CREDIT_APPROVAL,
    "api_credit_notes": Access.PAYMENTS,
    "api_credit_note_request": Access.PAYMENTS,
    "api_credit_note_approve": Access.CREDIT_APPROVAL,
    "api_credit_note_reject": Access.CREDIT_APPROVAL,
    # deposit refunds (decision 0041): read by finance, managers, supervisors; requested,
    # deducted, inspected and settled by managers and supervisors; approved by finance and
    # supervisors (never who settled); paid by finance (cloud/leases/deposit_desk.py)
    "deposits_page": Access.PAYMENTS,
    "deposit_page": Access.PAYMENTS,
    "api_deposits": Access.PAYMENTS,
    "api_deposit": Access.PAYMENTS,
    "api_deposit_evidence": Access.PAYMENTS,
    "api_deposit_request": Access.LEDGER,
    "deposit_request_form": Access.LEDGER,
    "api_deposit_deduct": Access.LEDGER,
    "deposit_deduct_form": Access.LEDGER,
    "api_deposit_deduction_remove": Access.LEDGER,
    "deposit_deduction_remove_form": Access.LEDGER,
    "api_deposit_inspect": Access.LEDGER,
    "deposit_inspect_form": Access.LEDGER,
    "api_deposit_settle": Access.LEDGER,
    "deposit_settle_form": Access.LEDGER,
    "api_deposit_approve": Access.CREDIT_APPROVAL,
    "deposit_approve_form": Access.CREDIT_APPROVAL,
    "api_deposit_pay": Access.FINANCE,
    "deposit_pay_form": Access.FINANCE,
    # lease reports (decision 0035): expiring and aging for every lease role, occupancy and
    # the collections funnel not for legal (cloud/leases/reports.py REPORT_ROLES)
    "reports_page": Access.REPORTS,
    "report_expiring_page": Access.REPORTS,
    "report_aging_page": Access.REPORTS,
    "api_report_expiring": Access.REPORTS,
    "api_report_aging": Access.REPORTS,
    "report_occupancy_page": Access.PORTFOLIO_REPORTS,
    "report_collections_page": Access.PORTFOLIO_REPORTS,
    "api_report_occupancy": Access.PORTFOLIO_REPORTS,
    "api_report_collections": Access.PORTFOLIO_REPORTS,
    "api_report_recipients": Access.ADMIN,
    "api_report_recipients_change": Access.ADMIN,
    "report_recipients_form": Access.ADMIN,
    # engineers
    "gateways_page": Access.ENGINEER,
    "gateway_page": Access.ENGINEER,
    "gateway_command_form": Access.ENGINEER,
    "claim_token_page": Access.ENGINEER,
    "claim_token_form": Access.ENGINEER,
    "api_gateways": Access.ENGINEER,
    "api_gateway": Access.ENGINEER,
    "api_gateway_command": Access.ENGINEER,
    "api_claim_token": Access.ENGINEER,
    "gateway_revoke_page": Access.ENGINEER,
    "gateway_revoke_form": Access.ENGINEER,
    "api_gateway_revoke": Access.ENGINEER,
    # admin
    "accounts_page": Access.ADMIN,
    "account_form": Access.ADMIN,
    "api_accounts": Access.ADMIN,
    "api_account_create": Access.ADMIN,
    "replacements_page": Access.ADMIN,
    "replacement_form": Access.ADMIN,
    "api_replacements": Access.ADMIN,
    "api_replacement_decide": Access.ADMIN,
    "account_disable_form": Access.ADMIN,
    "account_enable_form": Access.ADMIN,
    "account_unlock_form": Access.ADMIN,
    "source_unlock_form": Access.ADMIN,
    "api_account_disable": Access.ADMIN,
    "api_account_enable": Access.ADMIN,
    "api_account_unlock": Access.ADMIN,
    "api_sign_in_locks": Access.ADMIN,
    "api_source_unlock": Access.ADMIN,
}


class NotSignedIn(Exception):
    """No valid session or token (401; a page redirects to the sign-in form)."""


class Forbidden(Exception):
    """Signed in, but the role does not admit the route, or the CSRF token is missing (403)."""


def is_api(request: Request) -> bool:
    """Whether the request is for the JSON API (else a page)."""
    return request.url.path.startswith("/api/")


def route_access(request: Request) -> Access | None:
    """The policy of the route the request matched (None when it has none)."""
    route = request.scope.get("route")
    return POLICIES.get(getattr(route, "name", ""))


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def authorize(request: Request) -> None:
    """App-wide dependency: apply the route's policy; the principal goes to request.state."""
    request.state.principal = None
    access = route_access(request)
    if access is None:
        raise Forbidden("this route has no access policy")
    if access in (Access.PUBLIC, Access.TENANT_LINK):
        return
    accounts = request.app.state.web.accounts
    bearer = bearer_token(request)
    who: Principal | None
    if bearer is not None:
        who = await run_in_threadpool(accounts.principal, bearer, SessionKind.API)
    else:
        who = await run_in_threadpool(
            accounts.principal, request.cookies.get(SESSION_COOKIE, ""), SessionKind.COOKIE
        )
    if who is None:
        raise NotSignedIn("sign in first")
    if who.role not in ROLES[access]:
        raise Forbidden(f"the {who.role.value} role may not use this")
    if who.via is SessionKind.COOKIE and request.method not in _SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            sent = str((await request.form()).get(CSRF_FIELD, ""))
        if not sent or not hmac.compare_digest(sent, who.csrf):
            raise Forbidden("the form's CSRF token is missing or stale; reload the page")
    host = request.client.host if request.client else "unknown"
    surface = "api" if who.via is SessionKind.API else "web"
    request.state.principal = replace(who, origin=f"{surface} {host}")
