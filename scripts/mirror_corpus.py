#!/usr/bin/env python3
"""scripts/mirror_corpus.py — synthetic OCI images pushed straight to a
registry over the distribution HTTP API (plain HTTP, no auth), for strata's
mirror tests and benchmark. Python 3 standard library only; deterministic.

Usage:
  mirror_corpus.py fixture --registry HOST:PORT [--prefix P] [--now TIME]
      The small set the mirror tests use (about 4 MB, a couple of seconds). Under P
      (default mirror-src): P/team/app, P/team/web, P/other/db, all sharing
      one base layer, each tagged v1.0.0 v1.2.0 v2.0.0-rc1 v2.0.0 v2.1.0
      v3.0.0 latest nightly-a nightly-b nightly-c. Every tag is its own image
      (its own small top layer) except latest, the same manifest as v3.0.0.
      Version tags have fixed, increasing `created` times (2025); the
      nightlies are dated from TIME (default: now, floored to the hour, UTC;
      ISO 8601 or seconds since the epoch): nightly-a 200 days before,
      nightly-b 30 days before, nightly-c 1 hour before — so a
      `newer_than: 90d` filter keeps nightly-b and nightly-c only. The same
      TIME gives the same digests. P/team/app also has:
        multi               an OCI index of two images, linux/amd64 and
                            linux/arm64 (neither tagged on its own)
        a referrer of v2.1.0  an OCI artifact manifest (artifactType
                            application/vnd.example.signature.v1+json,
                            subject = v2.1.0's manifest) pushed by digest,
                            and the OCI 1.1 referrers tag fallback: an OCI
                            index tagged sha256-<hex of v2.1.0's digest>
                            listing it
      Prints a JSON summary on stdout (see SUMMARY below).

  mirror_corpus.py corpus --registry HOST:PORT [--prefix P] [--repos N]
                          [--tags N] [--size-mb N] [--seed N] [--quiet]
      The benchmark corpus: N repositories P/repo01… (default prefix bench,
      20 repositories) × N tags v1.0.0, v1.1.0, … (default 4), about
      --size-mb MB (10^6 bytes; default 1000) of gzip layers in all. Every
      image is 5 layers: a 3-layer base stack shared by several repositories
      (ceil(repos/5) stacks, at most 4; a quarter of the bytes), a layer per
      repository (a quarter) and a layer per tag (half). Layers are tars of
      incompressible pseudo-random files (SHAKE-128 of the seed and the
      layer's name), gzipped at level 1, built and hashed streaming into a
      temporary file (never a whole layer in memory), uploaded by monolithic
      PUT, or mounted from a repository that already has them. Idempotent:
      an image whose tag already names a manifest built from the same layer
      names (the config label io.strata.corpus.layers) and whose blobs are
      all present is left alone, and no blob is uploaded twice; a second run
      against a populated registry takes a second or two. Progress on
      stderr; the JSON summary on stdout.

  mirror_corpus.py compare --source HOST:PORT --dest HOST:PORT
                           --map TEMPLATE REPO...
      Checks a mirror: for every tag of every source REPO, the destination
      repository TEMPLATE ({repo}: the source path, {name}: its last
      component; e.g. strata/{repo}, skopeo/{name}) has the tag with the
      same manifest digest (HEAD on both sides). One line on stdout
      ("compare: 80 tags in 20 repositories: all match", or the count of
      mismatches); each mismatch on stderr; exit status 1 if any.

SUMMARY (fixture and corpus):
  {"registry": "127.0.0.1:5000", "prefix": "mirror-src",
   "now": "2026-11-28T15:00:00Z",            # fixture only
   "shared_blobs": ["sha256:…"],             # layers every repository has
   "repositories": {
     "mirror-src/team/app": {
       "tags": {
         "v1.0.0": {"kind": "image", "digest": "sha256:…", "size": 1234,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "created": "2025-01-01T00:00:00Z",
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "config": "sha256:…", "layers": ["sha256:…", …],
                    "blobs": ["sha256:…", …]},    # config + layers
         "multi": {"kind": "index", "digest": …, "size": …, "mediaType":
                   "application/vnd.oci.image.index.v1+json",
                   "manifests": [<an image entry as above>, …],
                   "blobs": [every blob of its images]},
         "sha256-<hex>": {"kind": "referrers", "digest": …, "size": …,
                   "mediaType": "application/vnd.oci.image.index.v1+json",
                   "subject": "sha256:<hex>", "manifests": ["sha256:…"]}},
       "referrers": {"sha256:<v2.1.0>": [{"digest": "sha256:…", "size": …,
                     "mediaType": "application/vnd.oci.image.manifest.v1+json",
                     "artifactType": "application/vnd.example.signature.v1+json",
                     "blobs": ["sha256:…", …]}]},
       "blobs": ["sha256:…", …]}},          # every blob of the repository
   "stats": {...}}                          # corpus only: bytes, blobs
  Every tag the registry lists is a key of "tags" (the referrers fallback
  tag too, as kind "referrers"); a tag's "digest" is what a HEAD of it
  answers in Docker-Content-Digest.
"""

import argparse
import datetime
import gzip
import hashlib
import http.client
import json
import math
import os
import sys
import tarfile
import tempfile
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the checkout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ocilib import (  # noqa: E402
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    LayerTar,
    canonical_json,
    gzip_bytes,
    sha256,
)

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
SIGNATURE_TYPE = "application/vnd.example.signature.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])
CHUNK = 1 << 20
# The layer names of a corpus image, in its config's labels: how a rerun
# recognises an image it already pushed without rebuilding its layers.
LAYERS_LABEL = "io.strata.corpus.layers"
# Bump when the corpus's bytes change for the same parameters.
CORPUS_VERSION = "c1"


class RegistryError(Exception):
    pass


def log(msg):
    print(f"mirror_corpus: {msg}", file=sys.stderr, flush=True)


def iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- registry
class Registry:
    """A plain-HTTP distribution registry, one keep-alive connection."""

    def __init__(self, addr):
        self.addr = addr
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        """Send a request; return (status, headers, body bytes). Reconnects
        once when the kept-alive connection was closed under us."""
        headers = dict(headers or {})
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.addr, timeout=600, blocksize=CHUNK)
            try:
                if hasattr(body, "seek"):
                    body.seek(0)
                self.conn.request(method, path, body=body, headers=headers)
                r = self.conn.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return r.status, r.headers, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def expect(self, status, want, what, data):
        if status not in want:
            raise RegistryError(f"{self.addr}: {what}: HTTP {status}: {data[:300]!r}")

    def has_blob(self, repo, digest):
        status, _, _ = self.request("HEAD", f"/v2/{repo}/blobs/{digest}")
        return status == 200

    def get_blob(self, repo, digest):
        status, _, data = self.request("GET", f"/v2/{repo}/blobs/{digest}")
        self.expect(status, (200,), f"GET blob {repo}@{digest}", data)
        return data

    def _upload_path(self, location, digest):
        loc = urllib.parse.urlsplit(location)
        query = (loc.query + "&" if loc.query else "") + "digest=" + digest
        return f"{loc.path}?{query}"

    def mount_blob(self, repo, digest, from_repo):
        """Cross-repository mount; None when mounted, else the upload
        location the registry opened instead."""
        q = urllib.parse.urlencode({"mount": digest, "from": from_repo})
        status, h, data = self.request("POST", f"/v2/{repo}/blobs/uploads/?{q}",
                                       headers={"Content-Length": "0"})
        if status == 201:
            return None
        self.expect(status, (202,), f"POST mount {digest} into {repo}", data)
        return h["Location"]

    def cancel_upload(self, location):
        loc = urllib.parse.urlsplit(location)
        path = loc.path + ("?" + loc.query if loc.query else "")
        status, _, data = self.request("DELETE", path)
        self.expect(status, (204, 404), "DELETE upload", data)

    def put_blob(self, repo, digest, size, body, location=None):
        """Monolithic upload: POST (unless a location is given), then one PUT
        with the whole blob (bytes or a file object)."""
        if location is None:
            status, h, data = self.request("POST", f"/v2/{repo}/blobs/uploads/",
                                           headers={"Content-Length": "0"})
            self.expect(status, (202,), f"POST upload to {repo}", data)
            location = h["Location"]
        status, _, data = self.request(
            "PUT", self._upload_path(location, digest), body=body,
            headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"})
        self.expect(status, (201,), f"PUT blob {digest} to {repo}", data)

    def put_manifest(self, repo, ref, data, media_type):
        status, h, resp = self.request("PUT", f"/v2/{repo}/manifests/{ref}", body=data,
                                       headers={"Content-Type": media_type})
        self.expect(status, (201,), f"PUT manifest {repo}:{ref}", resp)
        got = h.get("Docker-Content-Digest")
        if got and got != sha256(data):
            raise RegistryError(f"{self.addr}: {repo}:{ref}: registry says {got}, "
                                f"pushed {sha256(data)}")

    def get_manifest(self, repo, ref):
        """(media type, bytes), or None when there is no such manifest."""
        status, h, data = self.request("GET", f"/v2/{repo}/manifests/{ref}",
                                       headers={"Accept": ACCEPT})
        if status == 404:
            return None
        self.expect(status, (200,), f"GET manifest {repo}:{ref}", data)
        return h.get("Content-Type"), data

    def head_manifest(self, repo, ref):
        """The digest a tag names, or None."""
        status, h, data = self.request("HEAD", f"/v2/{repo}/manifests/{ref}",
                                       headers={"Accept": ACCEPT})
        if status == 404:
            return None
        self.expect(status, (200,), f"HEAD manifest {repo}:{ref}", data)
        return h.get("Docker-Content-Digest")

    def tags(self, repo):
        """Every tag of repo (following Link pages); [] for an unknown one."""
        out, path = [], f"/v2/{repo}/tags/list?n=1000"
        while path:
            status, h, data = self.request("GET", path)
            if status == 404:
                return out
            self.expect(status, (200,), f"GET tags of {repo}", data)
            out += json.loads(data).get("tags") or []
            link = h.get("Link")
            path = link.split(";")[0].strip().strip("<>") if link else None
        return out


class Pusher:
    """Puts blobs and manifests, skipping what the registry has and mounting
    what another repository already holds. Counts what it did."""

    def __init__(self, reg):
        self.reg = reg
        self.where = {}  # digest -> a repository known to hold it
        self.stats = {"uploaded_blobs": 0, "uploaded_bytes": 0, "mounted_blobs": 0,
                      "present_blobs": 0, "manifests": 0}

    def known(self, repo, digest):
        self.where.setdefault(digest, repo)

    def blob(self, repo, digest, size, body):
        """Make repo hold the blob. body: bytes, or a callable giving bytes or
        a file object (called only when the bytes must be sent); returns
        False when it would need bytes and body is None."""
        if self.reg.has_blob(repo, digest):
            self.stats["present_blobs"] += 1
            self.known(repo, digest)
            return True
        location = None
        src = self.where.get(digest)
        if src is not None and src != repo:
            location = self.reg.mount_blob(repo, digest, src)
            if location is None:
                self.stats["mounted_blobs"] += 1
                return True
        if body is None:
            if location is not None:
                self.reg.cancel_upload(location)
            return False
        data = body() if callable(body) else body
        self.reg.put_blob(repo, digest, size, data, location)
        self.stats["uploaded_blobs"] += 1
        self.stats["uploaded_bytes"] += size
        self.known(repo, digest)
        return True

    def manifest(self, repo, ref, data, media_type):
        self.reg.put_manifest(repo, ref, data, media_type)
        self.stats["manifests"] += 1


# ---------------------------------------------------------------- bytes
class PrngStream:
    """A readable stream of `size` pseudo-random bytes named by `key`:
    SHAKE-128 of the key and a block counter, 1 MiB a block."""

    def __init__(self, key, size):
        self.key = key.encode() + b"\0"
        self.left = size
        self.block = 0
        self.buf = b""
        self.pos = 0

    def _next(self):
        self.buf = hashlib.shake_128(self.key + self.block.to_bytes(8, "big")).digest(CHUNK)
        self.block += 1
        self.pos = 0

    def read(self, n=-1):
        if n < 0:
            n = self.left
        n = min(n, self.left)
        parts = []
        want = n
        while want:
            if self.pos == len(self.buf):
                self._next()
            take = min(want, len(self.buf) - self.pos)
            parts.append(self.buf[self.pos:self.pos + take] if take < len(self.buf) else self.buf)
            self.pos += take
            want -= take
        self.left -= n
        return parts[0] if len(parts) == 1 else b"".join(parts)


def prng_bytes(key, size):
    return PrngStream(key, size).read()


class HashingWriter:
    def __init__(self, f):
        self.f, self.h, self.size = f, hashlib.sha256(), 0

    def write(self, b):
        self.h.update(b)
        self.size += len(b)
        return self.f.write(b)

    def flush(self):
        pass

    def digest(self):
        return "sha256:" + self.h.hexdigest()


# ---------------------------------------------------------------- images
def layer_desc(gz):
    return {"mediaType": OCI_LAYER_GZIP, "digest": sha256(gz), "size": len(gz)}


def image_config(created, arch, diff_ids, history, labels, variant=None):
    """An image config as docker writes one."""
    cfg = {
        "created": created,
        "architecture": arch,
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/usr/local/bin/app"],
            "WorkingDir": "/srv",
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }
    if variant:
        cfg["variant"] = variant
    return cfg


def manifest_bytes(config_desc, layer_descs):
    return canonical_json({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc,
        "layers": layer_descs,
    })


class Summary:
    """The JSON summary: repositories → tags → digests and blobs."""

    def __init__(self, registry, prefix):
        self.doc = {"registry": registry, "prefix": prefix, "repositories": {}}

    def repo(self, repo):
        return self.doc["repositories"].setdefault(repo, {"tags": {}, "referrers": {}, "blobs": []})

    def add_blobs(self, repo, blobs):
        r = self.repo(repo)
        for b in blobs:
            if b not in r["blobs"]:
                r["blobs"].append(b)

    def tag(self, repo, tag, entry):
        self.repo(repo)["tags"][tag] = entry
        self.add_blobs(repo, entry.get("blobs", []))

    def finish(self):
        repos = self.doc["repositories"]
        for r in repos.values():
            r["blobs"].sort()
        sets = [set(r["blobs"]) for r in repos.values()]
        shared = set.intersection(*sets) if sets else set()
        self.doc["shared_blobs"] = sorted(shared)
        return self.doc


def image_entry(digest, size, created, platform, config_digest, layer_digests):
    return {
        "kind": "image", "digest": digest, "size": size, "mediaType": OCI_MANIFEST,
        "created": created, "platform": platform, "config": config_digest,
        "layers": layer_digests, "blobs": [config_digest] + layer_digests,
    }


# ---------------------------------------------------------------- fixture
FIXTURE_REPOS = ["team/app", "team/web", "other/db"]
# Version tags: fixed, increasing creation times.
FIXTURE_VERSIONS = [
    ("v1.0.0", "2025-01-06T10:00:00Z"),
    ("v1.2.0", "2025-02-03T10:00:00Z"),
    ("v2.0.0-rc1", "2025-03-03T10:00:00Z"),
    ("v2.0.0", "2025-03-17T10:00:00Z"),
    ("v2.1.0", "2025-05-05T10:00:00Z"),
    ("v3.0.0", "2025-07-07T10:00:00Z"),
]
# Nightlies: how long before TIME each was built.
FIXTURE_NIGHTLIES = [("nightly-a", 200 * 86400), ("nightly-b", 30 * 86400), ("nightly-c", 3600)]
FIXTURE_BASE_CREATED = "2024-12-02T08:00:00Z"
FIXTURE_MTIME = 1733126400  # 2024-12-02, the files' mtime in every layer


def fixture_base_layer(name, arch):
    """A small base layer: a few directories, text files and 1 MiB of bytes."""
    t = LayerTar(FIXTURE_MTIME)
    for d in ("bin", "etc", "srv", "usr", "usr/lib", "usr/local", "usr/local/bin"):
        t.dir(d)
    t.file("etc/os-release", f'NAME="fixture"\nID=fixture\nVERSION_ID=1\nARCH={arch}\n'.encode())
    t.file("usr/local/bin/app", b"#!/bin/sh\necho fixture app\n", mode=0o755)
    t.symlink("bin/app", "../usr/local/bin/app")
    t.file(f"usr/lib/{name}.bin", prng_bytes(f"fixture/{name}", 1 << 20))
    return t.finish()


def fixture_top_layer(repo, tag, arch="amd64"):
    t = LayerTar(FIXTURE_MTIME)
    t.dir("srv")
    t.file("srv/VERSION", f"{repo} {tag} {arch}\n".encode())
    t.file("srv/data.bin", prng_bytes(f"fixture/{repo}/{tag}/{arch}", 48 << 10))
    return t.finish()


def push_fixture_image(push, repo, base, top_tar, created, arch, labels, variant=None):
    """Push one two-layer image (base, top) into repo; return its entry."""
    base_tar, base_gz = base
    top_gz = gzip_bytes(top_tar)
    layers = [(sha256(base_tar), "/bin/sh -c #(nop) ADD file:fixture-base in / "),
              (sha256(top_tar), f"COPY srv/ /srv/ # {labels['org.opencontainers.image.version']}")]
    history = [{"created": FIXTURE_BASE_CREATED, "created_by": layers[0][1]},
               {"created": created, "created_by": layers[1][1]}]
    config = canonical_json(image_config(created, arch, [d for d, _ in layers], history,
                                         labels, variant))
    config_desc = {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)}
    descs = [layer_desc(base_gz), layer_desc(top_gz)]
    for gz in (base_gz, top_gz):
        push.blob(repo, sha256(gz), len(gz), gz)
    push.blob(repo, config_desc["digest"], len(config), config)
    manifest = manifest_bytes(config_desc, descs)
    platform = {"architecture": arch, "os": "linux"}
    if variant:
        platform["variant"] = variant
    return manifest, image_entry(sha256(manifest), len(manifest), created, platform,
                                 config_desc["digest"], [d["digest"] for d in descs])


def parse_time(text):
    if text is None:
        now = datetime.datetime.now(datetime.timezone.utc).timestamp()
        return int(now) // 3600 * 3600
    if text.lstrip("-").isdigit():
        return int(text)
    t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    return int(t.timestamp())


def cmd_fixture(args):
    reg = Registry(args.registry)
    push = Pusher(reg)
    summary = Summary(args.registry, args.prefix)
    now = parse_time(args.now)
    summary.doc["now"] = iso(now)
    base_tar = fixture_base_layer("base-amd64", "amd64")
    base = (base_tar, gzip_bytes(base_tar))
    arm_tar = fixture_base_layer("base-arm64", "arm64")
    arm_base = (arm_tar, gzip_bytes(arm_tar))

    tags = [(t, c) for t, c in FIXTURE_VERSIONS]
    tags += [(t, iso(now - age)) for t, age in FIXTURE_NIGHTLIES]
    for name in FIXTURE_REPOS:
        repo = f"{args.prefix}/{name}"
        for tag, created in tags:
            labels = {"org.opencontainers.image.title": name,
                      "org.opencontainers.image.version": tag}
            manifest, entry = push_fixture_image(
                push, repo, base, fixture_top_layer(name, tag), created, "amd64", labels)
            push.manifest(repo, tag, manifest, OCI_MANIFEST)
            summary.tag(repo, tag, entry)
            if tag == "v3.0.0":
                push.manifest(repo, "latest", manifest, OCI_MANIFEST)
                summary.tag(repo, "latest", dict(entry))

        if name != "team/app":
            continue
        # multi: an index of an amd64 and an arm64 image, neither tagged.
        children, entries = [], []
        for arch, variant, b in (("amd64", None, base), ("arm64", "v8", arm_base)):
            labels = {"org.opencontainers.image.title": name,
                      "org.opencontainers.image.version": f"multi-{arch}"}
            manifest, entry = push_fixture_image(
                push, repo, b, fixture_top_layer(name, "multi", arch),
                "2025-04-07T10:00:00Z", arch, labels, variant)
            push.manifest(repo, entry["digest"], manifest, OCI_MANIFEST)
            children.append({"mediaType": OCI_MANIFEST, "digest": entry["digest"],
                             "size": entry["size"], "platform": entry["platform"]})
            entries.append(entry)
        index = canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children})
        push.manifest(repo, "multi", index, OCI_INDEX)
        summary.tag(repo, "multi", {
            "kind": "index", "digest": sha256(index), "size": len(index), "mediaType": OCI_INDEX,
            "manifests": entries, "blobs": sorted({b for e in entries for b in e["blobs"]})})

        # A signature-like referrer of v2.1.0, and the tag-schema fallback.
        subject = summary.repo(repo)["tags"]["v2.1.0"]
        empty = b"{}"
        payload = canonical_json({"critical": {
            # no registry address: the same digests wherever it is pushed
            "identity": {"docker-reference": repo},
            "image": {"docker-manifest-digest": subject["digest"]},
            "type": "example signature"}, "optional": {"note": "fixture"}})
        push.blob(repo, sha256(empty), len(empty), empty)
        push.blob(repo, sha256(payload), len(payload), payload)
        created = "2025-05-05T11:00:00Z"
        artifact = canonical_json({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": SIGNATURE_TYPE,
            "config": {"mediaType": OCI_EMPTY, "digest": sha256(empty), "size": len(empty)},
            "layers": [{"mediaType": SIGNATURE_TYPE, "digest": sha256(payload),
                        "size": len(payload)}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject["digest"],
                        "size": subject["size"]},
            "annotations": {"org.opencontainers.image.created": created},
        })
        push.manifest(repo, sha256(artifact), artifact, OCI_MANIFEST)
        ref_entry = {"digest": sha256(artifact), "size": len(artifact),
                     "mediaType": OCI_MANIFEST, "artifactType": SIGNATURE_TYPE,
                     "blobs": [sha256(empty), sha256(payload)]}
        summary.repo(repo)["referrers"][subject["digest"]] = [ref_entry]
        summary.add_blobs(repo, ref_entry["blobs"])
        fallback = canonical_json({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256(artifact),
                           "size": len(artifact), "artifactType": SIGNATURE_TYPE,
                           "annotations": {"org.opencontainers.image.created": created}}],
        })
        fallback_tag = "sha256-" + subject["digest"].split(":", 1)[1]
        push.manifest(repo, fallback_tag, fallback, OCI_INDEX)
        summary.tag(repo, fallback_tag, {
            "kind": "referrers", "digest": sha256(fallback), "size": len(fallback),
            "mediaType": OCI_INDEX, "subject": subject["digest"],
            "manifests": [sha256(artifact)]})
    json.dump(summary.finish(), sys.stdout, indent=1, sort_keys=True)
    print()


# ---------------------------------------------------------------- corpus
class CorpusPlan:
    """Which layers (names and sizes) make up each image of the corpus."""

    def __init__(self, prefix, repos, tags, size_mb, seed):
        total = size_mb * 1000 * 1000
        self.seed = seed
        self.n_bases = max(1, min(4, math.ceil(repos / 5)))
        stack = total // 4 // self.n_bases
        self.base_sizes = [stack * 6 // 10, stack * 3 // 10, stack // 10]
        self.repo_size = total // 4 // repos
        self.tag_size = total // 2 // (repos * tags)
        width = max(2, len(str(repos)))
        self.repos = [f"{prefix}/repo{i + 1:0{width}d}" for i in range(repos)]
        self.tags = [f"v1.{i}.0" for i in range(tags)]

    def key(self, *parts):
        return ".".join([CORPUS_VERSION, f"s{self.seed}"] + [str(p) for p in parts])

    def layers(self, r, t):
        """(key, size, created_by, directory of its files) of image r, t
        (indices), bottom first."""
        b = r % self.n_bases
        out = [(self.key("base", b, i, size), size,
                f"/bin/sh -c #(nop) ADD file:base{b}-{i} in / ", f"usr/lib/base{b}/{i}")
               for i, size in enumerate(self.base_sizes)]
        repo, tag = self.repos[r].rsplit("/", 1)[1], self.tags[t]
        out.append((self.key(repo, "deps", self.repo_size), self.repo_size,
                    f"RUN /bin/sh -c install-deps {repo} # buildkit", f"usr/local/lib/{repo}"))
        out.append((self.key(repo, tag, self.tag_size), self.tag_size,
                    f"COPY app/ /srv/ # {tag}", f"srv/{repo}"))
        return out

    def created(self, r, t):
        # 2025-06-02 plus a week per tag and a minute per repository
        return iso(1748822400 + t * 7 * 86400 + r * 60)


def layer_files(key, size, directory):
    """Split a layer's bytes into files in directory: mostly a few MiB each,
    every fourth a small one; sizes derived from the key."""
    rng = PrngStream(key + "/plan", 1 << 16)
    files, left, i = [], size, 0
    while left > 0:
        r = int.from_bytes(rng.read(4), "big")
        n = min(left, (1 << 16) + r % (6 << 20) if i % 4 else 512 + r % 8192)
        files.append((f"{directory}/f{i:04d}.bin", n))
        left -= n
        i += 1
    return files


def build_layer(key, size, directory, tmpdir, level):
    """Write the gzip layer to a temporary file, hashing both the tar
    (diff ID) and the gzip stream (digest) on the way; return
    (file, digest, size, diff_id)."""
    f = tempfile.TemporaryFile(dir=tmpdir)
    comp = HashingWriter(f)
    gz = gzip.GzipFile(filename="", mode="wb", compresslevel=level, fileobj=comp, mtime=0)
    raw = HashingWriter(gz)
    mtime = 1748822400
    dirs = set()
    with tarfile.open(fileobj=raw, mode="w|", format=tarfile.PAX_FORMAT, bufsize=CHUNK,
                      copybufsize=CHUNK) as tar:
        for name, n in layer_files(key, size, directory):
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i]) + "/"
                if d not in dirs:
                    dirs.add(d)
                    ti = tarfile.TarInfo(d)
                    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, mtime
                    tar.addfile(ti)
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = n, 0o644, mtime
            tar.addfile(ti, PrngStream(f"{key}/{name}", n))
    gz.close()
    f.flush()
    return f, comp.digest(), comp.size, raw.digest()


def cmd_corpus(args):
    if args.repos < 1 or args.tags < 1 or args.size_mb < 1:
        sys.exit("mirror_corpus: corpus: --repos, --tags and --size-mb must be positive")
    reg = Registry(args.registry)
    push = Pusher(reg)
    plan = CorpusPlan(args.prefix, args.repos, args.tags, args.size_mb, args.seed)
    summary = Summary(args.registry, args.prefix)
    say = (lambda m: None) if args.quiet else log
    known = {}  # layer key -> (digest, size, diff_id)
    images = [(r, t) for r in range(len(plan.repos)) for t in range(len(plan.tags))]

    # Pass 1: what the registry already holds, by tag and label.
    todo = []
    for r, t in images:
        repo, tag = plan.repos[r], plan.tags[t]
        layers = plan.layers(r, t)
        got = reg.get_manifest(repo, tag)
        ok = False
        if got is not None:
            m = json.loads(got[1])
            try:
                cfg = json.loads(reg.get_blob(repo, m["config"]["digest"]))
                label = cfg["config"]["Labels"].get(LAYERS_LABEL)
                ok = (label == ",".join(layer[0] for layer in layers)
                      and len(m["layers"]) == len(layers)
                      and all(reg.has_blob(repo, d["digest"]) for d in m["layers"]))
            except (RegistryError, KeyError, TypeError, ValueError):
                ok = False
            if ok:
                for layer, d, diff in zip(layers, m["layers"], cfg["rootfs"]["diff_ids"]):
                    known[layer[0]] = (d["digest"], d["size"], diff)
                    push.known(repo, d["digest"])
                summary.tag(repo, tag, image_entry(
                    sha256(got[1]), len(got[1]), cfg["created"],
                    {"architecture": cfg["architecture"], "os": cfg["os"]},
                    m["config"]["digest"], [d["digest"] for d in m["layers"]]))
        if not ok:
            todo.append((r, t))
    if todo:
        say(f"{len(images) - len(todo)} of {len(images)} images already there; "
            f"building {len(todo)}")
    else:
        say(f"all {len(images)} images already there")

    # Pass 2: build and push what is missing.
    tmpdir = args.tmpdir or None
    for n, (r, t) in enumerate(todo, 1):
        repo, tag = plan.repos[r], plan.tags[t]
        layers = plan.layers(r, t)
        descs, diffs = [], []
        for key, size, _, directory in layers:
            done = False
            if key in known:
                digest, blob_size, diff = known[key]
                done = push.blob(repo, digest, blob_size, None)
            if not done:
                f, digest, blob_size, diff = build_layer(key, size, directory, tmpdir,
                                                         args.gzip_level)
                with f:
                    push.blob(repo, digest, blob_size, lambda f=f: f)
                known[key] = (digest, blob_size, diff)
            descs.append({"mediaType": OCI_LAYER_GZIP, "digest": digest, "size": blob_size})
            diffs.append(diff)
        created = plan.created(r, t)
        history = [{"created": created if i == len(layers) - 1 else plan.created(r, 0),
                    "created_by": layer[2]} for i, layer in enumerate(layers)]
        labels = {"org.opencontainers.image.title": repo.rsplit("/", 1)[1],
                  "org.opencontainers.image.version": tag,
                  LAYERS_LABEL: ",".join(layer[0] for layer in layers)}
        config = canonical_json(image_config(
            created, "amd64", diffs, history, labels))
        config_desc = {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)}
        push.blob(repo, config_desc["digest"], len(config), config)
        manifest = manifest_bytes(config_desc, descs)
        push.manifest(repo, tag, manifest, OCI_MANIFEST)
        summary.tag(repo, tag, image_entry(
            sha256(manifest), len(manifest), created, {"architecture": "amd64", "os": "linux"},
            config_desc["digest"], [d["digest"] for d in descs]))
        s = push.stats
        say(f"[{n}/{len(todo)}] {repo}:{tag}  uploaded {s['uploaded_bytes'] / 1e6:.0f} MB "
            f"in {s['uploaded_blobs']} blobs, {s['mounted_blobs']} mounted")

    doc = summary.finish()
    sizes = {digest: size for digest, size, _ in known.values()}
    doc["stats"] = dict(push.stats, images=len(images), unique_layers=len(sizes),
                        unique_layer_bytes=sum(sizes.values()))
    json.dump(doc, sys.stdout, indent=1, sort_keys=True)
    print()


# ---------------------------------------------------------------- compare
def cmd_compare(args):
    src, dst = Registry(args.source), Registry(args.dest)
    total = bad = 0
    for repo in args.repos:
        target = args.map.format(repo=repo, name=repo.rsplit("/", 1)[-1])
        tags = src.tags(repo)
        if not tags:
            print(f"compare: {args.source}/{repo} has no tags", file=sys.stderr)
            bad += 1
        for tag in sorted(tags):
            total += 1
            want = src.head_manifest(repo, tag)
            got = dst.head_manifest(target, tag)
            if got != want:
                bad += 1
                print(f"compare: {args.dest}/{target}:{tag} is {got or 'missing'}, "
                      f"{args.source}/{repo}:{tag} is {want}", file=sys.stderr)
    what = f"{total} tags in {len(args.repos)} repositories"
    print(f"compare: {what}: " + (f"{bad} differ or are missing" if bad else "all match"))
    sys.exit(1 if bad else 0)


def main():
    p = argparse.ArgumentParser(
        description="Synthetic OCI images pushed to a registry (see the file's header).")
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fixture", help="the mirror tests' small image set")
    f.add_argument("--registry", required=True, metavar="HOST:PORT")
    f.add_argument("--prefix", default="mirror-src")
    f.add_argument("--now", metavar="TIME",
                   help="the nightlies' reference time (ISO 8601 or epoch seconds; "
                        "default: now, floored to the hour)")
    c = sub.add_parser("corpus", help="the mirror benchmark's corpus")
    c.add_argument("--registry", required=True, metavar="HOST:PORT")
    c.add_argument("--prefix", default="bench")
    c.add_argument("--repos", type=int, default=20)
    c.add_argument("--tags", type=int, default=4)
    c.add_argument("--size-mb", type=int, default=1000)
    c.add_argument("--seed", type=int, default=1)
    c.add_argument("--gzip-level", type=int, default=1, help=argparse.SUPPRESS)
    c.add_argument("--tmpdir", help="where layers are built (default: $TMPDIR)")
    c.add_argument("--quiet", action="store_true")
    k = sub.add_parser("compare", help="check a mirror's tags against the source's")
    k.add_argument("--source", required=True, metavar="HOST:PORT")
    k.add_argument("--dest", required=True, metavar="HOST:PORT")
    k.add_argument("--map", required=True, metavar="TEMPLATE",
                   help="destination repository: {repo} (source path), {name} (last component)")
    k.add_argument("repos", nargs="+", metavar="REPO")
    args = p.parse_args()
    try:
        {"fixture": cmd_fixture, "corpus": cmd_corpus, "compare": cmd_compare}[args.cmd](args)
    except (RegistryError, OSError, http.client.HTTPException) as e:
        sys.exit(f"mirror_corpus: {args.cmd}: {e}")


if __name__ == "__main__":
    main()
