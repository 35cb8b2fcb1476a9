"""Leases (DOMAIN.md §5): contracts and their states, rent plans, billing, payments,
collections, renewals, deposits, occupancy, and the jobs that run them.

Modules:

- ``terms``, ``periods``, ``money``, ``schedule``: pure (validated terms, the local
  calendar, cents and rounding, rent plans and proration);
- ``models``: registry tables (revision 0004); ``reference``: tenants, staff, unit
  profiles, policies, CPI; ``plans``: a lease's compiled rent plan in the registry;
- ``lifecycle``: the state machine, its audit and what a handover, renewal or termination
  does elsewhere (meters, statement access, billing);
- services on a Session with an explicit ``today``: ``billing``, ``utilities`` (posted
  apportionment amounts), ``payments``, ``dunning`` (late fees and the collections
  ladder), ``renewals``, ``deposits``, ``occupancy``;
- ``jobs``: the monthly billing run and the daily run; ``cli``: ``meterflow cloud bill``
  and ``meterflow cloud daily``.

Notifications leave through :mod:`cloud.notify` (channels and the outbox).
"""
