"""The case file: one whole small apportionment problem in YAML, validated, as engine inputs.

A case holds the period, the registers, units, meters (installations), the meter tree with
its rules, occupancy, readings, history, daily drivers, tariff versions, the utility bill
and the policy (docs/apportionment.md documents every field with a worked example).

Modules, each importing only those above it:

- ``canonical``: canonical JSON, the bytes a run's inputs are hashed over (and signed);
- ``schema``: the file's schema, one pydantic record per section and the whole file's
  fields with their derived views (:class:`~cloud.apportion.case.schema.CaseSchema`);
- ``validation``: the cross-field checks (:func:`~cloud.apportion.case.validation.check_case`);
- ``conversion``: a valid case as engine inputs
  (:func:`~cloud.apportion.case.conversion.build_engine_inputs`);
- ``document``: :class:`~cloud.apportion.case.document.Case`, the schema with its checks,
  canonical form, input hash and engine inputs;
- ``loading``: :func:`~cloud.apportion.case.loading.load_case` /
  :func:`~cloud.apportion.case.loading.parse_case` /
  :func:`~cloud.apportion.case.loading.case_from_data`.

Dates are the site's local calendar (Asia/Shanghai by default); readings are the meters'
frozen values at local midnight, so a reading is dated by the day it opens.
"""
