"""每周巡检报告 (weekly inspection report): what hipbridge recorded over one ISO week, read back from the
operations schema and the front-end, with configuration drift against last week and recommendations.

`collect.py` reads (one function per area), `drift.py` hashes the watched configuration, `store.py`
keeps each week's report summary and hashes in the ops schema, `report.py` renders HTML + XLSX.
"""
