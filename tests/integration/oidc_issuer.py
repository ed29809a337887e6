#!/usr/bin/env python3
"""The test's own OIDC issuer (tests/integration/oidc_register.sh): keys, a
JWKS, ID tokens good and bad, and an HTTPS JWKS server on loopback.

  oidc_issuer.py keygen DIR            rsa.pem (2048), ec.pem (P-256), rsa2.pem,
                                       small.pem (RSA 1024); jwks.json (rsa1, ec1),
                                       jwks2.json (+ rsa2), jwks_small.json
  oidc_issuer.py mint DIR [options]    an ID token on stdout
  oidc_issuer.py serve DIR CERT KEY READY
                                       HTTPS on 127.0.0.1 (free port): GET /keys
                                       serves DIR/served.json as it is now; each
                                       GET appends a line to DIR/fetches; the
                                       port goes to READY
"""
import argparse, hashlib, hmac, json, os, ssl, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from stkpy import b64u, ec_jwk, es256


def uint(n):
    return b64u(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def jwk(key, kid):
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return ec_jwk(key, use="sig", kid=kid)
    nums = key.public_key().public_numbers()
    return {"kty": "RSA", "use": "sig", "kid": kid, "n": uint(nums.n), "e": uint(nums.e)}


def save(key, path):
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


def load(d, name):
    with open(os.path.join(d, name + ".pem"), "rb") as f:
        return serialization.load_pem_private_key(f.read(), None)


def keygen(d):
    keys = {"rsa": rsa.generate_private_key(65537, 2048),
            "ec": ec.generate_private_key(ec.SECP256R1()),
            "rsa2": rsa.generate_private_key(65537, 2048),
            "small": rsa.generate_private_key(65537, 1024)}
    for name, k in keys.items():
        save(k, os.path.join(d, name + ".pem"))
    base = [jwk(keys["rsa"], "rsa1"), jwk(keys["ec"], "ec1")]
    # An encryption key and an "oct" key are skipped, not refused.
    extra = [{"kty": "oct", "kid": "hmac", "k": b64u(b"0123456789abcdef")}]
    json.dump({"keys": base + extra}, open(os.path.join(d, "jwks.json"), "w"))
    json.dump({"keys": base + [jwk(keys["rsa2"], "rsa2")]},
              open(os.path.join(d, "jwks2.json"), "w"))
    json.dump({"keys": base + [jwk(keys["small"], "small1")]},
              open(os.path.join(d, "jwks_small.json"), "w"))


def mint(a):
    key = load(a.dir, a.key)
    now = int(time.time())
    hdr = {"typ": "JWT", "alg": a.alg or ("ES256" if a.key == "ec" else "RS256"),
           "kid": a.kid or {"rsa": "rsa1", "ec": "ec1", "rsa2": "rsa2", "small": "small1"}[a.key]}
    claims = {"iss": a.iss, "aud": json.loads(a.aud) if a.aud.startswith("[") else a.aud,
              "iat": now, "nbf": now - 5, "exp": now + a.exp_in, "sub": a.sub,
              "tid": a.tid}
    if a.device is not None:
        claims[a.device_claim] = a.device
    if a.pad:
        claims["pad"] = "x" * a.pad
    h = json.dumps(hdr, separators=(",", ":"))
    p = json.dumps(claims, separators=(",", ":"))
    if a.dup:
        # The same member twice: a strict parser refuses it, a lax one takes
        # the last (another device).
        p = p[:-1] + ',"%s":"%s"}' % (a.device_claim, a.dup)
    signing = (b64u(h.encode()) + "." + b64u(p.encode())).encode()
    if hdr["alg"] == "none":
        sig = b""
    elif hdr["alg"].startswith("HS"):
        sig = hmac.new(b"0123456789abcdef", signing, hashlib.sha256).digest()
    elif isinstance(key, rsa.RSAPrivateKey):
        sig = key.sign(signing, padding.PKCS1v15(), hashes.SHA256())
    else:
        sig = es256(key, signing)
    sys.stdout.write(signing.decode() + "." + b64u(sig))


def serve(d, cert, key, ready):
    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            with open(os.path.join(d, "fetches"), "a") as f:
                f.write(self.path + "\n")
            if self.path != "/keys":
                self.send_error(404)
                return
            body = open(os.path.join(d, "served.json"), "rb").read()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    with open(ready + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(ready + ".tmp", ready)
    srv.serve_forever()


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keygen")
    k.add_argument("dir")
    m = sub.add_parser("mint")
    m.add_argument("dir")
    for opt, default in (("key", "rsa"), ("kid", None), ("alg", None),
                         ("iss", "https://issuer.test/tenant1/v2.0"), ("aud", "api://sitetoken"),
                         ("sub", "subject-1"), ("tid", "tenant1"), ("device", "dev-0001"),
                         ("device-claim", "deviceId"), ("exp-in", 600), ("pad", 0), ("dup", None)):
        m.add_argument("--" + opt, default=default,
                       type=str if default is None else type(default))
    m.add_argument("--no-device", dest="device", action="store_const", const=None)
    s = sub.add_parser("serve")
    for n in ("dir", "cert", "key", "ready"):
        s.add_argument(n)
    a = ap.parse_args()
    if a.cmd == "keygen":
        keygen(a.dir)
    elif a.cmd == "mint":
        mint(a)
    else:
        serve(a.dir, a.cert, a.key, a.ready)


if __name__ == "__main__":
    main()
