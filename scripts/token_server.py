#!/usr/bin/env python3
"""scripts/token_server.py — a Docker registry token server for strata's tests.

Implements the token protocol that the distribution registry's `auth: token`
expects (the "Docker Registry v2 authentication" spec), on loopback only:

  GET  /token?service=S&scope=repository:NAME:pull,push[&scope=...]
       [&account=U][&offline_token=true][&client_id=C]
       optional `Authorization: Basic ...`
  POST /token   (OAuth2 form: grant_type=password|refresh_token, service,
                 scope (space separated), username, password, refresh_token,
                 access_type=offline, client_id)
  GET  /stats   {"requests": N, "scopes": {"repository:x:pull": n, ...},
                 "anonymous": n, "authenticated": n, "refused": n}
  POST /reset   zero the counters
  GET  /healthz "ok"

Access policy: a full user (--user, default strata/strata-secret) gets every
action it asks for; a reader (--reader, default reader/reader-secret) and an
anonymous client get `pull` only; a wrong password or unknown user is 401.
A `service` other than --service is refused with 400.

Tokens are RS256 JWTs signed with --key (PEM, RSA). The header carries the
signing certificate (--cert) as `x5c`, and `kid` in libtrust's key-ID format
as well; the registry's rootcertbundle must hold that certificate.
`--header x5c` or `--header kid` puts only one of them (to test each path).

Standard library only: the RSA signature (PKCS#1 v1.5, SHA-256) is computed
here from the key's integers, read with a minimal DER reader.
"""

import argparse
import base64
import binascii
import hashlib
import json
import os
import re
import secrets
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# ----------------------------------------------------------------- DER / keys


def der_item(buf, pos):
    """Read one DER TLV at pos: returns (tag, start of contents, end)."""
    tag = buf[pos]
    length = buf[pos + 1]
    pos += 2
    if length & 0x80:
        nbytes = length & 0x7F
        length = int.from_bytes(buf[pos:pos + nbytes], "big")
        pos += nbytes
    return tag, pos, pos + length


def der_children(buf, start, end):
    """The (tag, start, end) of each TLV between start and end."""
    out = []
    pos = start
    while pos < end:
        tag, cstart, cend = der_item(buf, pos)
        out.append((tag, cstart, cend))
        pos = cend
    return out


def pem_blocks(text):
    """{label: DER bytes} of the PEM blocks in text (first of each label)."""
    out = {}
    for m in re.finditer(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", text, re.S):
        out.setdefault(m.group(1), base64.b64decode("".join(m.group(2).split())))
    return out


class RsaKey:
    """An RSA private key: n, e, d and the CRT parts, from PKCS#1 or PKCS#8 PEM."""

    def __init__(self, pem_text):
        blocks = pem_blocks(pem_text)
        if "RSA PRIVATE KEY" in blocks:
            der = blocks["RSA PRIVATE KEY"]
        elif "PRIVATE KEY" in blocks:
            outer = blocks["PRIVATE KEY"]
            _, s, e = der_item(outer, 0)
            parts = der_children(outer, s, e)
            # PrivateKeyInfo: version, AlgorithmIdentifier, OCTET STRING key
            _, ks, ke = parts[2]
            der = outer[ks:ke]
        else:
            raise ValueError("no RSA private key in PEM")
        _, s, e = der_item(der, 0)
        ints = [int.from_bytes(der[a:b], "big") for _, a, b in der_children(der, s, e)]
        _, self.n, self.e, self.d, self.p, self.q, self.dp, self.dq, self.qinv = ints[:9]
        self.size = (self.n.bit_length() + 7) // 8

    def sign_sha256(self, data):
        """RSASSA-PKCS1-v1_5 with SHA-256."""
        digest_info = bytes.fromhex("3031300d060960864801650304020105000420")
        t = digest_info + hashlib.sha256(data).digest()
        em = b"\x00\x01" + b"\xff" * (self.size - len(t) - 3) + b"\x00" + t
        m = int.from_bytes(em, "big")
        # CRT: much faster than pow(m, d, n)
        m1 = pow(m, self.dp, self.p)
        m2 = pow(m, self.dq, self.q)
        h = (self.qinv * (m1 - m2)) % self.p
        s = m2 + h * self.q
        return s.to_bytes(self.size, "big")


def cert_der(pem_text):
    blocks = pem_blocks(pem_text)
    if "CERTIFICATE" not in blocks:
        raise ValueError("no certificate in PEM")
    return blocks["CERTIFICATE"]


def libtrust_key_id(cert):
    """libtrust's key ID of a certificate's public key: the first 240 bits of
    SHA-256 over the DER SubjectPublicKeyInfo, base32, in 12 groups of 4."""
    _, s, _ = der_item(cert, 0)          # Certificate
    _, pos, _ = der_item(cert, s)        # tbsCertificate: walk its fields
    if cert[pos] == 0xA0:                # explicit [0] version
        pos = der_item(cert, pos)[2]
    # serial, signature algorithm, issuer, validity, subject, then the SPKI
    for _ in range(5):
        pos = der_item(cert, pos)[2]
    spki = cert[pos:der_item(cert, pos)[2]]
    digest = hashlib.sha256(spki).digest()[:30]
    b32 = base64.b32encode(digest).decode().rstrip("=")
    return ":".join(b32[i:i + 4] for i in range(0, len(b32), 4))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# ----------------------------------------------------------------- server


class TokenIssuer:
    def __init__(self, args):
        with open(args.key, encoding="ascii") as f:
            self.key = RsaKey(f.read())
        with open(args.cert, encoding="ascii") as f:
            cert = cert_der(f.read())
        self.header = {"typ": "JWT", "alg": "RS256"}
        if args.header in ("both", "x5c"):
            self.header["x5c"] = [base64.b64encode(cert).decode()]
        if args.header in ("both", "kid"):
            self.header["kid"] = libtrust_key_id(cert)
        self.issuer = args.issuer
        self.service = args.service
        self.lifetime = args.lifetime
        self.full = dict(u.split(":", 1) for u in args.user)
        self.readers = dict(u.split(":", 1) for u in args.reader)
        self.refresh = {}  # refresh token -> user
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.stats = {"requests": 0, "anonymous": 0, "authenticated": 0,
                          "refused": 0, "scopes": {}}

    def count(self, field, scopes=()):
        with self.lock:
            self.stats[field] += 1
            for s in scopes:
                self.stats["scopes"][s] = self.stats["scopes"].get(s, 0) + 1

    def check(self, user, password):
        """'full', 'reader', or None for bad credentials."""
        if user in self.full and secrets.compare_digest(self.full[user], password):
            return "full"
        if user in self.readers and secrets.compare_digest(self.readers[user], password):
            return "reader"
        return None

    def role_of(self, user):
        return "full" if user in self.full else "reader"

    @staticmethod
    def grant(role, scope):
        """The access entry for one requested scope, or None."""
        m = re.fullmatch(r"([a-z0-9]+(?:\([^)]*\))?):(.+):([a-z*,]*)", scope)
        if not m:
            return None
        rtype, name, actions = m.group(1), m.group(2), [a for a in m.group(3).split(",") if a]
        if role != "full":
            if rtype.split("(")[0] != "repository":
                return None
            actions = [a for a in actions if a == "pull"]
        return {"type": rtype, "name": name, "actions": actions}

    def issue(self, subject, role, scopes):
        now = int(time.time())
        access = []
        for s in scopes:
            g = self.grant(role, s)
            if g is not None:
                access.append(g)
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + self.lifetime,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        signing_input = (b64url(json.dumps(self.header, separators=(",", ":")).encode())
                         + "." + b64url(json.dumps(claims, separators=(",", ":")).encode()))
        sig = self.key.sign_sha256(signing_input.encode())
        token = signing_input + "." + b64url(sig)
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        return {"token": token, "access_token": token, "expires_in": self.lifetime,
                "issued_at": issued}


def split_scopes(values):
    out = []
    for v in values:
        out.extend(s for s in v.split(" ") if s)
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "strata-token-server"
    issuer = None  # set in main

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (time.strftime("%H:%M:%S"), fmt % args))

    def reply(self, status, body, headers=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if not isinstance(body, bytes)
                         else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def error(self, status, code, message, headers=()):
        self.reply(status, {"errors": [{"code": code, "message": message}],
                            "error": code.lower(), "details": message}, headers)

    def unauthorized(self, scopes):
        self.issuer.count("refused", scopes)
        self.error(401, "UNAUTHORIZED", "bad username or password",
                   [("WWW-Authenticate", 'Basic realm="strata-test-token-server"')])

    def basic_credentials(self):
        """(user, password) from Basic auth, None if absent, False if malformed."""
        h = self.headers.get("Authorization")
        if not h:
            return None
        kind, _, value = h.partition(" ")
        if kind.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return (user, password) if sep else False

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        iss = self.issuer
        if url.path == "/healthz":
            return self.reply(200, b"ok")
        if url.path == "/stats":
            with iss.lock:
                return self.reply(200, iss.stats)
        if url.path != "/token":
            return self.error(404, "NOT_FOUND", "no such endpoint")
        iss.count("requests")
        scopes = split_scopes(q.get("scope", []))
        service = q.get("service", [iss.service])[0]
        if service != iss.service:
            iss.count("refused", scopes)
            return self.error(400, "INVALID_SERVICE", "unknown service %r" % service)
        creds = self.basic_credentials()
        if creds is False:
            return self.unauthorized(scopes)
        if creds is None:
            iss.count("anonymous", scopes)
            return self.reply(200, iss.issue("", "anonymous", scopes))
        role = iss.check(*creds)
        if role is None:
            return self.unauthorized(scopes)
        iss.count("authenticated", scopes)
        body = iss.issue(creds[0], role, scopes)
        if q.get("offline_token", ["false"])[0] == "true":
            body["refresh_token"] = self.new_refresh(creds[0])
        self.reply(200, body)

    def new_refresh(self, user):
        token = secrets.token_urlsafe(24)
        with self.issuer.lock:
            self.issuer.refresh[token] = user
        return token

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        iss = self.issuer
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if url.path == "/reset":
            iss.reset()
            return self.reply(200, {"reset": True})
        if url.path != "/token":
            return self.error(404, "NOT_FOUND", "no such endpoint")
        iss.count("requests")
        form = urllib.parse.parse_qs(raw.decode("utf-8", "replace"))
        field = lambda name, default="": form.get(name, [default])[0]  # noqa: E731
        scopes = split_scopes(form.get("scope", []))
        if field("service", iss.service) != iss.service:
            iss.count("refused", scopes)
            return self.error(400, "INVALID_SERVICE", "unknown service")
        grant = field("grant_type")
        if grant == "password":
            user = field("username")
            role = iss.check(user, field("password"))
            if role is None:
                return self.unauthorized(scopes)
        elif grant == "refresh_token":
            with iss.lock:
                user = iss.refresh.get(field("refresh_token"))
            if user is None:
                return self.unauthorized(scopes)
            role = iss.role_of(user)
        else:
            return self.error(400, "UNSUPPORTED_GRANT_TYPE", "grant_type %r" % grant)
        iss.count("authenticated", scopes)
        body = iss.issue(user, role, scopes)
        body["scope"] = " ".join(scopes)
        if grant == "password" and field("access_type") == "offline":
            body["refresh_token"] = self.new_refresh(user)
        self.reply(200, body)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--key", required=True, help="RSA private key (PEM) that signs tokens")
    ap.add_argument("--cert", required=True, help="its certificate (in rootcertbundle)")
    ap.add_argument("--issuer", default="strata-test-issuer")
    ap.add_argument("--service", default="strata-test-registry")
    ap.add_argument("--lifetime", type=int, default=300, help="token lifetime, seconds")
    ap.add_argument("--user", action="append", help="USER:PASSWORD with every action")
    ap.add_argument("--reader", action="append", help="USER:PASSWORD with pull only")
    ap.add_argument("--header", choices=("both", "x5c", "kid"), default="both",
                    help="how the JWT header names the signing key")
    args = ap.parse_args()
    args.user = args.user or ["strata:strata-secret"]
    args.reader = args.reader or ["reader:reader-secret"]
    Handler.issuer = TokenIssuer(args)
    server = ThreadingHTTPServer((args.listen, args.port), Handler)
    server.daemon_threads = True
    sys.stderr.write("token server on http://%s:%d/token (pid %d)\n"
                     % (args.listen, args.port, os.getpid()))
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
