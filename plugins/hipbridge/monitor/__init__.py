"""Go-live operations: `doctor` (is this front-end machine ready?) and alerts (is it still healthy?).

`config/monitoring.yaml` holds every threshold and channel; nothing here is province-specific.
"""
