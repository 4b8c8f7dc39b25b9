#!/usr/bin/env python3
"""redis-py cluster-client checks against a running 3-primary + 3-replica cluster.

    .venv/bin/python scripts/cluster_clients.py 127.0.0.1:PORT1 ... 127.0.0.1:PORT6

scripts/cluster_clients.sh starts the cluster and runs this. The cluster must
be freshly created (empty, every slot covered, no open slot); the script
writes to it freely. Steps, each failing the run (exit 1) on any mismatch:

1. discovery and bulk: redis.cluster.RedisCluster learns 3 primaries and 3
   replicas by CLUSTER SLOTS and key positions by COMMAND (both seen in the
   nodes' commandstats); 100,000 keys, six or seven in each of the 16,384
   slots, are written and read back through cluster pipelines, every value
   checked; CLUSTER COUNTKEYSINSLOT on each slot's owner and every
   primary's DBSIZE equal the expected counts.
2. replica reads: RedisCluster(read_from_replicas=True) reads 20,000 keys,
   every value checked; each replica received READONLY and served GETs
   (INFO commandstats, keyspace_hits), a quarter of the reads at least,
   with no error reply (a replica ignoring READONLY would answer MOVED).
3. ASK: one slot is put in IMPORTING/MIGRATING state by hand and half its
   keys MIGRATEd; redis-py reads every key of the slot (moved or not),
   writes a new one and reads it back, without error; the source's ASK
   count (INFO errorstats) and the target's ASKING count both equal the
   requests that had to go to the target. SETSLOT NODE closes the slot.
4. reshard: `redis-cli --cluster reshard` moves 1,000 slots while
   `redis-benchmark --cluster -t set,get -P 16` runs in a loop and a redis-py
   writer overwrites 1,000 keys (half of them in the moving slots), reading
   each back at once. Afterwards: the reshard and every benchmark run exited
   0 and printed no error (redis-benchmark 7.0 exits on any error reply but
   MOVED/ASK); the writer saw no exception; every node's errorstats grew by
   MOVED and ASK only; every key the writer had acknowledged holds its last
   value; the 100,000 keys of step 1 are intact; the target owns exactly the
   source's 1,000 lowest slots; replicas hold what their primaries hold;
   `redis-cli --cluster check` is clean.

Figures (rates, counts, durations) are printed for docs/cluster.md. The
same script passes against redis-server 7.0.15 (FERROCACHE_BIN).
"""

import inspect
import re
import subprocess
import sys
import threading
import time
import traceback
import warnings

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

SLOTS = 16384
BULK_KEYS = 100_000
BATCH = 2_000
REPLICA_READS = 20_000
RESHARD_SLOTS = 1_000
SOCKET_TIMEOUT = 20

# read_from_replicas is deprecated in favour of load_balancing_strategy;
# it is what the acceptance names, and it still means READONLY + round robin.
warnings.filterwarnings("ignore", category=DeprecationWarning)


class CheckFailed(Exception):
    pass


def fail(msg):
    raise CheckFailed(msg)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def slot_tags():
    """One hash tag per slot: tags[s] is a string whose CRC16 slot is s."""
    tags = [None] * SLOTS
    missing, n = SLOTS, 0
    while missing:
        t = str(n)
        s = key_slot(t.encode())
        if tags[s] is None:
            tags[s] = t
            missing -= 1
        n += 1
    return tags


TAGS = slot_tags()


def bulk_key(i):
    return f"ck:{{{TAGS[i % SLOTS]}}}:{i}"


def bulk_value(i):
    return f"v{i}:{(i * 7919) % 1000003}"


# Connections skip CLIENT SETINFO and CLIENT MAINT_NOTIFICATIONS, which
# redis-py sends on connect and Redis 7.0 answers with an ERR (ferrocache
# knows both): those would count in errorstats when this runs against Redis.
# The options depend on the redis-py version (.venv gets redis>=5).
_OPTIONS = inspect.signature(redis.Redis.__init__).parameters
QUIET_CONNECT = ({"driver_info": None} if "driver_info" in _OPTIONS
                 else {"lib_name": None, "lib_version": None})
if "maint_notifications_config" in _OPTIONS:
    from redis.maint_notifications import MaintNotificationsConfig

    QUIET_CONNECT["maint_notifications_config"] = MaintNotificationsConfig(enabled=False)


def direct(addr, **kw):
    host, port = addr.rsplit(":", 1)
    return redis.Redis(host=host, port=int(port), decode_responses=True,
                       socket_timeout=SOCKET_TIMEOUT, **QUIET_CONNECT, **kw)


def cluster_client(addrs, **kw):
    nodes = [ClusterNode(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in addrs]
    return RedisCluster(startup_nodes=nodes, decode_responses=True,
                        socket_timeout=SOCKET_TIMEOUT, **QUIET_CONNECT, **kw)


def topology(addr):
    """{primary addr: {"id", "slots": set, "replicas": [addr]}} from CLUSTER NODES."""
    out = {}
    text = direct(addr).execute_command("CLUSTER", "NODES")
    rows = [line.split() for line in text.splitlines() if line.strip()]
    by_id = {}
    for r in rows:
        node_addr = r[1].split("@")[0]
        by_id[r[0]] = node_addr
    for r in rows:
        if "master" in r[2].split(","):
            slots = set()
            for part in r[8:]:
                if part.startswith("["):
                    continue
                lo, _, hi = part.partition("-")
                slots.update(range(int(lo), int(hi or lo) + 1))
            out[by_id[r[0]]] = {"id": r[0], "slots": slots, "replicas": []}
    for r in rows:
        if "slave" in r[2].split(","):
            out[by_id[r[3]]]["replicas"].append(by_id[r[0]])
    return out


def cmdstat(conn, name, field="calls"):
    return conn.info("commandstats").get(f"cmdstat_{name}", {}).get(field, 0)


def errorstats(conn):
    """{code: count} from INFO errorstats (errorstat_MOVED:count=3 -> {"MOVED": 3})."""
    out = {}
    for k, v in conn.info("errorstats").items():
        if k.startswith("errorstat_"):
            out[k[len("errorstat_"):]] = v["count"] if isinstance(v, dict) else int(v)
    return out


def errorstats_delta(before, after):
    return {c: n - before.get(c, 0) for c, n in after.items() if n != before.get(c, 0)}


REDIRECTS = {"MOVED", "ASK"}


def wait_for(what, timeout, pred):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def cluster_check(addr):
    r = subprocess.run(["redis-cli", "--cluster", "check", addr], capture_output=True,
                       text=True, timeout=60)
    out = r.stdout + r.stderr
    clean = (r.returncode == 0
             and "[OK] All nodes agree about slots configuration." in out
             and "[OK] All 16384 slots covered." in out
             and "[WARNING]" not in out and "[ERR]" not in out)
    return clean, out


def wait_clean_check(addr, timeout=60):
    last = [""]

    def clean():
        ok, last[0] = cluster_check(addr)
        return ok

    try:
        wait_for("a clean redis-cli --cluster check", timeout, clean)
    except CheckFailed:
        fail(f"redis-cli --cluster check never clean; last output:\n{last[0]}")


# --------------------------------------------------------------- step 1

def check_bulk(rc, what):
    """Reads the BULK_KEYS keys back through cluster pipelines."""
    bad = []
    for start in range(0, BULK_KEYS, BATCH):
        pipe = rc.pipeline(transaction=False)
        for i in range(start, min(start + BATCH, BULK_KEYS)):
            pipe.get(bulk_key(i))
        for i, got in zip(range(start, BULK_KEYS), pipe.execute()):
            if got != bulk_value(i):
                bad.append((bulk_key(i), got))
    if bad:
        fail(f"{what}: {len(bad)} of {BULK_KEYS} keys wrong, first {bad[:5]}")


def step_bulk(addrs):
    seed = addrs[0]
    conns = [direct(a) for a in addrs]
    # redis-cli --cluster create returns before every node has heard of
    # every replica (real Redis especially): wait until each node's CLUSTER
    # SLOTS lists a replica for every range and its state is ok.
    def settled(c):
        if c.execute_command("CLUSTER", "INFO").find("cluster_state:ok") < 0:
            return False
        ranges = c.execute_command("CLUSTER", "SLOTS")
        return len(ranges) == 3 and all(len(r) == 4 for r in ranges)

    wait_for("every node to list 3 primaries with a replica each", 60,
             lambda: all(settled(c) for c in conns))
    slots_before = sum(cmdstat(c, "cluster|slots") for c in conns)
    command_before = sum(cmdstat(c, "command") for c in conns)
    rc = cluster_client(addrs)
    primaries, replicas = rc.get_primaries(), rc.get_replicas()
    if len(primaries) != 3 or len(replicas) != 3:
        fail("discovery: expected 3 primaries and 3 replicas, got "
             f"{[n.name for n in primaries]} / {[n.name for n in replicas]}")
    # RedisCluster asks a startup node for CLUSTER SLOTS and one node for the
    # COMMAND table (key positions for routing).
    if sum(cmdstat(c, "cluster|slots") for c in conns) <= slots_before:
        fail("discovery: no CLUSTER SLOTS call reached any node")
    if sum(cmdstat(c, "command") for c in conns) <= command_before:
        fail("discovery: no COMMAND call reached any node")
    log(f"discovery: {len(primaries)} primaries, {len(replicas)} replicas "
        "via CLUSTER SLOTS, key positions via COMMAND")

    t0 = time.monotonic()
    for start in range(0, BULK_KEYS, BATCH):
        pipe = rc.pipeline(transaction=False)
        for i in range(start, min(start + BATCH, BULK_KEYS)):
            pipe.set(bulk_key(i), bulk_value(i))
        replies = pipe.execute()
        if not all(r is True for r in replies):
            fail(f"bulk SET batch at {start}: not all OK: {set(map(repr, replies))}")
    t1 = time.monotonic()
    check_bulk(rc, "bulk read-back")
    t2 = time.monotonic()

    # Server side: each slot's owner counts exactly the keys expected there.
    expected = [BULK_KEYS // SLOTS + (1 if s < BULK_KEYS % SLOTS else 0) for s in range(SLOTS)]
    topo = topology(seed)
    seen, total = set(), 0
    for addr, info in topo.items():
        conn = direct(addr)
        slots = sorted(info["slots"])
        pipe = conn.pipeline(transaction=False)
        for s in slots:
            pipe.execute_command("CLUSTER", "COUNTKEYSINSLOT", s)
        for s, n in zip(slots, pipe.execute()):
            if n != expected[s]:
                fail(f"slot {s} on {addr}: COUNTKEYSINSLOT {n}, expected {expected[s]}")
            total += n
        seen.update(slots)
        if conn.dbsize() != sum(expected[s] for s in slots):
            fail(f"{addr}: DBSIZE {conn.dbsize()} is not the sum of its slots' counts")
    if len(seen) != SLOTS or total != BULK_KEYS:
        fail(f"slots covered {len(seen)}, keys counted {total}")
    log(f"bulk: {BULK_KEYS} keys in all {SLOTS} slots (min {min(expected)} per slot); "
        f"SET {BULK_KEYS / (t1 - t0):.0f}/s, GET {BULK_KEYS / (t2 - t1):.0f}/s "
        "through cluster pipelines; COUNTKEYSINSLOT matches on every slot")
    return rc


# --------------------------------------------------------------- step 2

def wait_replicas_in_sync(topo):
    """Waits until each replica holds as many keys as its primary (no
    writes running). Replication is asynchronous, so this may take a moment."""
    for paddr, info in topo.items():
        n = direct(paddr).dbsize()
        for raddr in info["replicas"]:
            wait_for(f"replica {raddr} to hold the {n} keys of its primary {paddr}", 60,
                     lambda raddr=raddr, n=n: direct(raddr).dbsize() == n)


def step_replica_reads(addrs):
    topo = topology(addrs[0])
    wait_replicas_in_sync(topo)
    replica_addrs = [r for info in topo.values() for r in info["replicas"]]
    if len(replica_addrs) != 3:
        fail(f"expected 3 replicas, topology {topo}")
    rconns = {a: direct(a) for a in replica_addrs}
    before = {a: (cmdstat(c, "get"), cmdstat(c, "readonly"),
                  int(c.info("stats")["keyspace_hits"]), errorstats(c))
              for a, c in rconns.items()}

    rc = cluster_client(addrs, read_from_replicas=True)
    step = BULK_KEYS // REPLICA_READS
    bad = []
    for i in range(0, BULK_KEYS, step):
        got = rc.get(bulk_key(i))
        if got != bulk_value(i):
            bad.append((bulk_key(i), got))
    if bad:
        fail(f"replica reads: {len(bad)} wrong values, first {bad[:5]}")
    reads = len(range(0, BULK_KEYS, step))
    gets = hits = 0
    for a, c in rconns.items():
        g0, ro0, h0, e0 = before[a]
        g, ro, h, e = (cmdstat(c, "get"), cmdstat(c, "readonly"),
                       int(c.info("stats")["keyspace_hits"]), errorstats(c))
        if ro <= ro0:
            fail(f"replica {a}: no READONLY received")
        if g <= g0:
            fail(f"replica {a}: served no GET")
        # A replica that ignored READONLY would have answered MOVED.
        if errorstats_delta(e0, e):
            fail(f"replica {a}: error replies during replica reads: {errorstats_delta(e0, e)}")
        gets += g - g0
        hits += h - h0
    if gets < reads // 4 or hits < gets:
        fail(f"replicas served {gets} GETs ({hits} hits) of {reads} reads")
    rc.close()
    log(f"replica reads: {reads} GETs with read_from_replicas=True, all values right; "
        f"{gets} served by the 3 replicas (READONLY seen on each, keyspace_hits +{hits})")


# --------------------------------------------------------------- step 3

def step_ask(addrs, rc):
    topo = topology(addrs[0])
    (src, sinfo), (dst, dinfo) = list(topo.items())[:2]
    slot = max(sinfo["slots"])
    tag = TAGS[slot]
    keys = sorted(k for k in (bulk_key(i) for i in range(slot, BULK_KEYS, SLOTS)))
    moved, stay = keys[: len(keys) // 2], keys[len(keys) // 2:]
    s, d = direct(src), direct(dst)
    d.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", sinfo["id"])
    s.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dinfo["id"])
    host, port = dst.rsplit(":", 1)
    r = s.execute_command("MIGRATE", host, port, "", 0, 5000, "KEYS", *moved)
    if r not in ("OK", True):
        fail(f"MIGRATE of {moved}: {r!r}")
    # The source now answers ASK for the moved keys.
    try:
        s.get(moved[0])
        fail(f"source still serves {moved[0]} after MIGRATE")
    except redis.exceptions.AskError as e:
        if (e.slot_id, f"{e.host}:{e.port}") != (slot, dst):
            fail(f"source replied ASK {e.slot_id} {e.host}:{e.port}, expected ASK {slot} {dst}")

    asking0, ask0 = cmdstat(d, "asking"), errorstats(s).get("ASK", 0)
    value_of = {bulk_key(i): bulk_value(i) for i in range(slot, BULK_KEYS, SLOTS)}
    for k in moved + stay:
        got = rc.get(k)
        if got != value_of[k]:
            fail(f"ASK: GET {k} during migration: {got!r}, expected {value_of[k]!r}")
    new_key = f"ask:{{{tag}}}:new"
    if rc.set(new_key, "written-during-migration") is not True:
        fail("ASK: SET of a new key in the migrating slot not OK")
    if rc.get(new_key) != "written-during-migration":
        fail("ASK: new key not readable during migration")
    # One ASK from the source, then ASKING + the command on the target, for
    # each moved key read, the new key's SET and its GET.
    asked = cmdstat(d, "asking") - asking0
    asks = errorstats(s).get("ASK", 0) - ask0
    if asked != len(moved) + 2 or asks != asked:
        fail(f"ASK: source sent {asks} ASK, target saw {asked} ASKING, "
             f"expected {len(moved) + 2} of each")
    if d.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) != len(moved) + 1:
        fail("ASK: the target does not hold the moved keys and the new one")

    r = s.execute_command("MIGRATE", host, port, "", 0, 5000, "KEYS", *stay)
    if r not in ("OK", True):
        fail(f"MIGRATE of {stay}: {r!r}")
    for conn in [d, s] + [direct(a) for a in topo if a not in (src, dst)]:
        conn.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dinfo["id"])
    for k in keys + [new_key]:
        want = value_of.get(k, "written-during-migration")
        if rc.get(k) != want:
            fail(f"after SETSLOT NODE: GET {k} is not {want!r}")
    wait_clean_check(addrs[0])
    log(f"ASK: slot {slot} migrated by hand ({len(moved)} keys MIGRATEd first); redis-py "
        f"read {len(keys)} keys and wrote 1 through {asked} ASK redirects; slot closed, check clean")
    return slot, new_key


# --------------------------------------------------------------- step 4

class Writer(threading.Thread):
    """Overwrites keys and reads each back; remembers the last acknowledged value."""

    def __init__(self, addrs, keys):
        super().__init__(daemon=True)
        self.rc = cluster_client(addrs)
        self.keys = keys
        self.last = {}
        self.ops = 0
        self.errors = []
        self.stop = threading.Event()

    def run(self):
        n = 0
        try:
            while not self.stop.is_set():
                k = self.keys[n % len(self.keys)]
                v = str(n)
                if self.rc.set(k, v) is not True:
                    self.errors.append(f"SET {k}: not OK")
                    return
                self.last[k] = v
                got = self.rc.get(k)
                if got != v:
                    self.errors.append(f"GET {k} right after SET: {got!r}, expected {v!r}")
                    return
                n += 1
                self.ops += 2
        except Exception as e:  # noqa: BLE001 - any exception reaching us is the failure
            self.errors.append(f"{type(e).__name__}: {e}\n{traceback.format_exc()}")


class Bench(threading.Thread):
    """Runs redis-benchmark --cluster over and over until stopped."""

    CMD = ["redis-benchmark", "--cluster", "-t", "set,get", "-P", "16", "-n", "100000", "-q"]

    def __init__(self, addr):
        super().__init__(daemon=True)
        host, port = addr.rsplit(":", 1)
        self.cmd = self.CMD + ["-h", host, "-p", port]
        self.runs = []  # (returncode, output)
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            r = subprocess.run(self.cmd, capture_output=True, text=True, timeout=300)
            self.runs.append((r.returncode, (r.stdout + r.stderr).replace("\r", "\n")))


def check_bench(runs):
    """Every run exited 0, reported SET and GET and printed no error.
    redis-benchmark 7.0 in cluster mode refetches the slot map on MOVED/ASK
    without a word, prints CLUSTERDOWN and exits 1 on any other error reply
    (-e has no effect there), so a clean run met nothing but redirections.
    Returns {test: [rps]}."""
    rates = {"SET": [], "GET": []}
    for code, out in runs:
        if code != 0:
            fail(f"redis-benchmark exited {code}:\n{out[-2000:]}")
        for line in out.splitlines():
            m = re.match(r"^(SET|GET): ([0-9.]+) requests per second", line)
            if m:
                rates[m.group(1)].append(float(m.group(2)))
            elif "error" in line.lower():
                fail(f"redis-benchmark printed an error: {line}")
    if not rates["SET"] or not rates["GET"]:
        fail(f"redis-benchmark printed no SET/GET result:\n{runs[-1][1][-500:]}")
    return rates


def step_reshard(addrs):
    topo = topology(addrs[0])
    src, dst = sorted(topo, key=lambda a: -len(topo[a]["slots"]))[:2]
    src_id, dst_id = topo[src]["id"], topo[dst]["id"]
    # redis-cli takes the source's lowest-numbered slots.
    moving = sorted(topo[src]["slots"])[:RESHARD_SLOTS]
    moving_set = set(moving)
    others = sorted(set(range(SLOTS)) - moving_set)
    # The writer's keys: one in every other moving slot, as many elsewhere,
    # interleaved.
    inside = [f"w:{{{TAGS[s]}}}" for s in moving[::2]]
    outside = [f"w:{{{TAGS[s]}}}" for s in others[:: len(others) // len(inside)]][: len(inside)]
    keys = [k for pair in zip(inside, outside) for k in pair]
    dst_slots_before = len(topo[dst]["slots"])
    conns = [direct(a) for a in addrs]
    errs_before = [errorstats(c) for c in conns]

    writer = Writer(addrs, keys)
    bench = Bench(dst)
    writer.start()
    bench.start()
    time.sleep(1.0)  # both running before the first slot moves
    ops_before = writer.ops
    t0 = time.monotonic()
    r = subprocess.run(
        ["redis-cli", "--cluster", "reshard", addrs[0], "--cluster-from", src_id,
         "--cluster-to", dst_id, "--cluster-slots", str(RESHARD_SLOTS), "--cluster-yes"],
        capture_output=True, text=True, timeout=600)
    took = time.monotonic() - t0
    ops_during = writer.ops - ops_before
    # The benchmark run under way when the reshard ended finishes.
    bench.stop.set()
    bench.join(timeout=300)
    writer.stop.set()
    writer.join(timeout=60)
    out = r.stdout + r.stderr
    if r.returncode != 0 or "[ERR]" in out:
        fail(f"redis-cli --cluster reshard exited {r.returncode}:\n{out[-3000:]}")
    moved_slots = {int(m) for m in re.findall(r"^Moving slot (\d+) from \S+ to \S+", out, re.M)}
    if moved_slots != moving_set:
        fail(f"redis-cli moved {len(moved_slots)} slots, not the source's lowest {RESHARD_SLOTS}")
    if writer.is_alive() or bench.is_alive():
        fail("writer or benchmark did not stop")
    if writer.errors:
        fail(f"redis-py writer saw: {writer.errors}")
    if ops_during == 0:
        fail("the redis-py writer made no progress during the reshard")
    rates = check_bench(bench.runs)
    # Server side: every error reply any node sent meanwhile (to the
    # benchmark, the writer and redis-cli) was a redirection.
    errs, per_node = {}, {}
    for addr, before, c in zip(addrs, errs_before, conns):
        per_node[addr] = errorstats_delta(before, errorstats(c))
        for code, n in per_node[addr].items():
            errs[code] = errs.get(code, 0) + n
    if set(errs) - REDIRECTS:
        fail(f"error replies other than MOVED/ASK during the reshard: {per_node}")

    wait_clean_check(addrs[0])
    topo2 = topology(addrs[0])
    # Replicas followed: the source's dropped the moved keys, the target's
    # took them.
    wait_replicas_in_sync(topo2)
    gained = len(topo2[dst]["slots"]) - dst_slots_before
    if gained != RESHARD_SLOTS or not moving_set <= topo2[dst]["slots"]:
        fail(f"target gained {gained} slots, expected the source's lowest {RESHARD_SLOTS}")
    d = direct(dst)
    pipe = d.pipeline(transaction=False)
    for slot in moving:
        pipe.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)
    keys_in_moved = sum(pipe.execute())
    bulk_in_moved = sum(1 for i in range(BULK_KEYS) if i % SLOTS in moving_set)

    # Every acknowledged write holds its last value; nothing of step 1 is lost.
    reader = cluster_client(addrs)
    wrong = [(k, v, got) for k, v in writer.last.items() if (got := reader.get(k)) != v]
    if wrong:
        fail(f"{len(wrong)} of {len(writer.last)} writer keys lost their last value: {wrong[:5]}")
    check_bulk(reader, "after the reshard")
    in_moving = sum(1 for k in writer.last if key_slot(k.encode()) in moving_set)
    log(f"reshard: redis-cli moved {len(moved_slots)} slots {src} -> {dst} in {took:.1f}s; "
        f"they hold {keys_in_moved} keys on the target ({bulk_in_moved} of the bulk keys)")
    log(f"reshard: redis-py writer {writer.ops} SET/GET ({ops_during} during the reshard) on "
        f"{len(writer.last)} keys ({in_moving} in moving slots), no exception, every key at its "
        f"last value; {BULK_KEYS} bulk keys intact")
    log(f"reshard: redis-benchmark {len(bench.runs)} runs, SET {min(rates['SET']):.0f}-"
        f"{max(rates['SET']):.0f} rps, GET {min(rates['GET']):.0f}-{max(rates['GET']):.0f} rps, "
        "every run exited 0 with no error printed")
    log(f"reshard: error replies of all nodes meanwhile: {errs or 'none'} (redirections only); "
        "check clean")


def main():
    addrs = sys.argv[1:]
    if len(addrs) != 6:
        print("usage: cluster_clients.py ADDR x6 (3 primaries + 3 replicas)", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    try:
        rc = step_bulk(addrs)
        step_replica_reads(addrs)
        step_ask(addrs, rc)
        step_reshard(addrs)
    except CheckFailed as e:
        print(f"FAIL: {e}", file=sys.stderr, flush=True)
        return 1
    log(f"cluster_clients.py: all checks passed in {time.monotonic() - t0:.0f}s "
        f"(redis-py {redis.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
