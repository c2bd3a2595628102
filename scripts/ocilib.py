"""scripts/ocilib.py — small helpers for writing test images as OCI archives.

Used by make_seed_image.py and make_demo_image.py. Everything here is
deterministic: same inputs, same bytes (gzip without timestamps, fixed tar
headers, compact JSON).
"""

import gzip
import hashlib
import io
import json
import tarfile

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj):
    """JSON as Go's encoding/json writes it: compact, UTF-8, no HTML escaping."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class LayerTar:
    """Builds one uncompressed layer tar in memory."""

    def __init__(self, mtime):
        self.mtime = mtime
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def _info(self, name, kind, mode, uid=0, gid=0, mtime=None):
        ti = tarfile.TarInfo(name)
        ti.type = kind
        ti.mode = mode
        ti.uid, ti.gid = uid, gid
        ti.uname = ti.gname = ""
        ti.mtime = self.mtime if mtime is None else mtime
        return ti

    def dir(self, name, mode=0o755, **kw):
        self.tar.addfile(self._info(name.rstrip("/") + "/", tarfile.DIRTYPE, mode, **kw))

    def file(self, name, data, mode=0o644, **kw):
        ti = self._info(name, tarfile.REGTYPE, mode, **kw)
        ti.size = len(data)
        self.tar.addfile(ti, io.BytesIO(data))

    def symlink(self, name, target, **kw):
        ti = self._info(name, tarfile.SYMTYPE, 0o777, **kw)
        ti.linkname = target
        self.tar.addfile(ti)

    def member(self, ti, fileobj=None):
        """Copy a member from another tar (e.g. a root filesystem tarball)."""
        self.tar.addfile(ti, fileobj)

    def finish(self):
        self.tar.close()
        return self.buf.getvalue()


def gzip_bytes(data, level=6):
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=level, mtime=0) as gz:
        gz.write(data)
    return out.getvalue()


class OciArchive:
    """Collects blobs and writes them as an oci-archive (a tar of an OCI layout)."""

    def __init__(self):
        self.blobs = {}  # digest -> bytes, in insertion order

    def blob(self, data, media_type):
        digest = sha256(data)
        self.blobs[digest] = data
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def add_image(self, config, gz_layers):
        """Store config + gzipped layers; return the manifest descriptor."""
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": self.blob(canonical_json(config), OCI_CONFIG),
            "layers": [self.blob(gz, OCI_LAYER_GZIP) for gz in gz_layers],
        }
        return self.blob(canonical_json(manifest), OCI_MANIFEST)

    def write(self, path, manifests, mtime):
        """Write index.json listing `manifests` (descriptors) and all blobs."""
        index = {"schemaVersion": 2, "manifests": manifests}
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
            def put(name, data=None):
                ti = tarfile.TarInfo(name)
                ti.mtime = mtime
                ti.uname = ti.gname = ""
                if data is None:
                    ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(ti)
                else:
                    ti.mode, ti.size = 0o644, len(data)
                    tar.addfile(ti, io.BytesIO(data))

            put("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
            put("index.json", canonical_json(index))
            put("blobs/")
            put("blobs/sha256/")
            for digest, data in sorted(self.blobs.items()):
                put("blobs/sha256/" + digest.split(":", 1)[1], data)


def diff_id(layer_tar):
    return sha256(layer_tar)
