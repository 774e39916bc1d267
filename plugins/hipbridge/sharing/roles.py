"""The caller roles of our web endpoints, apart from the guard so the CLI can list them cheaply.

`hipbridge door-token --role` offers these choices when the parser is built, for every command:
importing them must not pull in FastAPI (about a second of start-up for `hipbridge run` on this
machine). The guard itself is `hipbridge.sharing.callers`.
"""

ROLES: dict[str, str] = {
    "booking": "预约挂号系统 (预约授权入口)",
    "workstation": "医生工作站 (外院数据展示)",
    "admin": "管理员 (接口说明、管理接口)",
}
