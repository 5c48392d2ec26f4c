#!/usr/bin/env bash
# Builds the container image (Containerfile at the repository root) with podman, on machines
# that reach Debian's mirrors, crates.io and static.rust-lang.org but no container registry.
#
#   deploy/container/build.sh [--tag NAME] [--refresh-base] [--suite SUITE]
#
# Without --tag the image is tagged localhost/webui-monitor:VERSION (the workspace's version,
# which deploy/kubernetes/ names) and localhost/webui-monitor:latest (deploy/compose/).
#
# The Debian base image both stages start from is made by mmdebstrap (minbase, merged /usr,
# no manuals, docs or translations) and imported into podman as
# localhost/webui-monitor-debian:SUITE; later builds reuse it (--refresh-base makes it again,
# e.g. for Debian's security updates). The build reuses podman's layer cache and the
# Containerfile's cargo caches, so after the first build a source change recompiles only what
# changed.
#
# Needs root (mmdebstrap's root mode), podman and mmdebstrap
# (`apt-get install podman runc mmdebstrap`). Where podman's defaults do not run containers
# (hybrid cgroups, hard rlimits below podman's default ulimits), point CONTAINERS_CONF at
# deploy/container/containers.conf.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tag=
suite=bookworm
refresh=false
while [[ $# -gt 0 ]]; do
    case $1 in
    --tag) tag=$2; shift 2 ;;
    --suite) suite=$2; shift 2 ;;
    --refresh-base) refresh=true; shift ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
for tool in podman mmdebstrap; do
    command -v "$tool" >/dev/null ||
        { echo "$tool is missing: apt-get install podman runc mmdebstrap" >&2; exit 2; }
done

base=localhost/webui-monitor-debian:$suite
if $refresh || ! podman image exists "$base"; then
    echo "making the Debian $suite base image $base with mmdebstrap"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    mmdebstrap --variant=minbase --format=tar \
        --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        "$suite" "$tmp/rootfs.tar"
    podman import --change 'CMD ["/bin/bash"]' \
        --change "LABEL org.opencontainers.image.description=Debian $suite minbase (mmdebstrap)" \
        "$tmp/rootfs.tar" "$base"
fi

version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)
if [[ -z $tag ]]; then
    tag=localhost/webui-monitor:$version
    tags=(--tag "$tag" --tag localhost/webui-monitor:latest)
else
    tags=(--tag "$tag")
fi
revision=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
if [[ $revision != unknown ]] && ! git -C "$root" diff --quiet HEAD 2>/dev/null; then
    revision=$revision-dirty
fi
# The host's own certificate authorities (e.g. a TLS-inspecting proxy's), trusted by the build
# stage's apt, rustup and cargo; they are not copied into the image.
extra_cas=()
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    extra_cas=(--volume /usr/local/share/ca-certificates:/usr/local/share/ca-certificates:ro)
fi
start=$(date +%s)
# --format docker keeps HEALTHCHECK (OCI image configs have no field for it); the build steps
# use the host's network so apt, rustup and cargo reach their servers without a container
# network backend.
podman build --format docker --network host --layers "${extra_cas[@]}" \
    --build-arg "BUILD_BASE=$base" --build-arg "RUNTIME_BASE=$base" \
    --build-arg "VERSION=$version" --build-arg "REVISION=$revision" \
    --file "$root/Containerfile" "${tags[@]}" "$root"
size=$(podman image inspect --format '{{.Size}}' "$tag")
echo "built $tag ($version, $revision): $((size / 1000000)) MB in $(($(date +%s) - start)) s"
