#!/usr/bin/env python3
"""The database writer's tools (SPEC threat model, attacker 3): what someone
with SQL access but without the site directory or the site's TPM/HSM can
compute. Prints SQL for the test to run through `sqlite3` (or its PostgreSQL
stand-in, pg_sqlite3.sh).

  forge.py keygen DIR GUID          own P-256 key + certificate; prints kid
  forge.py keyrow DIR NODE STATUS STORE   SQL inserting that key as a site key
  forge.py rehash SEQ               stdin: seq|at|actor|event|subject|outcome|ref|detail
                                    SQL: edit SEQ, re-chain
  forge.py resign DIR GUID          stdin: seq|hash|at; SQL: re-sign checkpoints
  forge.py token DIR GUID           a bulk token signed by the forger's key
"""
import datetime, hashlib, json, sys, time, uuid
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from stkpy import b64u, ec_jwk, es256


def load(d):
    key = serialization.load_pem_private_key(open(d + "/forger.pem", "rb").read(), None)
    der = open(d + "/forger.der", "rb").read()
    return key, der


def kid_of(key):
    return b64u(hashlib.sha256(json.dumps(ec_jwk(key), sort_keys=True,
                                          separators=(",", ":")).encode()).digest())


def sign(key, msg):
    return b64u(es256(key, msg))


def q(s):
    return "'" + s.replace("'", "''") + "'"


def audit_hash(seq, at, actor, event, subject, outcome, detail, prev, ref):
    fields = [f"{seq}:{at}", actor, event, subject, outcome, detail, prev, "sitetoken-audit-v1"]
    if ref:
        fields.append(ref)
    return hashlib.sha256("".join(f"{len(x.encode())}:{x}" for x in fields).encode()).hexdigest()


cmd = sys.argv[1]
if cmd == "keygen":
    d, guid = sys.argv[2], sys.argv[3]
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, guid)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365)).sign(key, hashes.SHA256()))
    open(d + "/forger.pem", "wb").write(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    open(d + "/forger.der", "wb").write(cert.public_bytes(serialization.Encoding.DER))
    print(kid_of(key))
elif cmd == "keyrow":
    d, node, status, store = sys.argv[2:6]
    key, der = load(d)
    blob = ("X'%s'" % der.hex()) if store == "sqlite" else ("decode('%s','hex')" % der.hex())
    k = kid_of(key)
    # It even "endorses" itself: an endorsement only counts from a trusted key.
    print("INSERT INTO site_keys (kid, node, backend, key_uri, key_type, cert, status,"
          " created_at, endorsed_by, endorsement) VALUES (%s, %s, 'file', 'file:/nonexistent',"
          " 'p256', %s, %s, %d, %s, %s);" % (q(k), q(node), blob, q(status),
                                              int(time.time()) + 1, q(k), q(sign(key, b"x"))))
elif cmd == "rehash":
    edit = int(sys.argv[2])
    prev = "0" * 64
    out = []
    for line in sys.stdin.read().splitlines():
        seq, at, actor, event, subject, outcome, ref, detail = line.split("|", 7)
        seq = int(seq)
        if seq == edit:
            actor = "mallory"
        h = audit_hash(seq, at, actor, event, subject, outcome, detail, prev, ref)
        out.append("UPDATE audit SET actor=%s, prev_hash=%s, hash=%s WHERE seq=%d;"
                   % (q(actor), q(prev), q(h), seq))
        prev = h
    print("\n".join(out))
elif cmd == "resign":
    d, guid = sys.argv[2], sys.argv[3]
    key, _ = load(d)
    k = kid_of(key)
    for line in sys.stdin.read().splitlines():
        seq, h, at = line.split("|")
        msg = f"sitetoken audit checkpoint v1\n{guid}\n{seq}\n{h}\n{at}\n".encode()
        print("UPDATE audit_checkpoints SET head_hash=%s, kid=%s, sig=%s WHERE seq=%s;"
              % (q(h), q(k), q(sign(key, msg)), seq))
elif cmd == "token":
    d, guid = sys.argv[2], sys.argv[3]
    key, der = load(d)
    now = int(time.time())
    hdr = {"typ": "JWT", "alg": "ES256", "x5t": b64u(hashlib.sha1(der).digest()),
           "kid": kid_of(key)}
    tok = str(uuid.uuid4())
    claims = {"SCCMTokenCategory": "SCCMPreAuthToken", "Authority": "SCCM",
              "License": "SCCM", "Type": "BulkRegistration", "TenantId": guid.upper(),
              "UniqueId": tok, "iss": "urn:sccm:oauth2:" + guid.lower(),
              "aud": "urn:sccm:service", "nbf": now - 10, "exp": now + 3600}
    inp = b64u(json.dumps(hdr, separators=(",", ":")).encode()) + "." + \
        b64u(json.dumps(claims, separators=(",", ":")).encode())
    print(tok + " " + inp + "." + sign(key, inp.encode()))
