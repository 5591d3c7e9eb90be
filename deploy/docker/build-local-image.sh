#!/usr/bin/env bash
# Builds a cellkv image with no registry at all: an image FROM scratch holding binaries that
# are already built on this machine, the shared libraries they load (as `ldd` lists them),
# the dynamic loader, a POSIX shell (for the Kubernetes start command) and a non-root user.
#
#   deploy/docker/build-local-image.sh [TAG]          # default tag cellkv:local
#
# Environment:
#   CELLKV_BIN   the server binary  (default ${CARGO_TARGET_DIR:-~/.cache/cellkv/target}/debug/cellkv)
#   CELLKV_CLI   the admin tool     (default .../debug/cellkv-cli)
#   CELLKV_IMAGE_LABEL  an extra label key=value put on the image (tests use it to find theirs)
#
# It never compiles anything: build the binaries first (`cargo build --release --bin cellkv
# --bin cellkv-cli`, or take those `cargo test --workspace` left). Binaries are stripped of
# debug information on the way in when `strip` exists. The image behaves like the one
# deploy/docker/Dockerfile builds: user 10001, /data, RESP 6379, Raft 16379, ENTRYPOINT cellkv.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tag="${1:-cellkv:local}"
target="${CARGO_TARGET_DIR:-$HOME/.cache/cellkv/target}"
bin="${CELLKV_BIN:-$target/debug/cellkv}"
cli="${CELLKV_CLI:-$target/debug/cellkv-cli}"
for f in "$bin" "$cli"; do
    [ -x "$f" ] || { echo "build-local-image: no executable at $f (build it first, or set CELLKV_BIN / CELLKV_CLI)" >&2; exit 1; }
done
command -v docker >/dev/null 2>&1 || { echo "build-local-image: docker is not installed" >&2; exit 1; }
shell="$(readlink -f /bin/sh)"

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
root="$ctx/rootfs"
mkdir -p "$root/usr/local/bin" "$root/bin" "$root/etc/cellkv" "$root/tmp" "$ctx/data"

put_binary() { # SRC DEST: copy (stripped when possible) and make executable
    if command -v strip >/dev/null 2>&1; then
        strip --strip-debug -o "$2" "$1"
    else
        cp "$1" "$2"
    fi
    chmod 0755 "$2"
}
put_binary "$bin" "$root/usr/local/bin/cellkv"
put_binary "$cli" "$root/usr/local/bin/cellkv-cli"
cp "$shell" "$root/bin/sh"

# Every library the three programs load, at the path the loader looks for it, plus the
# loader itself (the `/lib64/ld-linux-...` line ldd prints without an arrow).
libs="$( { ldd "$bin"; ldd "$cli"; ldd "$shell"; } \
    | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)"
[ -n "$libs" ] || { echo "build-local-image: ldd listed no libraries (a static build needs none; this script expects a dynamic one)" >&2; exit 1; }
for lib in $libs; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done

# The user the Dockerfile's image runs as, and name resolution from /etc/hosts then DNS
# (compose service names, Kubernetes headless-service names).
printf 'root:x:0:0:root:/root:/bin/sh\ncellkv:x:10001:10001:cellkv:/data:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\ncellkv:x:10001:\n' >"$root/etc/group"
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
chmod 1777 "$root/tmp"

label=()
[ -n "${CELLKV_IMAGE_LABEL:-}" ] && label=(--label "$CELLKV_IMAGE_LABEL")
cp "$here/Dockerfile.scratch" "$ctx/Dockerfile"
# The classic builder: it needs no base image and no BuildKit front end from a registry.
DOCKER_BUILDKIT=0 nice -n 10 docker build -q "${label[@]}" -t "$tag" "$ctx" >"$ctx/build.log" 2>&1 \
    || { cat "$ctx/build.log" >&2; exit 1; }
echo "built $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
