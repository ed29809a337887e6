#!/usr/bin/env python3
"""Slow clients against one listener (tests/integration/hostile_conn.sh).

    hostile_slowloris.py PORT TLS(0|1) CAFILE CONNS PER_IP TIMEOUT

An attacker at 127.0.0.2 opens CONNS connections (more than the listener's
total limit) and then trickles one header byte per second on every
connection the server kept (HTTP) or never starts the TLS handshake (TLS).
Meanwhile a client at 127.0.0.1 must get GET health answered quickly, every
time. Then: the server kept at most PER_IP of the attacker's connections,
and closes a silent one within TIMEOUT (+ slack) seconds.
Prints one "ok - ..." line per check; exit 1 on any failure."""
import http.client, socket, ssl, sys, time

port, tls, cafile = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3]
conns, per_ip, timeout = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
fails = 0


def check(cond, what):
    global fails
    print(("ok - " if cond else "FAIL - ") + what, flush=True)
    if not cond:
        fails += 1


def legit():
    """One GET health from 127.0.0.1; seconds taken, or None on failure."""
    t0 = time.monotonic()
    try:
        if tls:
            ctx = ssl.create_default_context(cafile=cafile)
            c = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=ctx)
        else:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/sitetoken/v1/health" if not tls else path)
        r = c.getresponse()
        ok = r.status == 200
        r.read()
        c.close()
        return time.monotonic() - t0 if ok else None
    except OSError:
        return None


path = sys.argv[7] + "/sitetoken/v1/health" if tls else None
kind = "TLS" if tls else "HTTP"
socks = []
for _ in range(conns):
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
        if not tls:
            s.sendall(b"GET /sitetoken/v1/health HTTP/1.1\r\nHost: x\r\n")
        socks.append(s)
    except OSError:
        s.close()
time.sleep(1)


def alive(s):
    """The server has not closed this connection. Neither protocol has the
    server speak first: any bytes (a TLS alert) announce the close."""
    s.setblocking(False)
    try:
        s.recv(1)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        s.setblocking(True)


kept = [s for s in socks if alive(s)]
check(len(kept) <= per_ip, f"{kind}: the server kept {len(kept)} of {conns} connections "
      f"from one address (per-address limit {per_ip})")
# Trickle on the kept connections while the legitimate client works.
worst, failed = 0.0, 0
t_end = time.monotonic() + 6
i = 0
while time.monotonic() < t_end:
    if not tls:
        for s in kept:
            try:
                s.sendall(b"X-%d: y\r\n" % i)
            except OSError:
                pass
    for _ in range(3):
        t = legit()
        if t is None:
            failed += 1
        else:
            worst = max(worst, t)
    i += 1
    time.sleep(1)
check(failed == 0 and worst < 5.0, f"{kind}: a legitimate client was served every time "
      f"during the slow-client attack (worst {worst:.2f} s, {failed} failures)")
# Silent connections are closed after the idle timeout.
t0 = time.monotonic()
idle = []
for _ in range(5):
    s = socket.socket()
    s.bind(("127.0.0.3", 0))
    s.connect(("127.0.0.1", port))
    idle.append(s)
for s in kept:
    s.close()
deadline = t0 + timeout + 5
while time.monotonic() < deadline and any(alive(s) for s in idle):
    time.sleep(0.5)
check(not any(alive(s) for s in idle), f"{kind}: silent connections closed by the server "
      f"after {time.monotonic() - t0:.1f} s (timeout {timeout} s)")
for s in socks + idle:
    s.close()
sys.exit(1 if fails else 0)
