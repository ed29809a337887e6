#!/usr/bin/env python3
"""Registration load for tests/integration/crash.sh, while the server is
killed -9 and restarted under it.

    crash_clients.py DIR MP_PORT CMG_PORT CMG_PATH CAFILE BULK_FILE THREADS STOP_FILE PAUSE

DIR holds device identities d<N>.crt/.key (made beforehand). Each thread
takes the next unused identity and registers it once, alternately with the
MP (HTTP, certificate in the body with its challenge signed) and through the CMG (mutual TLS, bulk
token); a connection error abandons the identity (it may or may not have
been committed: both are fine). Every 200 is appended to DIR/acked as
"guid jti thumbprint-of-cert via" and flushed before the next request.
Each thread pauses PAUSE seconds between registrations, so the identities
last across all the kills. Stops when STOP_FILE exists or identities run out."""
import http.client, json, os, sys, threading, time
from stkpy import pop_proof, post, thumb

d, mp_port, cmg_port, cmg_path, cafile, bulkf, nthr, stopf, pause = sys.argv[1:10]
pause = float(pause)
mp_port, cmg_port, nthr = int(mp_port), int(cmg_port), int(nthr)
bulk = open(bulkf).read().strip()
idents = sorted(int(f[1:-4]) for f in os.listdir(d) if f.startswith("d") and f.endswith(".crt"))
lock = threading.Lock()
acked = open(os.path.join(d, "acked"), "a")
stats = {"ok": 0, "err": 0, "refused": 0}


def next_ident():
    with lock:
        return idents.pop() if idents else None


def one(n):
    crt, key = os.path.join(d, f"d{n}.crt"), os.path.join(d, f"d{n}.key")
    pem = open(crt).read()
    try:
        if n % 2:
            st, data = post(mp_port, "/sitetoken/v1/challenge", {}, 10)
            nonce = json.loads(data)["nonce"]
            body = {"certificate": pem, "nonce": nonce, "proof": pop_proof(nonce, pem, key)}
            via, st, data = "mp", *post(mp_port, "/sitetoken/v1/register", body, 10)
        else:
            via, st, data = "cmg", *post(cmg_port, cmg_path + "/sitetoken/v1/register",
                                         {"bulk_token": bulk}, 10, cafile, crt, key)
    except (OSError, http.client.HTTPException, ValueError, KeyError):
        with lock:
            stats["err"] += 1
        return
    with lock:
        if st == 200:
            o = json.loads(data)
            acked.write(f"{o['device_guid']} {o['jti']} {thumb(pem)} {via}\n")
            acked.flush()
            os.fsync(acked.fileno())
            stats["ok"] += 1
        elif st == 401 and b"challenge_invalid" in data:
            # The server was killed between the challenge and the
            # registration: a challenge is good on the process that made it.
            stats["err"] += 1
        else:
            stats["refused"] += 1
            print(f"refused {st} {data[:200]!r}", file=sys.stderr)


def worker():
    while not os.path.exists(stopf):
        n = next_ident()
        if n is None:
            return
        one(n)
        time.sleep(pause)


ts = [threading.Thread(target=worker) for _ in range(nthr)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print(f"acknowledged {stats['ok']}, connection errors {stats['err']}, refused {stats['refused']}")
