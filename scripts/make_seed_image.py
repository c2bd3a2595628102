#!/usr/bin/env python3
"""scripts/make_seed_image.py — builds the "seed-nginx" test image.

Its config history is the nginx:latest (1.21.3, October 2021) history shown
in the seed page (`docker image history nginx`): 15 entries, 6 real layers
whose unpacked sizes (what docker reports: regular file sizes + symlink
target lengths) are exactly 69.3MB, 64MB, 1.2kB, 1.96kB, 1.04kB and 4.61kB.
The two big layers are real Debian files taken from the debootstrap root
filesystem tarball, topped up to the exact size with one padding file; the
four small ones are entrypoint scripts padded to size.

Usage: make_seed_image.py ROOTFS.tar OUT-oci-archive.tar
"""

import calendar
import hashlib
import sys
import tarfile
import time

sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
sys.path.insert(0, sys.path[0])
from ocilib import LayerTar, OciArchive, OCI_MANIFEST, diff_id, gzip_bytes  # noqa: E402

# Unpacked layer sizes in bytes, oldest first (seed SIZE column, bottom-up).
LAYER_SIZES = [69_300_000, 64_000_000, 1_200, 1_960, 1_040, 4_610]
CREATED = "2021-10-12T02:03:40.360294686Z"
ENV = [
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "NGINX_VERSION=1.21.3",
    "NJS_VERSION=0.6.2",
    "PKG_RELEASE=1~buster",
]
LABELS = {"maintainer": "NGINX Docker Maintainers <docker-maint@nginx.com>"}


def epoch(ts):
    return calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))


def nop(instruction):
    """created_by of a metadata instruction (two spaces after #(nop))."""
    return "/bin/sh -c #(nop)  " + instruction


def copy(file_hash, dest):
    """created_by of ADD/COPY (one space after #(nop), trailing space)."""
    return f"/bin/sh -c #(nop) {file_hash} in {dest} "


def run(dockerfile_lines):
    """created_by of RUN, as docker builds it from the Dockerfile text:
    comment lines dropped, backslash-newline continuations joined."""
    kept = [l for l in dockerfile_lines.split("\n") if not l.lstrip().startswith("#")]
    joined = "\n".join(kept).replace("\\\n", "")
    return "/bin/sh -c " + joined


# The nginx 1.21.3 (Debian buster) Dockerfile's big RUN instruction.
NGINX_RUN = r"""set -x \
# create nginx user/group first, to be consistent throughout docker variants
    && addgroup --system --gid 101 nginx \
    && adduser --system --disabled-login --ingroup nginx --no-create-home --home /nonexistent --gecos "nginx user" --shell /bin/false --uid 101 nginx \
    && apt-get update \
    && apt-get install --no-install-recommends --no-install-suggests -y gnupg1 ca-certificates \
    && \
    NGINX_GPGKEY=573BFD6B3D8FBC641079A6ABABF5BD827BD9BF62; \
    found=''; \
    for server in \
        ha.pool.sks-keyservers.net \
        hkp://keyserver.ubuntu.com:80 \
        hkp://p80.pool.sks-keyservers.net:80 \
        pgp.mit.edu \
    ; do \
        echo "Fetching GPG key $NGINX_GPGKEY from $server"; \
        apt-key adv --keyserver "$server" --keyserver-options timeout=10 --recv-keys "$NGINX_GPGKEY" && found=yes && break; \
    done; \
    test -z "$found" && echo >&2 "error: failed to fetch GPG key $NGINX_GPGKEY" && exit 1; \
    apt-get remove --purge --auto-remove -y gnupg1 && rm -rf /var/lib/apt/lists/* \
    && dpkgArch="$(dpkg --print-architecture)" \
    && nginxPackages=" \
        nginx=${NGINX_VERSION}-${PKG_RELEASE} \
        nginx-module-xslt=${NGINX_VERSION}-${PKG_RELEASE} \
        nginx-module-geoip=${NGINX_VERSION}-${PKG_RELEASE} \
        nginx-module-image-filter=${NGINX_VERSION}-${PKG_RELEASE} \
        nginx-module-njs=${NGINX_VERSION}+${NJS_VERSION}-${PKG_RELEASE} \
    " \
    && case "$dpkgArch" in \
        amd64|i386|arm64) \
# arches officialy built by upstream
            echo "deb https://nginx.org/packages/mainline/debian/ buster nginx" >> /etc/apt/sources.list.d/nginx.list \
            && apt-get update \
            ;; \
        *) \
# we're on an architecture upstream doesn't officially build for
# let's build binaries from the published source packages
            echo "deb-src https://nginx.org/packages/mainline/debian/ buster nginx" >> /etc/apt/sources.list.d/nginx.list \
            \
# new directory for storing sources and .deb files
            && tempDir="$(mktemp -d)" \
            && chmod 777 "$tempDir" \
# (777 to ensure APT's "_apt" user can access it too)
            \
# save list of currently-installed packages so build dependencies can be cleanly removed later
            && savedAptMark="$(apt-mark showmanual)" \
            \
# build .deb files from upstream's source packages (which are verified by apt-get)
            && apt-get update \
            && apt-get build-dep -y $nginxPackages \
            && ( \
                cd "$tempDir" \
                && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" \
                    apt-get source --compile $nginxPackages \
            ) \
# we don't remove APT lists here because they get re-downloaded and removed later
            \
# reset apt-mark's "manual" list so that "purge --auto-remove" will remove all build dependencies
# (which is done after we install the built packages so we don't have to redownload any overlapping dependencies)
            && apt-mark showmanual | xargs apt-mark auto > /dev/null \
            && { [ -z "$savedAptMark" ] || apt-mark manual $savedAptMark; } \
            \
# create a temporary local APT repo to install from (so that dependency resolution can be handled by APT, as it should be)
            && ls -lAFh "$tempDir" \
            && ( cd "$tempDir" && dpkg-scanpackages . > Packages ) \
            && grep '^Package: ' "$tempDir/Packages" \
            && echo "deb [ trusted=yes ] file://$tempDir ./" > /etc/apt/sources.list.d/temp.list \
# work around the following APT issue by using "Acquire::GzipIndexes=false" (overriding "/etc/apt/apt.conf.d/docker-gzip-indexes")
            && apt-get -o Acquire::GzipIndexes=false update \
            ;; \
    esac \
    \
    && apt-get install --no-install-recommends --no-install-suggests -y \
                        $nginxPackages \
                        gettext-base \
                        curl \
    && apt-get remove --purge --auto-remove -y && rm -rf /var/lib/apt/lists/* /etc/apt/sources.list.d/nginx.list \
    \
# if we have leftovers from building, let's purge them (including extra, unnecessary build deps)
    && if [ -n "$tempDir" ]; then \
        apt-get purge -y --auto-remove \
        && rm -rf "$tempDir" /etc/apt/sources.list.d/temp.list; \
    fi \
# forward request and error logs to docker log collector
    && ln -sf /dev/stdout /var/log/nginx/access.log \
    && ln -sf /dev/stderr /var/log/nginx/error.log \
# create a docker-entrypoint.d directory
    && mkdir /docker-entrypoint.d"""


def fit(text, size):
    """The script text padded with trailing comment lines (at most 72
    columns) to exactly `size` bytes."""
    data = text.encode()
    missing = size - len(data)
    if missing < 0:
        raise SystemExit(f"script is {len(data)} bytes, more than {size}")
    while missing > 0:
        line = min(missing, 73)
        data += b"#" * (line - 1) + b"\n"
        missing -= line
    return data


ENTRYPOINT_SH = """#!/bin/sh
# vim:sw=4:ts=4:et

set -e

if [ -z "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ]; then
    exec 3>&1
else
    exec 3>/dev/null
fi

if [ "$1" = "nginx" ] || [ "$1" = "nginx-debug" ]; then
    if /usr/bin/find "/docker-entrypoint.d/" -mindepth 1 -maxdepth 1 -type f -print -quit 2>/dev/null | read v; then
        echo >&3 "$0: /docker-entrypoint.d/ is not empty, will attempt to perform configuration"

        echo >&3 "$0: Looking for shell scripts in /docker-entrypoint.d/"
        find "/docker-entrypoint.d/" -follow -type f -print | sort -V | while read -r f; do
            case "$f" in
                *.sh)
                    if [ -x "$f" ]; then
                        echo >&3 "$0: Launching $f";
                        "$f"
                    else
                        echo >&3 "$0: Ignoring $f, not executable";
                    fi
                    ;;
                *) echo >&3 "$0: Ignoring $f";;
            esac
        done

        echo >&3 "$0: Configuration complete; ready for start up"
    else
        echo >&3 "$0: No files found in /docker-entrypoint.d/, skipping configuration"
    fi
fi

exec "$@"
"""

LISTEN_IPV6_SH = """#!/bin/sh
# vim:sw=4:ts=4:et
# Makes the default server also listen on IPv6 when the kernel supports it.

set -e

ME=$(basename $0)
DEFAULT_CONF_FILE="etc/nginx/conf.d/default.conf"

# check if we have ipv6 available
if [ ! -f "/proc/net/if_inet6" ]; then
    echo >&3 "$ME: info: ipv6 not available"
    exit 0
fi

if [ ! -f "/$DEFAULT_CONF_FILE" ]; then
    echo >&3 "$ME: info: /$DEFAULT_CONF_FILE is not a file or does not exist"
    exit 0
fi

# check if the file can be modified, e.g. not on a r/o filesystem
touch /$DEFAULT_CONF_FILE 2>/dev/null || { echo >&3 "$ME: info: can not modify /$DEFAULT_CONF_FILE (read-only file system?)"; exit 0; }

# check if the file is already modified, e.g. on a container restart
grep -q "listen  \\[::]\\:80;" /$DEFAULT_CONF_FILE && exit 0

if [ -f "/etc/os-release" ]; then
    . /etc/os-release
else
    echo >&3 "$ME: info: can not guess the operating system"
    exit 0
fi

echo >&3 "$ME: info: Getting the checksum of /$DEFAULT_CONF_FILE"

case "$ID" in
    "debian")
        CHECKSUM=$(dpkg-query --show --showformat='${Conffiles}\\n' nginx | grep $DEFAULT_CONF_FILE | cut -d' ' -f 3)
        echo "$CHECKSUM  /$DEFAULT_CONF_FILE" | md5sum -c - >/dev/null 2>&1 || {
            echo >&3 "$ME: info: /$DEFAULT_CONF_FILE differs from the packaged version"
            exit 0
        }
        ;;
    *)
        echo >&3 "$ME: info: Unsupported distribution"
        exit 0
        ;;
esac

# enable ipv6 on default.conf listen sockets
sed -i -E 's,listen       80;,listen       80;\\n    listen  [::]:80;,' /$DEFAULT_CONF_FILE

echo >&3 "$ME: info: Enabled listen on IPv6 in /$DEFAULT_CONF_FILE"

exit 0
"""

ENVSUBST_SH = """#!/bin/sh
# Renders /etc/nginx/templates/*.template into /etc/nginx/conf.d with envsubst.

set -e

ME=$(basename $0)

auto_envsubst() {
  local template_dir="${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}"
  local suffix="${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}"
  local output_dir="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}"

  local template defined_envs relative_path output_path subdir
  defined_envs=$(printf '${%s} ' $(env | cut -d= -f1))
  [ -d "$template_dir" ] || return 0
  if [ ! -w "$output_dir" ]; then
    echo >&3 "$ME: ERROR: $template_dir exists, but $output_dir is not writable"
    return 0
  fi
  find "$template_dir" -follow -type f -name "*$suffix" -print | while read -r template; do
    relative_path="${template#$template_dir/}"
    output_path="$output_dir/${relative_path%$suffix}"
    subdir=$(dirname "$relative_path")
    mkdir -p "$output_dir/$subdir"
    envsubst "$defined_envs" < "$template" > "$output_path"
  done
}

auto_envsubst

exit 0
"""

TUNE_WORKERS_SH = """#!/bin/sh
# vim:sw=2:ts=2:sts=2:et
# With NGINX_ENTRYPOINT_WORKER_PROCESSES_AUTOTUNE set, sets worker_processes
# to the number of CPUs this container may use (cgroup v1 or v2 quota and
# cpuset), instead of the number of CPUs of the host.

set -eu

LC_ALL=C
ME=$( basename "$0" )
PATH="/bin:/sbin:/usr/bin:/usr/sbin:/usr/local/bin:/usr/local/sbin"

[ "${NGINX_ENTRYPOINT_WORKER_PROCESSES_AUTOTUNE:-}" ] || exit 0

touch /etc/nginx/nginx.conf 2>/dev/null || { echo >&2 "$ME: error: can not modify /etc/nginx/nginx.conf (read-only file system?)"; exit 0; }

ceildiv() {
  num=$1
  div=$2
  echo $(( (num + div - 1) / div ))
}

get_cpuset() {
  cpusetroot=$1
  cpusetfile=$2
  ncpu=0
  [ -f "$cpusetroot/$cpusetfile" ] || return 1
  for token in $( tr ',' ' ' < "$cpusetroot/$cpusetfile" ); do
    case "$token" in
      *-*)
        count=$( seq $(echo "$token" | tr '-' ' ') | wc -l )
        ncpu=$(( ncpu+count ))
        ;;
      *)
        ncpu=$(( ncpu+1 ))
        ;;
    esac
  done
  echo "$ncpu"
}

get_quota() {
  cpuroot=$1
  ncpu=0
  [ -f "$cpuroot/cpu.cfs_quota_us" ] || return 1
  [ -f "$cpuroot/cpu.cfs_period_us" ] || return 1
  cfs_quota=$( cat "$cpuroot/cpu.cfs_quota_us" )
  cfs_period=$( cat "$cpuroot/cpu.cfs_period_us" )
  [ "$cfs_quota" = "-1" ] && return 1
  [ "$cfs_period" = "0" ] && return 1
  ncpu=$( ceildiv "$cfs_quota" "$cfs_period" )
  [ "$ncpu" -gt 0 ] || return 1
  echo "$ncpu"
}

get_quota_v2() {
  cpuroot=$1
  ncpu=0
  [ -f "$cpuroot/cpu.max" ] || return 1
  cfs_quota=$( cut -d' ' -f 1 < "$cpuroot/cpu.max" )
  cfs_period=$( cut -d' ' -f 2 < "$cpuroot/cpu.max" )
  [ "$cfs_quota" = "max" ] && return 1
  [ "$cfs_period" = "0" ] && return 1
  ncpu=$( ceildiv "$cfs_quota" "$cfs_period" )
  [ "$ncpu" -gt 0 ] || return 1
  echo "$ncpu"
}

get_cgroup_root() {
  # the mount point of the given controller, read from /proc/self/mountinfo
  controller=$1
  grep -E "[[:space:]]cgroup2?[[:space:]].*[[:space:],]$controller([[:space:],]|$)" /proc/self/mountinfo \\
    | head -n 1 | cut -d' ' -f 5
}

ncpu_online=$( getconf _NPROCESSORS_ONLN )
ncpu_cpuset=
ncpu_quota=

if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  ncpu_cpuset=$( get_cpuset /sys/fs/cgroup cpuset.cpus.effective ) || ncpu_cpuset=$ncpu_online
  ncpu_quota=$( get_quota_v2 /sys/fs/cgroup ) || ncpu_quota=$ncpu_online
else
  cpuset_root=$( get_cgroup_root cpuset )
  cpu_root=$( get_cgroup_root cpu )
  ncpu_cpuset=$( get_cpuset "${cpuset_root:-/nonexistent}" cpuset.effective_cpus ) || ncpu_cpuset=$ncpu_online
  ncpu_quota=$( get_quota "${cpu_root:-/nonexistent}" ) || ncpu_quota=$ncpu_online
fi

ncpu=$( printf "%s\\n%s\\n%s\\n" "$ncpu_online" "$ncpu_cpuset" "$ncpu_quota" | sort -n | head -n 1 )

sed -i.bak -r 's/^(worker_processes)(.*)$/# Commented out by '"$ME"' on '"$(date)"'\\n#\\1\\2\\n\\1 '"$ncpu"';/' /etc/nginx/nginx.conf
"""


def rootfs_layers(rootfs_tar, sizes, pad_source, clamp):
    """Split the root filesystem's files, in path order, into consecutive
    layers of exactly the given sizes (each topped up by a padding file).
    Returns a list of (layer_tar_bytes)."""
    src = tarfile.open(rootfs_tar)
    members = {}
    for m in src.getmembers():
        name = m.name[2:] if m.name.startswith("./") else m.name
        if name in ("", "."):
            continue
        m.name = name
        if m.islnk():
            m.linkname = m.linkname[2:] if m.linkname.startswith("./") else m.linkname
        members[name] = m
    dirs = {n: m for n, m in members.items() if m.isdir()}
    files = [members[n] for n in sorted(members) if not members[n].isdir()]

    layers = []
    pos = 0
    for i, budget in enumerate(sizes):
        pad_name = f"usr/share/strata-seed/layer{i + 1}.pad"
        chosen, chosen_names, total = [], set(), 0
        while pos < len(files):
            m = files[pos]
            if m.isreg():
                cost = m.size
            elif m.issym():
                cost = len(m.linkname.encode())
            elif m.islnk():
                cost = 0
            else:  # devices, fifos: not part of an image
                pos += 1
                continue
            # keep room for the padding file (it needs at least 1 byte)
            if total + cost > budget - 1:
                break
            # a hardlink goes only where its target is (docker counts it once)
            if not m.islnk() or m.linkname in chosen_names:
                chosen.append(m)
                chosen_names.add(m.name)
                total += cost
            pos += 1
        pad = (pad_source * (budget // len(pad_source) + 1))[: budget - total]

        lt = LayerTar(clamp[i])
        needed = set()
        for m in chosen + [tarfile.TarInfo(pad_name)]:
            parts = m.name.split("/")[:-1]
            for j in range(1, len(parts) + 1):
                needed.add("/".join(parts[:j]))
        entries = sorted([(d, None) for d in needed] + [(m.name, m) for m in chosen])
        for name, m in entries:
            if m is None:
                d = dirs.get(name)
                if d is not None:
                    d.mtime = min(d.mtime, clamp[i])
                    d.name = name
                    lt.member(d)
                else:
                    lt.dir(name)
                continue
            m.mtime = min(m.mtime, clamp[i])
            lt.member(m, src.extractfile(m) if m.isreg() else None)
        lt.file(pad_name, pad)
        layers.append(lt.finish())
    return layers


def main():
    rootfs_tar, out = sys.argv[1], sys.argv[2]

    t_base = "2021-10-12T01:20:42.283571345Z"
    t_base_cmd = "2021-10-12T01:20:42.654563386Z"
    t_label = "2021-10-12T02:02:41.279412513Z"
    t_run = "2021-10-12T02:03:33.862853781Z"
    t_copy = ["2021-10-12T02:03:35.153893622Z", "2021-10-12T02:03:36.091736452Z",
              "2021-10-12T02:03:37.031244537Z", "2021-10-12T02:03:38.033541621Z"]
    t_meta = ["2021-10-12T02:03:38.881287459Z", "2021-10-12T02:03:39.486640316Z",
              "2021-10-12T02:03:39.938226618Z", CREATED]

    # Real text used to top the big layers up to their exact size.
    with tarfile.open(rootfs_tar) as t:
        pad_source = t.extractfile("./usr/share/common-licenses/GPL-3").read()

    base, install = rootfs_layers(rootfs_tar, LAYER_SIZES[:2], pad_source,
                                  [epoch(t_base), epoch(t_run)])

    scripts = [
        ("docker-entrypoint.sh", ENTRYPOINT_SH, "65504f71f5855ca0", "/"),
        ("docker-entrypoint.d/10-listen-on-ipv6-by-default.sh", LISTEN_IPV6_SH, "0b866ff3fc1ef5b0", "/docker-entrypoint.d"),
        ("docker-entrypoint.d/20-envsubst-on-templates.sh", ENVSUBST_SH, "0fd5fca330dcd6a7", "/docker-entrypoint.d"),
        ("docker-entrypoint.d/30-tune-worker-processes.sh", TUNE_WORKERS_SH, "09a214a3e07c919a", "/docker-entrypoint.d"),
    ]
    small_layers, copy_history = [], []
    for (path, text, hash_prefix, dest), size, ts in zip(scripts, LAYER_SIZES[2:], t_copy):
        data = fit(text, size)
        lt = LayerTar(epoch(ts))
        if "/" in path:
            lt.dir("docker-entrypoint.d", mtime=epoch(t_run))
        lt.file(path, data, mode=0o775)
        small_layers.append(lt.finish())
        # docker's file:HASH; the seed shows the first 16 hex digits
        file_hash = hash_prefix + hashlib.sha256(data).hexdigest()[16:]
        copy_history.append({"created": ts, "created_by": copy("COPY file:" + file_hash, dest)})

    layers = [base, install] + small_layers
    for layer, size in zip(layers, LAYER_SIZES):
        print(f"layer {diff_id(layer)[:19]}: {len(layer)} tar bytes, {size} content bytes", file=sys.stderr)

    history = [
        {"created": t_base, "created_by": copy("ADD file:910392427fdf089bc26b3f2b2ee6ef3fa0e3f3f5bb5d2d4b1d9a1d4b8f7e3d5a", "/")},
        {"created": t_base_cmd, "created_by": nop('CMD ["bash"]'), "empty_layer": True},
        {"created": t_label, "created_by": nop("LABEL maintainer=NGINX Docker Maintainers <docker-maint@nginx.com>"), "empty_layer": True},
        {"created": t_label, "created_by": nop("ENV NGINX_VERSION=1.21.3"), "empty_layer": True},
        {"created": t_label, "created_by": nop("ENV NJS_VERSION=0.6.2"), "empty_layer": True},
        {"created": t_label, "created_by": nop("ENV PKG_RELEASE=1~buster"), "empty_layer": True},
        {"created": t_run, "created_by": run(NGINX_RUN)},
        *copy_history,
        {"created": t_meta[0], "created_by": nop('ENTRYPOINT ["/docker-entrypoint.sh"]'), "empty_layer": True},
        {"created": t_meta[1], "created_by": nop("EXPOSE 80"), "empty_layer": True},
        {"created": t_meta[2], "created_by": nop("STOPSIGNAL SIGQUIT"), "empty_layer": True},
        {"created": t_meta[3], "created_by": nop('CMD ["nginx" "-g" "daemon off;"]'), "empty_layer": True},
    ]
    assert len(history) == 15

    def container_config(cmd, hostname="", image=""):
        return {
            "Hostname": hostname, "Domainname": "", "User": "",
            "AttachStdin": False, "AttachStdout": False, "AttachStderr": False,
            "ExposedPorts": {"80/tcp": {}},
            "Tty": False, "OpenStdin": False, "StdinOnce": False,
            "Env": ENV, "Cmd": cmd, "Image": image, "Volumes": None,
            "WorkingDir": "", "Entrypoint": ["/docker-entrypoint.sh"],
            "OnBuild": None, "Labels": LABELS, "StopSignal": "SIGQUIT",
        }

    parent = "sha256:e30f1b92b2c67fbe72fb24af7353a945f6df4f48d9064d47bf0f51674311251e"
    # A docker-built image's config (as the seed's `docker inspect` shows it).
    config = {
        "architecture": "amd64",
        "config": container_config(["nginx", "-g", "daemon off;"], image=parent),
        "container": "21fd1c6cb532225ca7e04c77f6592e220574b919aec07021663576ef438e0fee",
        "container_config": container_config(
            ["/bin/sh", "-c", "#(nop) ", 'CMD ["nginx" "-g" "daemon off;"]'],
            hostname="21fd1c6cb532", image=parent),
        "created": CREATED,
        "docker_version": "20.10.7",
        "history": history,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id(l) for l in layers]},
    }

    archive = OciArchive()
    desc = archive.add_image(config, [gzip_bytes(l) for l in layers])
    desc["annotations"] = {
        "io.containerd.image.name": "docker.io/library/nginx:latest",
        "org.opencontainers.image.ref.name": "latest",
    }
    archive.write(out, [desc], epoch(CREATED))


if __name__ == "__main__":
    main()
