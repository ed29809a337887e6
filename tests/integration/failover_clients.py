#!/usr/bin/env python3
"""Client load for tests/integration/pg_failover.sh, while the PostgreSQL
primary under two sitetoken nodes is killed -9 and its standby promoted.

    failover_clients.py DIR MP_PORTS CMG_PORTS CMG_PATH CAFILE SITES STK STOP_FILE

DIR holds device identities d<N>.crt/.key (made beforehand) and bulk.guids
(bulk tokens to block, one GUID a line). MP_PORTS, CMG_PORTS, SITES: the two
nodes' ports and site directories, comma separated. Requests alternate
between the nodes.

Threads:
  reg   (2): register the next identity with the MP; a failed attempt
        (connection error or 5xx) is retried with the SAME certificate until
        a 200, as an agent does, so a retry after an unknown outcome must
        find the device the first attempt may have committed.
  renew (2): own 4 devices each (registered first) and renew them in turn
        through the CMG, retrying a failed attempt with the token held. A
        renewal committed whose answer was lost leaves the device holding a
        superseded token (401 token_superseded): it registers again with
        the MP (same certificate, same device GUID), the documented recovery.
  block (1): `sitetoken bulk block GUID` for each GUID of bulk.guids,
        retried until it exits 0.
  use   (1): redeem the bulk tokens of DIR/limited ("GUID TOKEN MAX_USES"
        a line, each made with --max-uses) through the CMG, a new identity
        per registration, alternating nodes, until the CMG answers 403
        bulk_token_exhausted; then the next token. A failed attempt is
        retried with the SAME certificate and token: a retry after an
        unknown outcome must not use the token twice. The token in hand is
        finished after STOP_FILE appears.

Every acknowledged operation goes to DIR/acked ("reg GUID JTI THUMB",
"renew GUID JTI", "rereg GUID JTI", "block GUID", "use BULK GUID JTI THUMB",
"exhausted BULK"), flushed before the
next request. Every attempt goes to DIR/attempts ("T0 T1 ok|fail KIND").
After STOP_FILE appears each thread finishes the operation in hand (with
retries, at most 60 s) and stops. Prints a JSON summary."""
import http.client, json, os, subprocess, sys, threading, time
from stkpy import pop_proof, post as post1, thumb

d, mp_ports, cmg_ports, cmg_path, cafile, sites, stk, stopf = sys.argv[1:9]
mp_ports = [int(p) for p in mp_ports.split(",")]
cmg_ports = [int(p) for p in cmg_ports.split(",")]
sites = sites.split(",")
idents = sorted((int(f[1:-4]) for f in os.listdir(d) if f.startswith("d") and f.endswith(".crt")),
                reverse=True)
bulk_guids = [l.strip() for l in open(os.path.join(d, "bulk.guids")) if l.strip()]
limited = [l.split() for l in open(os.path.join(d, "limited")) if l.strip()]
lock = threading.Lock()
acked = open(os.path.join(d, "acked"), "a")
attempts = open(os.path.join(d, "attempts"), "a")
stats = {"reg": 0, "renew": 0, "rereg": 0, "block": 0, "use": 0, "exhausted": 0, "fail": 0}
hard = []  # unexpected answers: the test fails on any


def record(line, kind=None):
    """An acknowledged operation, flushed to DIR/acked (and counted as KIND)."""
    with lock:
        acked.write(line + "\n")
        acked.flush()
        os.fsync(acked.fileno())
        if kind:
            stats[kind] += 1


def attempt(t0, ok, kind):
    with lock:
        attempts.write(f"{t0:.3f} {time.time():.3f} {'ok' if ok else 'fail'} {kind}\n")
        attempts.flush()
        if not ok:
            stats["fail"] += 1


def post(node, mtls, path, body, crt=None, key=None, token=None):
    """(status, parsed body) or (None, None) on a connection error."""
    try:
        if mtls:
            st, data = post1(cmg_ports[node], cmg_path + path, body, 15, cafile, crt, key, token)
        else:
            st, data = post1(mp_ports[node], path, body, 15)
    except (OSError, http.client.HTTPException):
        return None, None
    try:
        return st, json.loads(data)
    except ValueError:
        return st, {}


class Retry:
    """Retries of one thread: once STOP_FILE appears, the operation in hand
    may retry for 60 s more."""
    t_stop = None

    def again(self, what):
        """Sleep before the next attempt; False (WHAT noted) once the 60 s are up."""
        if self.t_stop is None and os.path.exists(stopf):
            self.t_stop = time.time()
        if self.t_stop is not None and time.time() > self.t_stop + 60:
            hard.append(f"{what} never acknowledged")
            return False
        time.sleep(0.1)
        return True


class Dev:
    def __init__(self, n):
        self.crt, self.key = os.path.join(d, f"d{n}.crt"), os.path.join(d, f"d{n}.key")
        self.pem = open(self.crt).read()
        self.thumb = thumb(self.pem)
        self.guid = self.token = None


def next_dev():
    """A device of the next unused identity, or None when they ran out."""
    with lock:
        return Dev(idents.pop()) if idents else None


def proof(dev, node):
    """The HTTP MP's proof of possession (docs/api.md): a challenge of that
    node signed with the device key; (None, None) when the MP did not answer."""
    st, o = post(node, False, "/sitetoken/v1/challenge", {})
    if st != 200 or "nonce" not in o:
        return None, None
    return o["nonce"], pop_proof(o["nonce"], dev.pem, dev.key)


def register(dev, node, kind):
    """One attempt; True on 200 (recorded)."""
    t0 = time.time()
    nonce, sig = proof(dev, node)
    if nonce is None:
        attempt(t0, False, kind)
        return False
    st, o = post(node, False, "/sitetoken/v1/register",
                 {"certificate": dev.pem, "nonce": nonce, "proof": sig})
    ok = st == 200
    attempt(t0, ok, kind)
    if ok:
        if dev.guid is not None and o["device_guid"] != dev.guid:
            hard.append(f"{dev.thumb}: registered again as {o['device_guid']}, was {dev.guid}")
        dev.guid, dev.token = o["device_guid"], o["client_token"]
        record(f"{kind} {dev.guid} {o['jti']}" + (f" {dev.thumb}" if kind == "reg" else ""))
    elif st is not None and st < 500:
        hard.append(f"register: HTTP {st} {o}")
    return ok


def reg_worker(w):
    i = 0
    retry = Retry()
    while True:
        if os.path.exists(stopf):
            return
        dev = next_dev()
        if dev is None:
            return
        while not register(dev, (i + w) % 2, "reg"):
            i += 1
            if not retry.again(f"registration of {dev.thumb}"):
                return
        with lock:
            stats["reg"] += 1
        i += 1
        time.sleep(0.06)


def renew_worker(devs):
    i = 0
    retry = Retry()
    while not os.path.exists(stopf):
        for dev in devs:
            while True:
                i += 1
                t0 = time.time()
                st, o = post(i % 2, True, "/sitetoken/v1/renew", {}, dev.crt, dev.key, dev.token)
                attempt(t0, st == 200, "renew")
                if st == 200:
                    dev.token = o["client_token"]
                    record(f"renew {dev.guid} {o['jti']}", "renew")
                    break
                if st == 401 and o.get("error") == "token_superseded":
                    while not register(dev, i % 2, "rereg"):
                        time.sleep(0.1)
                    with lock:
                        stats["rereg"] += 1
                    break
                if st is not None and st < 500:
                    hard.append(f"renew: HTTP {st} {o}")
                    return
                if not retry.again(f"renewal of {dev.guid}"):
                    return
            time.sleep(0.03)


def block_worker():
    i = 0
    retry = Retry()
    for g in bulk_guids:
        if os.path.exists(stopf):
            return
        while True:
            i += 1
            t0 = time.time()
            p = subprocess.run([stk, "bulk", "block", "--site", sites[i % 2], g],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            attempt(t0, p.returncode == 0, "block")
            if p.returncode == 0:
                record(f"block {g}", "block")
                break
            if p.returncode != 3:
                hard.append(f"bulk block {g}: exit {p.returncode} {p.stderr[:200]!r}")
                return
            if not retry.again(f"block of {g}"):
                return
        time.sleep(0.2)


def use_worker():
    i = 0
    retry = Retry()
    for g, tok, _ in limited:
        if os.path.exists(stopf):
            return
        while True:  # one registration per identity until the token is used up
            dev = next_dev()
            if dev is None:
                hard.append("out of device identities for the use limits")
                return
            while True:
                i += 1
                t0 = time.time()
                st, o = post(i % 2, True, "/sitetoken/v1/register", {"bulk_token": tok},
                             dev.crt, dev.key)
                attempt(t0, st == 200 or st == 403, "use")
                if st == 200:
                    record(f"use {g} {o['device_guid']} {o['jti']} {dev.thumb}", "use")
                    break
                if st == 403 and o.get("error") == "bulk_token_exhausted":
                    record(f"exhausted {g}", "exhausted")
                    break
                if st is not None and st < 500:
                    hard.append(f"use of {g}: HTTP {st} {o}")
                    return
                if not retry.again(f"use of {g}"):
                    return
            if st == 403:
                break
            time.sleep(0.03)


# The renewal devices are registered before the load starts.
renew_devs = []
for k in range(8):
    dev = next_dev()
    if not register(dev, k % 2, "reg"):
        sys.exit("setup registration failed")
    renew_devs.append(dev)
open(os.path.join(d, "ready"), "w").close()

ts = [threading.Thread(target=reg_worker, args=(w,)) for w in range(2)]
ts += [threading.Thread(target=renew_worker, args=(renew_devs[k::2],)) for k in range(2)]
ts.append(threading.Thread(target=block_worker))
ts.append(threading.Thread(target=use_worker))
for t in ts:
    t.start()
for t in ts:
    t.join()
stats["unexpected"] = hard
print(json.dumps(stats))
sys.exit(1 if hard else 0)
