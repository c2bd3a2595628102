#!/usr/bin/env python3
"""scripts/hub_search.py — a loopback stand-in for Docker Hub's search API.

Docker Hub cannot be reached from the test machines, so this serves a
recorded response (--data, default tests/data/hub-search-nginx.json, in
Docker Hub's /v1/search format) on 127.0.0.1:

  GET /v1/search?q=TERM[&n=LIMIT][&page=P]
      q equal to the recorded query (case-insensitive, trimmed): the recorded
      results, LIMIT per page (default 25, 1..100), page P (default 1);
      any other q: an empty result list. Missing q or a bad n/page: 400.
  GET /v1/_ping   "true"
  GET /stats      {"requests": N, "queries": {"nginx": n, ...}}

Standard library only.
"""

import argparse
import json
import math
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.join(HERE, "..", "tests", "data", "hub-search-nginx.json")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "strata-hub-search"
    recorded = None  # set in main
    lock = threading.Lock()
    stats = {"requests": 0, "queries": {}}

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (time.strftime("%H:%M:%S"), fmt % args))

    def reply(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        if url.path == "/v1/_ping":
            return self.reply(200, True)
        if url.path == "/stats":
            with self.lock:
                return self.reply(200, self.stats)
        if url.path != "/v1/search":
            return self.reply(404, {"error": "not found"})
        term = q.get("q", [None])[0]
        if term is None:
            return self.reply(400, {"error": "missing query parameter q"})
        try:
            limit = int(q.get("n", ["25"])[0])
            page = int(q.get("page", ["1"])[0])
        except ValueError:
            return self.reply(400, {"error": "n and page must be integers"})
        if not 1 <= limit <= 100 or page < 1:
            return self.reply(400, {"error": "n must be 1..100 and page >= 1"})
        with self.lock:
            self.stats["requests"] += 1
            self.stats["queries"][term] = self.stats["queries"].get(term, 0) + 1
        rec = self.recorded
        everything = rec["results"] if term.strip().lower() == rec["query"].lower() else []
        start = (page - 1) * limit
        self.reply(200, {
            "num_pages": max(1, math.ceil(len(everything) / limit)),
            "num_results": len(everything),
            "page_size": limit,
            "query": term,
            "page": page,
            "results": everything[start:start + limit],
        })

    do_HEAD = do_GET


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--data", default=DEFAULT_DATA)
    args = ap.parse_args()
    with open(args.data, encoding="utf-8") as f:
        Handler.recorded = json.load(f)
    server = ThreadingHTTPServer((args.listen, args.port), Handler)
    server.daemon_threads = True
    sys.stderr.write("hub search stand-in on http://%s:%d/v1/search (pid %d)\n"
                     % (args.listen, args.port, os.getpid()))
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
