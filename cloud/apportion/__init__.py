"""Apportionment (公摊): split a utility bill over the units of a meter tree, to the cent.

Layers, one direction only:

- ``consumption``, ``estimation``, ``allocation``, ``money``, ``rounding``: pure numpy
  functions over meters × day boundaries × registers (no database, no I/O);
- ``engine``: the whole computation on arrays (:func:`engine.apportion`);
- ``case``: the YAML case file, validated, turned into engine inputs;
- ``statement``: per-unit statements, signed (JWS EdDSA), JSON and CSV;
- ``models`` / ``runs``: registry tables and the run lifecycle (draft → posted → void);
- ``cli``: ``meterflow cloud apportion CASE.yaml``.

See DOMAIN.md §4 for the rules and docs/apportionment.md for the case file format.
"""
