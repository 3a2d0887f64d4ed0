#!/usr/bin/env bash
# The tests' own base image, built without an image registry: Debian bookworm from the Debian
# mirror apt already uses here (debootstrap), imported into the local Docker engine. It trusts
# this machine's CA bundle for pip (the package registries are reached through a TLS-inspecting
# proxy here); that belongs to this test image only, never to the project's Dockerfiles.
#   usage: build-base-image.sh IMAGE_TAG   (does nothing when the image exists)
set -euo pipefail
tag=${1:?usage: build-base-image.sh IMAGE_TAG}
if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "base image $tag exists"
    exit 0
fi
# The mirror this machine's apt is configured with (deb822 sources, else a sources.list line).
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
if [ -z "$mirror" ]; then
    mirror=$(sed -n 's/^deb  *\(\[[^]]*\]  *\)\{0,1\}\([^ ]*\) .*/\2/p' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n1)
fi
[ -n "$mirror" ] || { echo "no Debian mirror in this machine's apt configuration" >&2; exit 1; }
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
# libnuma1: vLLM on CPU loads libnuma.so.1 at start.
debootstrap --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates,libnuma1 \
    bookworm "$rootfs" "$mirror"
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/host-ca-bundle.crt"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/host-ca-bundle.crt' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/host-ca-bundle.crt' \
    --change 'ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/host-ca-bundle.crt' \
    --change 'CMD ["/bin/bash"]' - "$tag"
echo "base image $tag built"
