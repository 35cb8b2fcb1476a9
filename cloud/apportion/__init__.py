"""Apportionment (公摊): split a utility bill over the units of a meter tree, to the cent.

Layers, one direction only:

- ``consumption``, ``estimation``, ``money``, ``rounding``, ``tree``, ``keys``, ``lines``,
  ``allocation``: pure numpy functions over meters × day boundaries × registers (no
  database, no I/O);
- ``engine_inputs`` / ``engine_result``: the engine's input and result records;
  ``checks``: the run's flags (tariffs, bill, node balances);
- ``engine``: the whole computation on arrays (:func:`engine.apportion`);
- ``case``: the YAML case file (a subpackage: schema, validation, conversion to engine
  inputs, loading);
- ``statement``: per-unit statements, signed (JWS EdDSA), JSON and CSV;
- ``models`` / ``runs``: registry tables and the run lifecycle (draft → posted → void);
- ``cli``: ``meterflow cloud apportion CASE.yaml``.

See docs/domain.md §4 for the rules and docs/apportionment.md for the case file format.
"""
