"""Airflow 3 UI plugin of hipbridge: 数据质控 in Airflow's navigation.

`fastapi_apps` mounts hipbridge's page on the api-server under /hipbridge (it checks Airflow's own
authentication); `external_views` adds the navigation entry whose page, /plugin/hipbridge in the UI,
frames it. Details: plugins/hipbridge/airflow/ui.py.
"""

from __future__ import annotations

from typing import ClassVar

from airflow.plugins_manager import AirflowPlugin
from hipbridge.airflow.ui import create_app


class HipbridgeUIPlugin(AirflowPlugin):
    name = "hipbridge"
    fastapi_apps: ClassVar[list[dict]] = [{"app": create_app(), "url_prefix": "/hipbridge", "name": "hipbridge 数据质控"}]
    # a top-level entry in the navigation bar: the hospital's staff should not have to look for it
    external_views: ClassVar[list[dict]] = [{"name": "数据质控", "href": "hipbridge/", "destination": "nav",
                                             "url_route": "hipbridge", "nav_top_level": True}]
