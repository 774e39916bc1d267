"""A MariaDB source hospital for transfer tests: one table generated inside MariaDB, and its spec.

Used by tests/test_transfer*.py. The source lives in its own database on this machine's MariaDB;
the specs are real YAML in a temporary folder with the project's `_defaults.yaml`.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]

SPEC = """\
table: visit
label: 门诊就诊记录
source:
  system: his
  connection: src
  query: "SELECT * FROM visit_src"
  watermark: {column: upd, lookback: 10m}
  void: {column: status, values: ["C"]}
  chunk_rows: %(chunk)d
target: {name: MZJZJL, primary_key: [YLJGDM, JZLSH]}
columns:
  - {name: JZLSH, label: 门诊就诊流水号, type: varchar(32), required: true, from: id}
  - {name: HZWYBSH, label: 患者唯一标识号, type: varchar(32), required: true, from: pid}
  - {name: XM, label: 患者姓名, type: varchar(4), from: name, sensitive: true}
  - name: XBDM
    label: 性别代码
    type: varchar(2)
    from: sex
    codes: {domain: GB/T 2261.1, name_column: XBMC}
  - {name: XBMC, label: 性别名称, type: varchar(20)}
  - {name: CSRQ, label: 出生日期, type: date, from: birth}
  - {name: JZKSSJ, label: 就诊开始时间, type: timestamp, required: true, from: start_time}
  - {name: JE, label: 挂号费, type: 'decimal(6,2)', from: fee}
  - {name: CFS, label: 处方数, type: integer, from: n}
  - {name: BZ, label: 备注, type: text, from: note}
"""

DDL = """
CREATE TABLE visit_src (
  id VARCHAR(32) PRIMARY KEY, pid VARCHAR(32), name VARBINARY(64), sex VARCHAR(4), birth VARCHAR(32),
  start_time VARCHAR(32), fee DECIMAL(12,2), n INT, note TEXT, status CHAR(1), upd DATETIME NOT NULL,
  KEY ix_upd (upd)
) CHARACTER SET utf8mb4
"""

FILL = """
INSERT INTO visit_src
SELECT CONCAT('V', LPAD(seq, 9, '0')), CONCAT('P', seq MOD 5000), CONVERT(ELT(1 + seq MOD 3, '张三', '李四', '王小五') USING utf8mb4),
       ELT(1 + seq MOD 2, '1', '2'), DATE_FORMAT(DATE '1950-01-01' + INTERVAL seq MOD 20000 DAY, '%%Y-%%m-%%d'),
       DATE_FORMAT(TIMESTAMP '2026-11-01 08:00:00' + INTERVAL seq SECOND, '%%Y-%%m-%%d %%H:%%i:%%s'),
       (seq MOD 500) / 4, seq MOD 9, IF(seq MOD 7 = 0, NULL, CONCAT('备注\\t', seq)),
       IF(seq MOD 40 = 0, 'C', 'N'),
       TIMESTAMP '2026-11-01 00:00:00' + INTERVAL (seq * %(spread)d) SECOND
FROM seq_1_to_%(rows)d
"""


class SourceHospital:
    """A MariaDB database with `visit_src`, plus a spec folder pointing at it."""

    def __init__(self, admin_url: str, name: str, root: Path, rows: int, chunk: int = 1000, spread: int = 7):
        self.admin_url = admin_url
        self.name = name
        self.url = f"{admin_url.rstrip('/')}/{name}?charset=utf8mb4"
        self.specs = root / "specs"
        self.specs.mkdir(parents=True)
        # these tests compare every source row with the front-end, so a row voided before its first
        # upload is sent too (as 修改标志 3) instead of skipped
        defaults = (ROOT / "table_specs" / "_defaults.yaml").read_text(encoding="utf-8")
        (self.specs / "_defaults.yaml").write_text(defaults.replace("first_seen_voided: skip", "first_seen_voided: send"),
                                                   encoding="utf-8")
        (self.specs / "visit.yaml").write_text(SPEC % {"chunk": chunk}, encoding="utf-8")
        admin = create_engine(admin_url)
        with admin.begin() as c:
            c.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
        admin.dispose()
        self.engine = create_engine(self.url)
        with self.engine.begin() as c:
            c.execute(text(DDL))
            if rows:
                c.exec_driver_sql((FILL % {"rows": rows, "spread": spread}).replace("%", "%%"))

    def execute(self, sql: str, params: dict | None = None) -> None:
        with self.engine.begin() as c:
            c.execute(text(sql), params or {})

    def drop(self) -> None:
        self.engine.dispose()
        admin = create_engine(self.admin_url)
        with admin.begin() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS `{self.name}`"))
        admin.dispose()


class FlakyProxy:
    """A TCP proxy to a database server that can be cut (connections dropped, port closed) and restored."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.listener.listen(32)
        self.up = True
        self.bytes = 0  # both directions, to cut mid-transfer
        self.cut_after: int | None = None
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._socks += [client, server]
            threading.Thread(target=self._pipe, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                data = a.recv(65536)
                if not data or not self.up:
                    break
                b.sendall(data)
                self.bytes += len(data)
                if self.cut_after is not None and self.bytes > self.cut_after:
                    self.cut()
                    break
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self) -> None:
        """Drop every open connection and refuse new ones (the server 'goes away')."""
        self.up = False
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def restore(self) -> None:
        self.cut_after = None
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()
