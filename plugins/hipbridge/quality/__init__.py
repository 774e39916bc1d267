"""Data quality (数据质量): rules generated from specs + custom YAML, SQL push-down engine, gate, scores, report.

Modules: `config` (expectations/*.yaml), `rules` (templates → rules), `engine` (evaluate, OHDSI
statuses), `gate` (the transfer path's batch gate), `check` (whole tables), `scoring`, `store`
(ops schema), `report` (HTML/XLSX), `gx` (the same rules through Great Expectations 1.x),
`gb11643` (ID numbers). Nothing heavy is imported here.
"""
