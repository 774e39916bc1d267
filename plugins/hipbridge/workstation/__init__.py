"""The doctor-workstation web service: one FastAPI app serving the external data page (display/) and
the 互认 reminders (recognition/, CDS Hooks) with one launch, one shared-store reader and one audit
writer. It sits above both parts so that recognition may use the display's launch and records while
the display never imports recognition (tests/test_layering.py)."""
