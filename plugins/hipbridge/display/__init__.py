"""外院数据展示: other hospitals' data at the point of care (interfaces.md §A9).

Launched from the doctor workstation (`launch`), authorized and audited on every call, read from
the shared store (`records`), shown as a Chinese page and a JSON API (`app`). The 互认 reminder
client reuses launch, audit and page (`purpose: RECOGNIZE`).
"""
