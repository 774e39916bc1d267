"""检查检验结果互认 reminders (方式二, our own reminder client) — interfaces.md §A10.

`catalog` loads the 互认 item catalog, the hospital's local maps and the eligibility rule table
(all data, `config/recognition.yaml`); `engine.Recognizer` answers "which external results may this
order cite instead of being repeated" from the shared store, read as the external data page reads it.
"""
