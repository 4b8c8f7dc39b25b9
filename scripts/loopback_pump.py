#!/usr/bin/env python3
"""Moves a file's bytes over loopback TCP between two processes of its own,
again and again, at a given pace: the network side of back-to-back full
syncs with no server involved.

    loopback_pump.py FILE BYTES_PER_SECOND

scripts/bench_repl_sync.sh (CONTROL=pump) runs it beside a loaded primary
to tell the machine's cost of moving a sync's bytes (the sender's and the
reader's CPU, on the same cores as the server and the benchmark client)
from the primary's own cost of producing them. Runs until killed; the
reader, a forked child, ends with it.
"""

import ctypes
import os
import signal
import socket
import sys
import time

CHUNK = 64 * 1024


def reader(port: int) -> None:
    # Reads and discards, as `redis-cli --rdb /dev/null` does.
    while True:
        conn = socket.create_connection(("127.0.0.1", port))
        while conn.recv(1 << 20):
            pass
        conn.close()


def main() -> None:
    path, rate = sys.argv[1], float(sys.argv[2])
    with open(path, "rb") as f:
        data = memoryview(f.read())
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    parent = os.getpid()
    if os.fork() == 0:
        # PR_SET_PDEATHSIG: the kernel ends the reader when the pump dies.
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)
        if os.getppid() != parent:
            return
        listener.close()
        reader(port)
        return
    while True:
        conn, _ = listener.accept()
        start = time.monotonic()
        sent = 0
        for off in range(0, len(data), CHUNK):
            conn.sendall(data[off : off + CHUNK])
            sent += min(CHUNK, len(data) - off)
            ahead = sent / rate - (time.monotonic() - start)
            if ahead > 0.0005:
                time.sleep(ahead)
        conn.close()


if __name__ == "__main__":
    main()
