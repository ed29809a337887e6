#!/usr/bin/env python3
"""Craft hostile JWS tokens from a real one, for tests/integration/hostile*.sh.

    hostile_jws.py VARIANT TOKEN_FILE SITE_KEY FOREIGN_KEY

Reads the real token's header and claims, changes them as VARIANT says and
signs the result with the site key (openssl dgst: RS256 = PKCS#1 v1.5 over
SHA-256, what the site's rsa2048 file key uses), so that only the one rule
under test is broken. Prints the token. Needs the openssl CLI."""
import hashlib, hmac, json, subprocess, sys, time, uuid
from stkpy import b64u as b64, openssl_sign as sign, unb64u as unb64


def main():
    variant, tokf, key, foreign = sys.argv[1:5]
    h64, p64, s64 = open(tokf).read().strip().split(".")
    hdr = json.loads(unb64(h64))
    cl = json.loads(unb64(p64))
    now = int(time.time())
    raw_hdr = raw_cl = None     # exact JSON text when a variant needs it
    signer = key
    tail = None                 # replaces the signature segment text

    if variant == "valid":
        pass
    elif variant == "alg_none":
        hdr["alg"] = "none"
        tail = ""
    elif variant == "alg_hs256":
        # HMAC keyed with the site's public key (the classic confusion),
        # over the token's own signing input (below), so a server that
        # honoured HS256 would accept it.
        hdr["alg"] = "HS256"
        signer = subprocess.run(["openssl", "pkey", "-in", key, "-pubout"],
                                capture_output=True, check=True).stdout
    elif variant == "alg_es256":
        hdr["alg"] = "ES256"
    elif variant == "crit":
        hdr["crit"] = ["exp"]
    elif variant in ("jku", "x5u"):
        hdr[variant] = "https://attacker.example/keys"
    elif variant == "jwk":
        hdr["jwk"] = {"kty": "RSA", "n": "AQAB", "e": "AQAB"}
    elif variant == "iss":
        cl["iss"] = cl["iss"][:-1] + ("0" if cl["iss"][-1] != "0" else "1")
    elif variant == "iss_case":
        cl["iss"] = cl["iss"].upper()
    elif variant == "aud":
        cl["aud"] = "urn:sccm:service:other"
    elif variant == "type_client":
        cl["Type"] = "ClientAuthentication"
    elif variant == "type_missing":
        del cl["Type"]
    elif variant == "expired":
        cl["nbf"], cl["exp"] = now - 7200, now - 3600
    elif variant == "not_yet":
        cl["nbf"], cl["exp"] = now + 3600, now + 7200
    elif variant == "oversized":
        cl["pad"] = "A" * 8300
    elif variant == "float_exp":
        c2 = dict(cl); del c2["exp"]
        raw_cl = json.dumps(c2)[:-1] + ', "exp": %d.5}' % cl["exp"]
    elif variant == "string_exp":
        cl["exp"] = str(cl["exp"])
    elif variant == "dup_member":
        c2 = dict(cl); del c2["Type"]
        raw_cl = json.dumps(c2)[:-1] + ', "Type": "BulkRegistration", "Type": "BulkRegistration"}'
    elif variant == "dup_header":
        raw_hdr = json.dumps(hdr)[:-1] + ', "alg": "%s"}' % hdr["alg"]
    elif variant == "unknown_id":
        cl["UniqueId"] = str(uuid.uuid4())
    elif variant == "type_bulk":
        cl["Type"] = "BulkRegistration"
    elif variant == "cnf":
        cl["cnf"] = {"x5t#S256": b64(hashlib.sha256(b"another certificate").digest())}
    elif variant == "foreign":
        signer = foreign
    elif variant in ("padding", "stray_bits", "truncated", "extra_segment", "bad_sig"):
        pass  # applied to the encoded token below
    else:
        sys.exit("unknown variant " + variant)

    h = b64(raw_hdr.encode() if raw_hdr else json.dumps(hdr, separators=(",", ":")).encode())
    p = b64(raw_cl.encode() if raw_cl else json.dumps(cl, separators=(",", ":")).encode())
    while variant in ("padding", "stray_bits") and len(p) % 4 == 0:
        # a payload whose encoding needs padding
        cl["x"] = cl.get("x", "") + "a"
        p = b64(json.dumps(cl, separators=(",", ":")).encode())
    if variant == "padding":
        p += "=" * (-len(p) % 4)
    if variant == "stray_bits":
        # set an unused low bit of the last character: same bytes, not canonical
        alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        p = p[:-1] + alpha[alpha.index(p[-1]) ^ 1]
    signing_input = f"{h}.{p}"
    if variant == "alg_hs256":
        tail = b64(hmac.new(signer, signing_input.encode(), hashlib.sha256).digest())
    elif tail is None:
        tail = b64(sign(signer, signing_input.encode()))
    tok = f"{signing_input}.{tail}"
    if variant == "truncated":
        tok = signing_input
    elif variant == "extra_segment":
        tok += "." + tail
    elif variant == "bad_sig":
        tok = tok[:-6] + ("AAAAAA" if not tok.endswith("AAAAAA") else "BBBBBB")
    print(tok)


main()
