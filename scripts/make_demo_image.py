#!/usr/bin/env python3
"""scripts/make_demo_image.py — writes the README quickstart's demo image
(strata-demo/hello:1.0) as an oci-archive; scripts/make-demo turns it into
examples/hello.tar. Two layers of small text files (the second changes one
file and deletes another), two empty-layer history entries, fixed times.

Usage: make_demo_image.py OUT-oci-archive.tar
"""

import hashlib
import sys
import time

sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
sys.path.insert(0, sys.path[0])
from ocilib import LayerTar, OciArchive, diff_id, gzip_bytes  # noqa: E402

T1, T2, T3, T4 = 1704067200, 1704067260, 1704067320, 1704067380  # 2024-01-01T00:0x:00Z


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def main():
    out = sys.argv[1]

    base = LayerTar(T1)
    base.dir("etc")
    base.file("etc/motd", b"Hello from strata-demo!\n")
    base.file("etc/os-release", b'NAME="strata demo"\nID=strata-demo\nVERSION_ID="1.0"\n'
              b'PRETTY_NAME="strata demo 1.0"\nHOME_URL="https://example.invalid/strata"\n')
    base.dir("usr")
    base.dir("usr/share")
    base.dir("usr/share/hello")
    base.file("usr/share/hello/greeting.txt", b"hello, world\n")
    base.file("usr/share/hello/README", b"This image only holds text files; it is the demo for\n"
              b"strata's quickstart (load, images, history, inspect, save).\n")
    base.symlink("usr/share/hello/motd", "../../../etc/motd")
    base = base.finish()

    update = LayerTar(T3)
    update.dir("etc")
    update.file("etc/motd", b"Welcome to strata-demo 1.0\n", mtime=T3)
    update.dir("usr")
    update.dir("usr/share")
    update.dir("usr/share/hello")
    update.file("usr/share/hello/.wh.README", b"", mode=0o600)
    update.file("usr/share/hello/CHANGES", b"1.0: new motd, README removed\n")
    update = update.finish()

    add_hash = hashlib.sha256(base).hexdigest()
    config = {
        "created": iso(T4),
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "GREETING=hello"],
            "Cmd": ["cat", "/etc/motd"],
            "Labels": {"org.opencontainers.image.title": "strata demo"},
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id(base), diff_id(update)]},
        "history": [
            {"created": iso(T1), "created_by": f"/bin/sh -c #(nop) ADD file:{add_hash} in / "},
            {"created": iso(T2), "created_by": "/bin/sh -c #(nop)  ENV GREETING=hello",
             "empty_layer": True},
            {"created": iso(T3), "created_by": "/bin/sh -c echo 'Welcome to strata-demo 1.0' > /etc/motd"
             " && rm /usr/share/hello/README && echo '1.0: new motd, README removed'"
             " > /usr/share/hello/CHANGES"},
            {"created": iso(T4), "created_by": '/bin/sh -c #(nop)  CMD ["cat" "/etc/motd"]',
             "empty_layer": True},
        ],
    }
    archive = OciArchive()
    desc = archive.add_image(config, [gzip_bytes(base, 9), gzip_bytes(update, 9)])
    desc["annotations"] = {"org.opencontainers.image.ref.name": "1.0"}
    archive.write(out, [desc], T4)


if __name__ == "__main__":
    main()
