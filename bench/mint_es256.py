#!/usr/bin/env python3
"""An ES256 key pair, its JWKS and one signed token, with the openssl CLI and the stdlib only.

Usage: mint_es256.py DIR ISSUER AUDIENCE SUBJECT
Writes DIR/es256.pem (private key) and DIR/jwks.json; prints the token (valid one day).

Why openssl: the stdlib has no ECDSA. openssl signs and hands back a DER signature
(SEQUENCE of two INTEGERs); JWS wants the raw 32-byte r and s concatenated (RFC 7518 §3.4).
"""
import base64
import json
import subprocess
import sys
import time


def b64url(data: bytes) -> str:
    # Canonical base64url without padding: palisade refuses any other spelling.
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def der_integers(der: bytes) -> list[int]:
    """The INTEGERs of a DER SEQUENCE (an ECDSA-Sig-Value: r, s)."""
    assert der[0] == 0x30, "not a SEQUENCE"
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    values = []
    while i < len(der):
        assert der[i] == 0x02, "not an INTEGER"
        length = der[i + 1]
        values.append(int.from_bytes(der[i + 2 : i + 2 + length], "big"))
        i += 2 + length
    return values


def main() -> None:
    directory, issuer, audience, subject = sys.argv[1:5]
    pem = f"{directory}/es256.pem"
    subprocess.run(
        ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", pem],
        check=True,
    )
    # The public key's DER ends with the uncompressed point 04 || x || y.
    public = subprocess.run(
        ["openssl", "ec", "-in", pem, "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    point = public[-65:]
    assert point[0] == 4, "expected an uncompressed point"
    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url(point[1:33]),
        "y": b64url(point[33:]),
        "kid": "bench",
        "alg": "ES256",
        "use": "sig",
    }
    with open(f"{directory}/jwks.json", "w") as f:
        json.dump({"keys": [jwk]}, f)

    now = int(time.time())
    header = {"alg": "ES256", "typ": "JWT", "kid": "bench"}
    claims = {"iss": issuer, "aud": audience, "sub": subject, "iat": now, "nbf": now,
              "exp": now + 86400, "roles": ["bench"]}
    signing_input = ".".join(
        b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    der = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", pem],
        input=signing_input.encode(),
        check=True,
        capture_output=True,
    ).stdout
    r, s = der_integers(der)
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    print(f"{signing_input}.{b64url(signature)}")


if __name__ == "__main__":
    main()
