"""Lay out a replica deployment on disk: app dir, logs, Chroma store, backups.

Everything follows `shared/SERVICE.md` and the guide's backup script: the app dir
holds `.env` (mode 600, fake keys), `data/` with the template JSON, `chroma_db/`
with a SQLite store carrying Chroma's tables and an HNSW segment folder, and
`logs/app.log` with seven rotated days in the service's log format; the backup dir
holds 30 nightly sets made with real `tar -czf`, named `<kind>_YYYYmmdd_HHMMSS`.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import sqlite3
import subprocess
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from opscheck.sandbox import traffic
from opscheck.sandbox.traffic import REQUESTS

BUSINESS_TYPES = ["교육", "의료", "음식점", "쇼핑몰", "서비스업", "금융", "기타"]
SERVICE_TYPES = ["신청", "예약", "주문", "배송", "안내", "확인", "피드백"]
POLICY_DOCS = [
    "alimtalk_content_guide",
    "audit_guide",
    "black_list",
    "white_list",
    "image_guide",
    "item_list_guide",
    "operations_guide",
    "publication_guide",
]
REQUIREMENTS = """\
fastapi==0.104.1
uvicorn[standard]==0.24.0
pydantic==2.5.0
anthropic==0.7.8
openai==1.3.7
langchain==0.0.340
langchain-community==0.0.1
langgraph==0.0.20
chromadb==0.4.18
redis==5.0.1
python-dotenv==1.0.0
httpx==0.25.2
"""
CHROMA_TABLES = """
CREATE TABLE migrations (dir TEXT NOT NULL, version INTEGER NOT NULL, filename TEXT NOT NULL,
  sql TEXT NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (dir, version));
CREATE TABLE embeddings_queue (seq_id INTEGER PRIMARY KEY, created_at TIMESTAMP NOT NULL
  DEFAULT CURRENT_TIMESTAMP, operation INTEGER NOT NULL, topic TEXT NOT NULL, id TEXT NOT NULL,
  vector BLOB, encoding TEXT, metadata TEXT);
CREATE TABLE max_seq_id (segment_id TEXT PRIMARY KEY, seq_id BLOB NOT NULL);
CREATE TABLE tenants (id TEXT PRIMARY KEY, UNIQUE (id));
CREATE TABLE databases (id TEXT PRIMARY KEY, name TEXT NOT NULL, tenant_id TEXT NOT NULL,
  UNIQUE (tenant_id, name));
CREATE TABLE collections (id TEXT PRIMARY KEY, name TEXT NOT NULL, dimension INTEGER,
  database_id TEXT NOT NULL, UNIQUE (name, database_id));
CREATE TABLE collection_metadata (collection_id TEXT REFERENCES collections(id) ON DELETE CASCADE,
  key TEXT NOT NULL, str_value TEXT, int_value INTEGER, float_value REAL,
  PRIMARY KEY (collection_id, key));
CREATE TABLE segments (id TEXT PRIMARY KEY, type TEXT NOT NULL, scope TEXT NOT NULL,
  topic TEXT, collection TEXT REFERENCES collection(id));
CREATE TABLE segment_metadata (segment_id TEXT REFERENCES segments(id) ON DELETE CASCADE,
  key TEXT NOT NULL, str_value TEXT, int_value INTEGER, float_value REAL,
  PRIMARY KEY (segment_id, key));
CREATE TABLE embeddings (id INTEGER PRIMARY KEY, segment_id TEXT NOT NULL,
  embedding_id TEXT NOT NULL, seq_id BLOB NOT NULL, created_at TIMESTAMP NOT NULL
  DEFAULT CURRENT_TIMESTAMP, UNIQUE (segment_id, embedding_id));
CREATE TABLE embedding_metadata (id INTEGER REFERENCES embeddings(id), key TEXT NOT NULL,
  string_value TEXT, int_value INTEGER, float_value REAL, bool_value INTEGER,
  PRIMARY KEY (id, key));
CREATE VIRTUAL TABLE embedding_fulltext_search USING fts5(string_value, tokenize='trigram');
"""


@dataclass(frozen=True)
class Layout:
    """Where a sandbox's parts live below its root directory."""

    root: Path

    @property
    def app(self) -> Path:
        return self.root / "app"

    @property
    def backups(self) -> Path:
        return self.root / "backups" / "kakao-template"

    @property
    def logs(self) -> Path:
        return self.app / "logs"

    @property
    def nginx(self) -> Path:
        return self.root / "nginx"

    @property
    def env_file(self) -> Path:
        return self.app / ".env"

    @property
    def chroma(self) -> Path:
        return self.app / "chroma_db"

    @property
    def template_data(self) -> Path:
        return self.app / "data" / "kakao_template_vectordb_data.json"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def logrotate_conf(self) -> Path:
        return self.root / "etc" / "kakao-template.logrotate"

    @property
    def service_tmp(self) -> Path:
        """The service's own temp dir below the host's (the config's temp_dirs)."""
        return self.root / "tmp" / "kakao-template"


def build(root: Path, now: datetime, requests_per_day: int = 600, seed: int = 7) -> Layout:
    """Write a healthy deployment below `root` as it stands at local time `now`."""
    lay = Layout(root)
    rng = random.Random(seed)
    for d in ("data/cleaned_policies", "logs", "chroma_db", "src/config"):
        (lay.app / d).mkdir(parents=True, exist_ok=True)
    for d in (lay.app / "data", lay.logs, lay.chroma):
        d.chmod(0o755)
    write_env(lay.env_file)
    (lay.app / "requirements.txt").write_text(REQUIREMENTS)
    (lay.app / "src/config/settings.py").write_text(
        'import os\n\nMIN_COMPLIANCE_SCORE = float(os.getenv("MIN_COMPLIANCE_SCORE", "80.0"))\n'
    )
    write_policies(lay.app / "data/cleaned_policies", rng)
    write_template_data(lay.template_data, rng)
    write_chroma(lay.chroma, rng)
    lay.nginx.mkdir(parents=True, exist_ok=True)
    traffic.write_logs(lay.logs, lay.nginx, now, traffic.Traffic(requests=requests_per_day), rng)
    write_source(lay.app)
    write_backups(lay, now, days=30)
    write_logrotate(lay)
    write_temp_files(lay.service_tmp, now)
    return lay


# ---- source, logrotate, temp files (weekly housekeeping and secrets) ---------------------

SOURCE = {
    "src/__init__.py": "",
    "src/api/__init__.py": "",
    "src/api/main.py": (
        "import logging\n\nfrom fastapi import FastAPI\n\n"
        'logger = logging.getLogger(__name__)\napp = FastAPI(title="AlimTalk template generator")\n'
    ),
    "src/utils/__init__.py": "",
    "src/utils/llm_client.py": (
        "import os\n\nfrom anthropic import Anthropic\n\n\n"
        "def client() -> Anthropic:\n"
        '    return Anthropic(api_key=os.environ["ANTHROPIC_API_KEY"])\n'
    ),
    "src/config/logging.yaml": (
        "version: 1\nformatters:\n  default:\n"
        "    format: '%(asctime)s - %(name)s - %(levelname)s - %(message)s'\n"
    ),
    # Kakao's published sandbox token for the examples: flagged by detect-secrets, accepted
    # in .secrets.baseline (a finding the baseline must let pass).
    "src/config/kakao_example.py": 'KAKAO_SANDBOX_SECRET = "kX9vQ2mR7tL4wZ8pN3bF6hJ1"\n',
}
LOGROTATE = """\
# /etc/logrotate.d/kakao-template
{logs}/*.log {{
    daily
    missingok
    rotate 30
    compress
    delaycompress
    notifempty
    create 644 app app
    postrotate
        systemctl reload kakao-template
    endscript
}}
"""


def write_source(app: Path) -> None:
    """A small source tree without secrets, and a detect-secrets baseline for its one
    accepted finding (made by detect-secrets itself)."""
    for rel, text in SOURCE.items():
        (app / rel).parent.mkdir(parents=True, exist_ok=True)
        (app / rel).write_text(text)
    write_secrets_baseline(app, ["src/config/kakao_example.py"])


def write_secrets_baseline(app: Path, files: list[str]) -> None:
    """`.secrets.baseline` accepting every finding in `files`, in detect-secrets' format."""
    from detect_secrets.core import baseline
    from detect_secrets.core.secrets_collection import SecretsCollection

    from opscheck.probes.secrets import _detect_secrets_settings

    with _detect_secrets_settings():
        found = SecretsCollection(root=str(app))
        for rel in files:
            found.scan_file(rel)
        doc = baseline.format_for_output(found)
    (app / ".secrets.baseline").write_text(json.dumps(doc, indent=2) + "\n")


def write_logrotate(lay: Layout) -> None:
    """The guide's /etc/logrotate.d/kakao-template, for the sandbox's log dir."""
    lay.logrotate_conf.parent.mkdir(parents=True, exist_ok=True)
    lay.logrotate_conf.write_text(LOGROTATE.format(logs=lay.logs))


def write_temp_files(folder: Path, now: datetime) -> None:
    """A few of the service's temp files, all made within the last day."""
    folder.mkdir(parents=True, exist_ok=True)
    for n, hours in enumerate((0.5, 3, 20)):
        path = folder / f"upload-{n:04d}.json"
        path.write_text('{"user_request": "피자 주문 완료 안내"}\n')
        t = (now - timedelta(hours=hours)).timestamp()
        os.utime(path, (t, t))


def write_env(path: Path) -> None:
    """A `.env` with fresh fake keys in the real shapes, mode 600."""
    text = (
        f"ANTHROPIC_API_KEY=sk-ant-api03-{secrets.token_urlsafe(70)}\n"
        f"OPENAI_API_KEY=sk-{secrets.token_urlsafe(36)}\n"
        "ENVIRONMENT=production\nLOG_LEVEL=INFO\n"
        "VECTOR_DB_PATH=./chroma_db\n"
        "TEMPLATE_DATA_PATH=./data/kakao_template_vectordb_data.json\n"
        f"REDIS_URL=redis://:{secrets.token_hex(12)}@127.0.0.1:6379/0\n"
        "MIN_COMPLIANCE_SCORE=80.0\nCACHE_TTL_MINUTES=30\nRATE_LIMIT_PER_MINUTE=100\n"
    )
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    path.chmod(0o600)


def env_secrets(path: Path) -> list[str]:
    """The secret values of a sandbox `.env`, for tests that prove none leaks."""
    values = []
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.endswith(("_KEY", "_URL")) and len(value) > 12:
            values.append(value)
    return values


def write_policies(folder: Path, rng: random.Random) -> None:
    for name in POLICY_DOCS:
        lines = [f"# {name}", ""]
        lines += [f"- 알림톡 정책 조항 {i}: 정보성 메시지만 발송할 수 있습니다." for i in range(40)]
        (folder / f"{name}.md").write_text("\n".join(lines) + "\n")


def template_text(rng: random.Random, i: int) -> tuple[str, list[str]]:
    request = REQUESTS[i % len(REQUESTS)]
    variables = rng.sample(["고객명", "주문번호", "예약일시", "상품명", "금액", "매장명"], 3)
    body = (
        f"안녕하세요 #{{{variables[0]}}}님,\n{request} 알림입니다.\n"
        f"- 확인 정보: #{{{variables[1]}}}\n- 일시: #{{{variables[2]}}}\n"
        "문의 사항은 고객센터로 연락 주시기 바랍니다. " * 4
    )
    return body, variables


def write_template_data(path: Path, rng: random.Random, count: int = 449) -> None:
    templates = []
    for i in range(count):
        text, variables = template_text(rng, i)
        templates.append(
            {
                "id": f"template_{i:04d}",
                "text": text,
                "metadata": {
                    "business_type": BUSINESS_TYPES[i % len(BUSINESS_TYPES)],
                    "service_type": SERVICE_TYPES[i % len(SERVICE_TYPES)],
                    "variables": variables,
                    "approved": True,
                },
            }
        )
    doc = {
        "templates": templates,
        "patterns": [{"name": f"pattern_{i}", "regex": "#\\{[^}]+\\}"} for i in range(12)],
        "success_indicators": {"approval_rate": 0.92, "avg_score": 87.5},
        "metadata": {"version": "1.0", "count": count, "source": "kakao business"},
    }
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1))


def write_chroma(folder: Path, rng: random.Random, embeddings: int = 42) -> None:
    """A Chroma persistent store: chroma.sqlite3 with its tables and one HNSW segment."""
    db = folder / "chroma.sqlite3"
    db.unlink(missing_ok=True)
    con = sqlite3.connect(db)
    try:
        con.executescript(CHROMA_TABLES)
        tenant, database = "default_tenant", str(uuid.UUID(int=rng.getrandbits(128)))
        coll = str(uuid.UUID(int=rng.getrandbits(128)))
        vec_seg = str(uuid.UUID(int=rng.getrandbits(128)))
        meta_seg = str(uuid.UUID(int=rng.getrandbits(128)))
        con.execute("INSERT INTO tenants VALUES (?)", (tenant,))
        con.execute(
            "INSERT INTO databases VALUES (?, ?, ?)", (database, "default_database", tenant)
        )
        con.execute(
            "INSERT INTO collections VALUES (?, ?, ?, ?)", (coll, "langchain", 1536, database)
        )
        con.execute(
            "INSERT INTO collection_metadata VALUES (?, 'hnsw:space', 'cosine', NULL, NULL)",
            (coll,),
        )
        con.execute(
            "INSERT INTO segments VALUES (?, 'urn:chroma:segment/vector/hnsw-local-persisted',"
            " 'VECTOR', NULL, ?)",
            (vec_seg, coll),
        )
        con.execute(
            "INSERT INTO segments VALUES (?, 'urn:chroma:segment/metadata/sqlite', 'METADATA',"
            " NULL, ?)",
            (meta_seg, coll),
        )
        for i in range(embeddings):
            doc = POLICY_DOCS[i % len(POLICY_DOCS)]
            text = f"{doc} 조항 {i}: 알림톡은 정보성 메시지만 허용됩니다."
            cur = con.execute(
                "INSERT INTO embeddings (segment_id, embedding_id, seq_id) VALUES (?, ?, ?)",
                (meta_seg, str(uuid.UUID(int=rng.getrandbits(128))), i.to_bytes(8, "big")),
            )
            row = cur.lastrowid
            con.execute(
                "INSERT INTO embedding_metadata (id, key, string_value) VALUES (?, 'source', ?)",
                (row, f"data/cleaned_policies/{doc}.md"),
            )
            con.execute(
                "INSERT INTO embedding_metadata (id, key, string_value) VALUES"
                " (?, 'chroma:document', ?)",
                (row, text),
            )
            con.execute(
                "INSERT INTO embedding_fulltext_search (rowid, string_value) VALUES (?, ?)",
                (row, text),
            )
        con.execute(
            "INSERT INTO max_seq_id VALUES (?, ?)", (vec_seg, embeddings.to_bytes(8, "big"))
        )
        con.commit()
    finally:
        con.close()
    seg = folder / vec_seg
    seg.mkdir(exist_ok=True)
    for name, size in (
        ("header.bin", 100),
        ("data_level0.bin", 42 * 6400),
        ("length.bin", 400),
        ("link_lists.bin", 0),
    ):
        (seg / name).write_bytes(rng.randbytes(size))


# ---- backups ----------------------------------------------------------------------------

KINDS = ("chroma_db", "template_data", "config", "logs")


def backup_names(stamp: str) -> dict[str, str]:
    return {
        "chroma_db": f"chroma_db_{stamp}.tar.gz",
        "template_data": f"template_data_{stamp}.json",
        "config": f"config_{stamp}.tar.gz",
        "logs": f"logs_{stamp}.tar.gz",
    }


def night_stamps(now: datetime, days: int) -> list[datetime]:
    """The 02:00 runs of the nightly backup cron over the last `days` days, oldest first."""
    last = now.replace(hour=2, minute=0, second=0, microsecond=0)
    if last > now:
        last -= timedelta(days=1)
    return [last - timedelta(days=n) for n in range(days - 1, -1, -1)]


def make_set(lay: Layout, dest: Path, stamp: str) -> dict[str, Path]:
    """One backup set, exactly as scripts/backup_database.sh makes it (real tar and gzip)."""
    names = {k: dest / v for k, v in backup_names(stamp).items()}
    tar = ["tar", "-czf"]
    subprocess.run([*tar, names["chroma_db"], "-C", lay.root, "app/chroma_db"], check=True)
    shutil.copyfile(lay.template_data, names["template_data"])
    subprocess.run(
        [*tar, names["config"], "-C", lay.app, ".env", "src/config/", "requirements.txt"],
        check=True,
    )
    subprocess.run([*tar, names["logs"], "-C", lay.app, "logs/"], check=True)
    return names


def write_backups(lay: Layout, now: datetime, days: int) -> None:
    """`days` nightly sets; the newest is built with tar, older nights are copies of it."""
    lay.backups.mkdir(parents=True, exist_ok=True)
    nights = night_stamps(now, days)
    newest = make_set(lay, lay.backups, nights[-1].strftime("%Y%m%d_%H%M%S"))
    for night in nights:
        stamp = night.strftime("%Y%m%d_%H%M%S")
        for kind, name in backup_names(stamp).items():
            path = lay.backups / name
            if path != newest[kind]:
                shutil.copyfile(newest[kind], path)
            t = (night + timedelta(seconds=5 + KINDS.index(kind) * 7)).timestamp()
            os.utime(path, (t, t))
