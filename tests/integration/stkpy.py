"""What the Python helpers of tests/integration share: base64url, ES256 and
openssl signatures, P-256 JWKs, the HTTP MP's proof of possession and
one POST to the MP (HTTP) or the CMG (mutual TLS). Stdlib and
python3-cryptography."""
import base64, hashlib, http.client, json, ssl, subprocess
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unb64u(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def thumb(pem):
    """x5t#S256 of a PEM certificate."""
    return b64u(hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).digest())


def openssl_sign(key_file, data):
    """SHA-256 signature by `openssl dgst` (PKCS#1 v1.5, or DER ECDSA)."""
    return subprocess.run(["openssl", "dgst", "-sha256", "-sign", key_file], input=data,
                          capture_output=True, check=True).stdout


def es256(key, msg):
    """ES256 signature as JWS wants it: raw r||s."""
    r, s = decode_dss_signature(key.sign(msg, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def ec_jwk(key, **extra):
    """The public JWK of a P-256 private key."""
    n = key.public_key().public_numbers()
    return {"kty": "EC", "crv": "P-256", "x": b64u(n.x.to_bytes(32, "big")),
            "y": b64u(n.y.to_bytes(32, "big")), **extra}


def pop_proof(nonce, pem, key_file):
    """The HTTP MP's proof of possession (docs/api.md): its challenge signed
    with the device key (openssl writes ECDSA as DER, which the MP takes)."""
    return b64u(openssl_sign(key_file, f"sitetoken-register-v1\n{nonce}\n{thumb(pem)}".encode()))


def post(port, path, body, timeout, cafile=None, crt=None, key=None, token=None):
    """One POST to 127.0.0.1:PORT, over mutual TLS when CAFILE is given:
    (status, raw body); OSError or HTTPException when there is no answer."""
    if cafile:
        ctx = ssl.create_default_context(cafile=cafile)
        ctx.load_cert_chain(crt, key)
        c = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=ctx)
    else:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    hdr = {"Content-Type": "application/json"}
    if token:
        hdr["Authorization"] = "Bearer " + token
    try:
        c.request("POST", path, json.dumps(body), hdr)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()
