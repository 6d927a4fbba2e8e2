#!/usr/bin/env python3
"""What one login costs redis-server itself, against the bare writes it makes.

Starts its own redis-server (no persistence) on a free loopback port and lets sessiond
(SESSIOND_BIN, default .build/release/sessiond) set up the store on it (function library, partition
configuration), then stops sessiond. It loads PRELOAD logins (default 100,000, over 100,000 users),
then runs ROUNDS rounds (default 5), alternating which side goes first, of LOGINS new logins each
(default 50,000), every login sent once by each side:

  script  FCALL sd1_create, exactly the call sessiond makes for a login (no data, default timeouts)
  writes  the same login's writes as plain commands with no reads and no Lua: HSET of the session,
          SET of its id, ZADD to the user's sessions, the creation order, the deadlines and the
          sightings, XADD of the event, HINCRBY of the creation sequence

Both sides are sent with `redis-cli --pipe` (one connection, as deep a pipeline as the socket
allows), so the network costs Redis as little as it can: these are floors, not what Redis spends
under sessiond's load (Benchmarks/redis/run.sh measures that). For each side and round it reports
redis-server's CPU time (user + system, /proc/PID/stat) per login and the time INFO commandstats
puts inside the commands; the medians of the rounds and the median of the per-round ratios follow.

Usage: Benchmarks/redis/create_floor.py [ROUNDS] [LOGINS]     (PRELOAD=…, SESSIOND_BIN=…)
"""
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
LOGINS = int(sys.argv[2]) if len(sys.argv) > 2 else 50_000
PRELOAD = int(os.environ.get("PRELOAD", "100000"))
USERS = 100_000
EVENTS_KEPT = 1000  # sessiond's default --redis-events-per-partition
RETENTION_MS = 3_600_000  # sessiond's default expired-token retention
TICKS = os.sysconf("SC_CLK_TCK")
repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
binary = os.environ.get("SESSIOND_BIN", os.path.join(repo, ".build/release/sessiond"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resp(*arguments):
    parts = [a if isinstance(a, bytes) else str(a).encode() for a in arguments]
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def partition_of(username, partitions):
    """FNV-1a of the UTF-8 bytes, as RedisKeys.partition(of:count:)."""
    h = 0xCBF29CE484222325
    for byte in username.encode():
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h % partitions


class Logins:
    """Distinct logins: user i % USERS, a random token hash and id, the user's partition."""

    def __init__(self, partitions):
        self.partitions = partitions
        self.next = 0

    def take(self, count):
        taken = []
        for i in range(self.next, self.next + count):
            user = f"bench-{i % USERS}@example.com"
            taken.append((user, partition_of(user, self.partitions), os.urandom(32), os.urandom(16)))
        self.next += count
        return taken


def script_commands(logins):
    return b"".join(
        resp("FCALL", "sd1_create", 1, f"sd:{{{p}}}:cfg", EVENTS_KEPT, RETENTION_MS, th, sid, user, 0, b"", 0, 0, 0)
        for user, p, th, sid in logins)


def write_commands(logins, sequence):
    out = []
    now = int(time.time() * 1000)
    for user, p, th, sid in logins:
        key = f"sd:{{{p}}}:".encode()
        sequence[p] = sequence.get(p, 1_000_000_000) + 1
        seq = sequence[p]
        out.append(resp("HSET", key + b"k:" + th, "id", sid, "u", user, "c", now, "l", now, "i", -3_600_000,
                        "x", now + 86_400_000))
        out.append(resp("SET", key + b"i:" + sid, th))
        out.append(resp("ZADD", key + b"u:" + user.encode(), seq, sid))
        out.append(resp("ZADD", key + b"all", seq, sid))
        out.append(resp("ZADD", key + b"dl", now + 3_600_000, sid))
        out.append(resp("ZADD", key + b"seen", now, user))
        out.append(resp("XADD", key + b"ev", "MAXLEN", "~", EVENTS_KEPT, "*", "t", "c", "id", sid, "u", user,
                        "c", now, "a", now))
        out.append(resp("HINCRBY", key + b"meta", "seq", 1))
    return b"".join(out)


class Redis:
    def __init__(self, directory):
        self.port = free_port()
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", directory, "--logfile", os.path.join(directory, "redis.log")])
        self.directory = directory
        while subprocess.run(self.cli("PING"), capture_output=True).returncode != 0:
            time.sleep(0.05)

    def cli(self, *arguments):
        return ["redis-cli", "-p", str(self.port), *arguments]

    def query(self, *arguments):
        return subprocess.run(self.cli(*arguments), capture_output=True, check=True, text=True).stdout

    def cpu_ticks(self):
        fields = open(f"/proc/{self.process.pid}/stat").read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    def pipe(self, commands):
        """Sends the commands; returns (CPU µs of redis-server, µs inside the commands) in all."""
        path = os.path.join(self.directory, "commands")
        with open(path, "wb") as f:
            f.write(commands)
        self.query("CONFIG", "RESETSTAT")
        before = self.cpu_ticks()
        with open(path, "rb") as f:
            out = subprocess.run(self.cli("--pipe"), stdin=f, capture_output=True, check=True, text=True).stdout
        cpu = (self.cpu_ticks() - before) / TICKS * 1e6
        if "errors: 0" not in out:
            sys.exit(f"redis-cli --pipe reported errors: {out.strip()}")
        # The commands a script calls are counted twice: on their own and in the FCALL's time.
        usec = {line.split(":")[0]: int(line.split("usec=")[1].split(",")[0])
                for line in self.query("INFO", "commandstats").splitlines() if line.startswith("cmdstat_")}
        usec.pop("cmdstat_config|resetstat", None)
        return cpu, usec.get("cmdstat_fcall", sum(usec.values()))


def main():
    directory = tempfile.mkdtemp()
    redis = Redis(directory)
    try:
        token_file = os.path.join(directory, "api-token")
        with open(token_file, "w") as f:
            f.write("floor-" + os.urandom(12).hex())
        os.chmod(token_file, 0o600)
        port = free_port()
        sessiond = subprocess.Popen([binary, "--port", str(port), "--api-token-file", token_file, "--storage",
                                     "redis", "--redis-url", f"redis://127.0.0.1:{redis.port}", "--log-level",
                                     "warning"])
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        sessiond.send_signal(signal.SIGTERM)
        sessiond.wait()
        partitions = int(redis.query("HGET", "sd:meta", "partitions"))
        logins = Logins(partitions)
        sequence = {}
        redis.pipe(script_commands(logins.take(PRELOAD)))
        print(f"{PRELOAD} logins loaded over {partitions} partitions; {ROUNDS} rounds of {LOGINS} per side")
        results = {"script": [], "writes": []}
        for round_number in range(1, ROUNDS + 1):
            order = ["script", "writes"] if round_number % 2 else ["writes", "script"]
            line = []
            for side in order:
                batch = logins.take(LOGINS)
                commands = script_commands(batch) if side == "script" else write_commands(batch, sequence)
                cpu, inside = redis.pipe(commands)
                results[side].append((cpu / LOGINS, inside / LOGINS))
                line.append(f"{side} {cpu / LOGINS:.1f} µs CPU/login ({inside / LOGINS:.1f} in commands)")
            print(f"round {round_number}: " + "; ".join(line))
        for side in ("script", "writes"):
            print(f"{side}: median {statistics.median(c for c, _ in results[side]):.1f} µs of redis-server CPU"
                  f" per login, {statistics.median(i for _, i in results[side]):.1f} µs inside the commands")
        ratios = [s[0] / w[0] for s, w in zip(results["script"], results["writes"])]
        print(f"script/writes per round: median {statistics.median(ratios):.2f}"
              f" (rounds: {' '.join(f'{r:.2f}' for r in ratios)})")
        print(f"sessions in Redis at the end: {logins.next} logins sent")
    finally:
        redis.process.terminate()
        redis.process.wait()
        subprocess.run(["rm", "-rf", directory])


if __name__ == "__main__":
    main()
