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
import base64, hashlib, http.client, json, os, ssl, subprocess, sys, threading, time

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


def thumb(pem):
    der = ssl.PEM_cert_to_DER_cert(pem)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def mp_proof(pem, key):
    """The HTTP MP's proof of possession (docs/api.md): its challenge signed
    with the device key (openssl writes ECDSA as DER, which the MP takes)."""
    c = http.client.HTTPConnection("127.0.0.1", mp_port, timeout=10)
    try:
        c.request("POST", "/sitetoken/v1/challenge", "{}", {"Content-Type": "application/json"})
        nonce = json.loads(c.getresponse().read())["nonce"]
    finally:
        c.close()
    msg = f"sitetoken-register-v1\n{nonce}\n{thumb(pem)}".encode()
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=msg,
                         capture_output=True, check=True).stdout
    return nonce, b64u(sig)


def one(n):
    crt, key = os.path.join(d, f"d{n}.crt"), os.path.join(d, f"d{n}.key")
    pem = open(crt).read()
    if n % 2:
        try:
            nonce, proof = mp_proof(pem, key)
        except (OSError, http.client.HTTPException, ValueError, KeyError):
            with lock:
                stats["err"] += 1
            return
        c = http.client.HTTPConnection("127.0.0.1", mp_port, timeout=10)
        body = json.dumps({"certificate": pem, "nonce": nonce, "proof": proof})
        path, via = "/sitetoken/v1/register", "mp"
    else:
        ctx = ssl.create_default_context(cafile=cafile)
        ctx.load_cert_chain(crt, key)
        c = http.client.HTTPSConnection("127.0.0.1", cmg_port, timeout=10, context=ctx)
        body, path, via = json.dumps({"bulk_token": bulk}), cmg_path + "/sitetoken/v1/register", "cmg"
    try:
        c.request("POST", path, body, {"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
    except (OSError, http.client.HTTPException):
        with lock:
            stats["err"] += 1
        return
    finally:
        c.close()
    with lock:
        if r.status == 200:
            o = json.loads(data)
            acked.write(f"{o['device_guid']} {o['jti']} {thumb(pem)} {via}\n")
            acked.flush()
            os.fsync(acked.fileno())
            stats["ok"] += 1
        elif r.status == 401 and b"challenge_invalid" in data:
            # The server was killed between the challenge and the
            # registration: a challenge is good on the process that made it.
            stats["err"] += 1
        else:
            stats["refused"] += 1
            print(f"refused {r.status} {data[:200]!r}", file=sys.stderr)


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
