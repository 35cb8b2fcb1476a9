"""Move-out risk, tenant health score and vacancy forecast (docs/vacancy.md).

Features are computed as of a cutoff date from the series store (daily use) and the lease
ledger, with nothing dated after the cutoff; a calibrated logistic model trained on past
lease outcomes scores active leases, the docs/domain.md §5 health score stands beside it as the
explainable baseline, and the forecast turns the probabilities into expected vacant units
per building and month.
"""
