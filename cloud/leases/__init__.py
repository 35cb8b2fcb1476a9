"""Leases (docs/domain.md §5): contracts and their states, rent plans, billing, payments,
collections, renewals, deposits, occupancy, and the jobs that run them.

Modules:

- ``terms``, ``periods``, ``money``, ``schedule``: pure (validated terms, the local
  calendar, cents and rounding, rent plans and proration);
- ``models``: registry tables (revision 0004) and the lease states; ``reference``: tenants,
  staff, unit profiles, policies, CPI; ``plans``: a lease's compiled rent plan in the registry;
- ``lifecycle``: the state machine, its audit and what a handover, renewal or termination
  does elsewhere (meters, statement access, billing);
- services on a Session with an explicit ``today``: ``billing`` (and ``invoicing``, which
  writes its invoices), ``utilities`` (posted apportionment amounts), ``payments``,
  ``dunning`` (late fees and the collections ladder), ``renewals`` (and ``reminders``),
  ``deposits``, ``occupancy``;
- ``jobs``: the monthly billing run and the daily run, which ``meterflow cloud bill`` and
  ``meterflow cloud daily`` (``meterflow/cli/leases.py``) start.

Notifications leave through :mod:`cloud.notify` (channels and the outbox).
"""
