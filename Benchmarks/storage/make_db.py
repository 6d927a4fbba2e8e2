#!/usr/bin/env python3
"""Writes a sessiond storage file (schema 2) with N live sessions, for the replay benchmark.

    make_db.py DATA_DIR N [USERS]

Rows have random 16-byte ids and 32-byte token hashes, usernames over USERS users (default N/10),
deadlines a day ahead, and no data, like sessions created by Benchmarks/http/create.lua.
"""
import os
import sqlite3
import sys
import time

data_dir, count = sys.argv[1], int(sys.argv[2])
users = int(sys.argv[3]) if len(sys.argv) > 3 else max(1, count // 10)
os.makedirs(data_dir, mode=0o700, exist_ok=True)
path = os.path.join(data_dir, "sessions.sqlite3")
if os.path.exists(path):
    os.remove(path)
db = sqlite3.connect(path)
db.execute("PRAGMA auto_vacuum = INCREMENTAL")
db.execute("PRAGMA application_id = 1431522643")
db.execute("PRAGMA journal_mode = WAL")
db.executescript(
    """
    CREATE TABLE sessions (
        id BLOB NOT NULL, token_hash BLOB NOT NULL, username TEXT NOT NULL,
        created_at INTEGER NOT NULL, last_seen_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
        idle_timeout INTEGER NOT NULL, data BLOB, PRIMARY KEY (created_at, id)
    ) WITHOUT ROWID;
    CREATE TABLE storage_meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) WITHOUT ROWID;
    INSERT INTO storage_meta VALUES ('created_by', 'make_db.py'), ('clean_shutdown', '1');
    PRAGMA user_version = 2;
    """
)
now = int(time.time() * 1000)
batch = []
for index in range(count):
    created = now - count + index  # one per millisecond, as if created over the last count ms
    batch.append((os.urandom(16), os.urandom(32), f"user-{index % users}@example.com",
                  created, created, created + 86_400_000, -86_400_000, None))
    if len(batch) == 50_000:
        db.executemany("INSERT INTO sessions VALUES (?,?,?,?,?,?,?,?)", batch)
        batch = []
db.executemany("INSERT INTO sessions VALUES (?,?,?,?,?,?,?,?)", batch)
db.commit()
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
db.close()
print(f"{count} sessions over {users} users in {path} ({os.path.getsize(path) // 1_000_000} MB)")
