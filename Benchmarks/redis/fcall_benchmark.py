#!/usr/bin/env python3
"""redis-benchmark of what a validation costs Redis itself: FCALL sd1_validate of one live session
(its token taken from TOKENS_FILE, hashed as sessiond does), refresh off so that every call reads and
writes nothing, at -P 1 and -P 16; and plain GET as the server's native-command ceiling.

Usage: fcall_benchmark.py REDIS_PORT TOKENS_FILE
"""
import base64
import hashlib
import re
import subprocess
import sys

port, tokens_file = sys.argv[1], sys.argv[2]
for token in open(tokens_file):
    token = token.strip()
    digest = hashlib.sha256(token.encode()).digest()
    if b"\0" not in digest:  # an argument of redis-benchmark cannot hold a NUL byte
        break
else:
    sys.exit("no usable token")
raw = base64.urlsafe_b64decode(token[4:] + "=")
partition = raw[0] << 8 | raw[1]
key = f"sd:{{{partition}}}:cfg".encode()

def run(arguments, pipeline):
    out = subprocess.run(["redis-benchmark", "-p", port, "-c", "50", "-n", "200000", "-P", str(pipeline), "-q"]
                         + arguments, capture_output=True, check=True).stdout.decode("utf-8", "replace")
    match = re.search(r"([\d.]+) requests per second", out)
    return match.group(1) if match else out.strip()

fcall = [b"FCALL", b"sd1_validate", b"1", key, b"1000", b"3600000", digest, b"0"]
for pipeline in (1, 16):
    print(f"FCALL sd1_validate (a live session, no write), -P {pipeline}: {run(fcall, pipeline)} req/s")
    print(f"GET, -P {pipeline}: {run(['GET', 'sd:none'], pipeline)} req/s")
