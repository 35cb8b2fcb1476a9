"""The staff pages' navigation: one list of the pages a person starts from, each shown to
the roles its route admits (:data:`cloud.web.authz.POLICIES`), in the header of every page
and on the home page. A page is offered exactly when its route lets the role in."""

from __future__ import annotations

from cloud.staff.accounts import Principal
from cloud.web.authz import POLICIES, ROLES

#: (path, label key, route name), in the order the header shows them.
NAV: tuple[tuple[str, str, str], ...] = (
    ("/finance/runs", "nav_runs", "runs_page"),
    ("/finance/close", "nav_close", "close_page"),
    ("/finance/disputes", "nav_disputes", "disputes_page"),
    ("/finance/risk", "nav_risk", "risk_page"),
    ("/cpi", "nav_cpi", "cpi_page"),
    ("/leases", "nav_leases", "leases_page"),
    ("/policies", "nav_policies", "policies_page"),
    ("/leases/import", "nav_ledger", "ledger_import_page"),
    ("/reports", "nav_reports", "reports_page"),
    ("/queue", "nav_queue", "queue_page"),
    ("/offers", "nav_offers", "offers_page"),
    ("/payments/bank", "nav_bank", "bank_page"),
    ("/payments/credit-notes", "nav_credit_notes", "credit_notes_page"),
    ("/deposits", "nav_deposits", "deposits_page"),
    ("/sites/import", "nav_sites", "site_import_page"),
    ("/engineer/gateways", "nav_gateways", "gateways_page"),
    ("/engineer/claim-tokens", "nav_claim", "claim_token_page"),
    ("/admin/accounts", "nav_accounts", "accounts_page"),
    ("/admin/replacements", "nav_replacements", "replacements_page"),
)


def nav_links(principal: Principal | None) -> list[tuple[str, str]]:
    """(path, label key) of the pages ``principal``'s role may open, in header order."""
    if principal is None:
        return []
    return [(p, key) for p, key, route in NAV if principal.role in ROLES[POLICIES[route]]]


__all__ = ["NAV", "nav_links"]
