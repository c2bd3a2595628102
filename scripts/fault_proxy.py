#!/usr/bin/env python3
"""scripts/fault_proxy.py — an HTTP proxy that injects faults, for strata's tests.

Sits in front of a plain-HTTP registry (--upstream HOST:PORT) and forwards
every request to it: any method, request bodies with Content-Length or
chunked transfer encoding, bodies streamed in both directions, the Host
header passed through unchanged (so the registry's Location headers point
back at the proxy). One upstream connection per request; client connections
are kept alive.

A control API on a second port (--control-port) arms faults for the next N
requests that match a method and a path regex:

  POST /faults   JSON body or query parameters:
                   fault   reset | short | slow | status:NNN   (required)
                   method  GET, HEAD, ... (default: any)
                   path    regex searched in the request target (default: any)
                   count   how many matching requests get it (default 1)
                   skip    let this many matching requests through first (0)
                   bytes   body bytes sent before the cut (reset/short;
                           default half the body)
                   rate    body bytes per second (slow; default 65536)
                 answers 201 {"id": N, ...}
  GET  /faults   the armed faults and what is left of each
  GET  /log      [{"seq", "method", "path", "status", "range", "fault"}, ...]
                 one entry per request, in order of arrival; status is the
                 one sent (for reset/short the upstream's), set before the
                 first response byte leaves (null while the upstream has
                 not answered, or if it could not be reached)
  POST /reset    clear faults and log
  GET  /healthz  "ok"

Faults:
  reset       forward, send the headers (full Content-Length) and the first
              half of the body, then abort the connection (TCP RST). A
              response without a body (HEAD, 202 with Content-Length: 0, ...):
              the request still reaches the registry, but the connection is
              closed before any of the response is sent.
  short       the same, but a clean close (FIN): the body simply ends early.
  slow        forward, but send the response body at `rate` bytes per
              second, whole: a stalled transfer, for timeouts.
  status:NNN  do not forward; drain the request body and answer NNN with a
              registry-style JSON error. 429 comes with `Retry-After: 1`
              (the `retry_after` parameter changes it), 503 too when
              `retry_after` is given.

Standard library only.
"""

import argparse
import http.client
import json
import os
import re
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK = 64 * 1024
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
              "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
              "expect"}
STATUS_CODES = {429: "TOOMANYREQUESTS", 500: "UNKNOWN", 502: "UNAVAILABLE",
                503: "UNAVAILABLE", 504: "UNAVAILABLE"}


class Faults:
    """Armed faults and the request log, shared by all threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.armed = []
        self.log = []
        self.next_id = 1

    def reset(self):
        with self.lock:
            self.armed = []
            self.log = []

    def arm(self, spec):
        kind = str(spec.get("fault", ""))
        if kind not in ("reset", "short", "slow") and not re.fullmatch(r"status:[1-5][0-9][0-9]", kind):
            raise ValueError("fault must be reset, short, slow or status:NNN, not %r" % kind)
        method = str(spec.get("method") or "").upper() or None
        path = str(spec.get("path") or "")
        re.compile(path)
        fault = {
            "fault": kind,
            "method": method,
            "path": path,
            "count": int(spec.get("count", 1)),
            "skip": int(spec.get("skip", 0)),
            "bytes": int(spec["bytes"]) if spec.get("bytes") not in (None, "") else None,
            "retry_after": spec.get("retry_after"),
            "rate": int(spec.get("rate") or 65536),
        }
        if fault["count"] < 1 or fault["skip"] < 0:
            raise ValueError("count must be >= 1 and skip >= 0")
        with self.lock:
            fault["id"] = self.next_id
            self.next_id += 1
            self.armed.append(fault)
        return fault

    def take(self, method, target):
        """The fault for this request (consuming one use), or None."""
        with self.lock:
            for f in self.armed:
                if f["method"] and f["method"] != method:
                    continue
                if not re.search(f["path"], target):
                    continue
                if f["skip"] > 0:
                    f["skip"] -= 1
                    continue
                f["count"] -= 1
                if f["count"] == 0:
                    self.armed.remove(f)
                return dict(f)
        return None

    def record(self, entry):
        with self.lock:
            entry["seq"] = len(self.log) + 1
            self.log.append(entry)


FAULTS = Faults()


def log(msg):
    # a TLS handshake sent to the plain port is logged as text, not binary
    msg = msg.encode("ascii", "backslashreplace").decode("ascii")
    sys.stderr.write("%s %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream = ("127.0.0.1", 5000)  # set in main
    timeout = 600  # idle client connections

    def log_message(self, fmt, *args):
        log("proxy %s %s" % (self.address_string(), fmt % args))

    # BaseHTTPRequestHandler dispatches on do_METHOD; every method is proxied.
    def handle_one_request(self):
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if not self.raw_requestline:
                self.close_connection = True
                return
            if len(self.raw_requestline) > 65536:
                self.send_error(414)
                return
            if not self.parse_request():
                return
            self.proxy()
            self.wfile.flush()
        except (OSError, http.client.HTTPException) as e:
            log("proxy connection error: %r" % (e,))
            self.close_connection = True

    # ------------------------------------------------------------ request body
    def request_body(self):
        """Yields the request body (decoded), whatever its framing."""
        te = self.headers.get("Transfer-Encoding", "").lower()
        if "chunked" in te:
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("client closed inside a chunked body")
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                left = size
                while left:
                    data = self.rfile.read(min(left, CHUNK))
                    if not data:
                        raise ConnectionError("client closed inside a chunk")
                    left -= len(data)
                    yield data
                self.rfile.readline(3)  # CRLF after the chunk
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left > 0:
                data = self.rfile.read(min(left, CHUNK))
                if not data:
                    raise ConnectionError("client closed inside the body")
                left -= len(data)
                yield data

    # ------------------------------------------------------------ dispatch
    def proxy(self):
        entry = {"method": self.command, "path": self.path, "status": None,
                 "range": self.headers.get("Range"), "fault": None}
        fault = FAULTS.take(self.command, self.path)
        if fault:
            entry["fault"] = fault["fault"]
        # logged on arrival, its status filled in before the response starts:
        # a client that has its answer always finds the request in /log
        FAULTS.record(entry)
        self.head_sent = False
        try:
            if fault and fault["fault"].startswith("status:"):
                self.inject_status(fault, entry)
            else:
                self.forward(fault, entry)
        except (OSError, http.client.HTTPException) as e:
            if self.head_sent:
                raise
            # the upstream failed before answering: say so, then hang up
            entry["status"] = 502
            self.close_connection = True
            body = json.dumps({"errors": [{"code": "UNAVAILABLE",
                                           "message": "fault_proxy: upstream: %s" % e}]}).encode()
            self.send_response(502)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        finally:
            log("proxy %s %s -> %s%s" % (self.command, self.path, entry["status"],
                                        " (%s)" % entry["fault"] if entry["fault"] else ""))

    def inject_status(self, fault, entry):
        for _ in self.request_body():
            pass
        status = int(fault["fault"].split(":", 1)[1])
        entry["status"] = status
        code = STATUS_CODES.get(status, "UNKNOWN")
        body = json.dumps({"errors": [{"code": code, "message": "injected by fault_proxy",
                                       "detail": "status %d" % status}]}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        self.head_sent = True
        retry = fault.get("retry_after")
        if retry is None and status == 429:
            retry = 1
        if retry is not None:
            self.send_header("Retry-After", str(retry))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def forward(self, fault, entry):
        conn = http.client.HTTPConnection(*self.upstream, timeout=300)
        try:
            chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for k, v in self.headers.items():
                if k.lower() in HOP_BY_HOP or k.lower() == "content-length":
                    continue
                conn.putheader(k, v)
            if chunked:
                conn.putheader("Transfer-Encoding", "chunked")
            elif self.headers.get("Content-Length") is not None:
                conn.putheader("Content-Length", self.headers["Content-Length"])
            conn.endheaders()
            for data in self.request_body():
                if chunked:
                    conn.send(b"%x\r\n%s\r\n" % (len(data), data))
                else:
                    conn.send(data)
            if chunked:
                conn.send(b"0\r\n\r\n")
            resp = conn.getresponse()
            entry["status"] = resp.status
            self.relay(resp, fault)
        finally:
            conn.close()

    # ------------------------------------------------------------ response
    def write_head(self, resp, headers):
        self.head_sent = True
        self.wfile.write(("HTTP/1.1 %d %s\r\n" % (resp.status, resp.reason)).encode("latin-1"))
        for k, v in headers:
            self.wfile.write(("%s: %s\r\n" % (k, v)).encode("latin-1"))
        self.wfile.write(b"\r\n")

    def relay(self, resp, fault):
        headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP]
        no_body = (self.command == "HEAD" or resp.status in (204, 304)
                   or 100 <= resp.status < 200)
        if fault:
            return self.relay_faulty(resp, headers, no_body, fault)
        if no_body:
            self.write_head(resp, headers)
            return
        has_length = any(k.lower() == "content-length" for k, _ in headers)
        if not has_length:
            if resp.chunked:
                headers.append(("Transfer-Encoding", "chunked"))
            else:
                headers.append(("Connection", "close"))
                self.close_connection = True
        self.write_head(resp, headers)
        while True:
            data = resp.read1(CHUNK)
            if not data:
                break
            if resp.chunked and not has_length:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                self.wfile.write(data)
        if resp.chunked and not has_length:
            self.wfile.write(b"0\r\n\r\n")

    def relay_faulty(self, resp, headers, no_body, fault):
        if fault["fault"] == "slow":
            return self.relay_slowly(resp, headers, no_body, fault["rate"])
        self.close_connection = True
        length = next((int(v) for k, v in headers if k.lower() == "content-length"), None)
        if no_body or length == 0:
            # nothing to cut short: lose the whole response instead
            resp.read()
            log("fault %s: %s %s response dropped" % (fault["fault"], self.command, self.path))
            self.abort(fault["fault"] == "reset")
            return
        buffered = None
        if length is None:  # chunked or close-delimited: learn the length first
            buffered = resp.read()
            length = len(buffered)
            headers.append(("Content-Length", str(length)))
        cut = fault["bytes"] if fault["bytes"] is not None else length // 2
        cut = max(0, min(cut, length - 1)) if length else 0
        self.write_head(resp, headers)
        if buffered is not None:
            self.wfile.write(buffered[:cut])
        else:
            left = cut
            while left > 0:
                data = resp.read1(min(left, CHUNK))
                if not data:
                    break
                self.wfile.write(data)
                left -= len(data)
        self.wfile.flush()
        log("fault %s: %s %s cut after %d of %d body bytes"
            % (fault["fault"], self.command, self.path, cut, length))
        self.abort(fault["fault"] == "reset")

    def relay_slowly(self, resp, headers, no_body, rate):
        """The whole response, its body at `rate` bytes per second."""
        self.close_connection = True
        if not any(k.lower() == "content-length" for k, _ in headers):
            headers.append(("Connection", "close"))
        self.write_head(resp, headers)
        if no_body:
            return
        step = max(1, rate // 10)
        try:
            while True:
                data = resp.read1(step)
                if not data:
                    break
                self.wfile.write(data)
                self.wfile.flush()
                time.sleep(len(data) / rate)
        except (BrokenPipeError, ConnectionResetError):
            log("slow: %s %s: the client went away" % (self.command, self.path))

    def abort(self, rst):
        """End the client connection: an RST (reset) or a clean FIN (short)."""
        sock = self.connection
        try:
            self.wfile.flush()
            if rst:
                # give the bytes already written a moment to leave, then close
                # with a zero linger time: the kernel sends RST, not FIN
                time.sleep(0.2)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.rfile.close()  # the last other user of the descriptor
                sock.close()
            else:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.close_connection = True


class ControlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        log("control %s" % (fmt % args))

    def reply(self, status, obj):
        data = (json.dumps(obj, indent=1) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/log":
            with FAULTS.lock:
                entries = [dict(e) for e in FAULTS.log]
            return self.reply(200, entries)
        if path == "/faults":
            with FAULTS.lock:
                return self.reply(200, list(FAULTS.armed))
        if path == "/healthz":
            return self.reply(200, "ok")
        self.reply(404, {"error": "no such endpoint"})

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if url.path == "/reset":
            FAULTS.reset()
            return self.reply(200, {"reset": True})
        if url.path != "/faults":
            return self.reply(404, {"error": "no such endpoint"})
        spec = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        try:
            if raw.strip():
                body = json.loads(raw)
                if not isinstance(body, dict):
                    raise ValueError("JSON body must be an object")
                spec.update(body)
            fault = FAULTS.arm(spec)
        except (ValueError, re.error, TypeError) as e:
            return self.reply(400, {"error": str(e)})
        log("armed %r" % (fault,))
        self.reply(201, fault)

    def do_DELETE(self):
        if urllib.parse.urlsplit(self.path).path == "/faults":
            with FAULTS.lock:
                FAULTS.armed = []
            return self.reply(200, {"cleared": True})
        self.reply(404, {"error": "no such endpoint"})


def serve(server):
    server.daemon_threads = True
    server.serve_forever()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True, help="proxy port")
    ap.add_argument("--control-port", type=int, required=True)
    ap.add_argument("--upstream", required=True, help="HOST:PORT of the plain registry")
    args = ap.parse_args()
    host, _, port = args.upstream.rpartition(":")
    ProxyHandler.upstream = (host, int(port))
    proxy = ThreadingHTTPServer((args.listen, args.port), ProxyHandler)
    control = ThreadingHTTPServer((args.listen, args.control_port), ControlHandler)
    threading.Thread(target=serve, args=(control,), daemon=True).start()
    log("fault proxy on %s:%d -> %s, control on %s:%d (pid %d)"
        % (args.listen, args.port, args.upstream, args.listen, args.control_port, os.getpid()))
    try:
        serve(proxy)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
