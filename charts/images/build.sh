#!/usr/bin/env bash
# Builds the container images of the broker and the connection service with ko: no Docker engine,
# no Dockerfile. ko and crane are pinned in charts/images/go.mod (a module of its own, outside
# go.work, so that its dependencies never move the workspace's versions).
#
#   bash charts/images/build.sh push REGISTRY [TAG]
#       Builds for linux/amd64 and linux/arm64 on the distroless base of .ko.yaml and pushes
#       REGISTRY/broker:TAG and REGISTRY/connections:TAG (TAG defaults to the charts'
#       appVersion). Needs registry credentials (docker login, or a credential helper) and access
#       to the base image. Prints the pushed references with their digests.
#
#   bash charts/images/build.sh offline OUT_DIR
#       For machines without registry access: builds linux/amd64 images on a stand-in base made
#       here (the host's CA bundle and a passwd with the nonroot user 65532), served by a crane
#       registry on loopback for the length of the build, and writes them to OUT_DIR/images.tar
#       (a `docker load`-able tarball) and the OCI layout OUT_DIR/oci. The stand-in base is for
#       checking that the images build, not for production: push mode uses distroless.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

ko_version=$(GOWORK=off go -C charts/images list -m -f '{{.Version}}' github.com/google/ko)
bin="${XDG_CACHE_HOME:-$HOME/.cache}/integrationhub/ko-${ko_version}"
mkdir -p "$bin"
if [[ ! -x "$bin/ko" || ! -x "$bin/crane" ]]; then
  echo "building ko ${ko_version} and crane into $bin" >&2
  GOWORK=off go -C charts/images build -o "$bin/ko" github.com/google/ko
  GOWORK=off go -C charts/images build -o "$bin/crane" github.com/google/go-containerregistry/cmd/crane
fi

# The images are built as CI tests the code: in workspace mode (go.work), whose versions the
# check below proves equal to what each module's own go.mod selects. A drift stops the build.
bash scripts/check-dep-versions.sh

export KO_CONFIG_PATH="$root/charts/images/.ko.yaml"
version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/broker/Chart.yaml)
packages=(./broker/cmd/broker ./services/connections/cmd/connections)

case "${1:-}" in
push)
  registry=${2:?usage: build.sh push REGISTRY [TAG]}
  tag=${3:-$version}
  KO_DOCKER_REPO="$registry" "$bin/ko" build --base-import-paths --tags "$tag" \
    --image-label "org.opencontainers.image.version=$tag" "${packages[@]}"
  ;;
offline)
  out=${2:?usage: build.sh offline OUT_DIR}
  mkdir -p "$out"
  out=$(cd "$out" && pwd)
  work=$(mktemp -d)
  port=$((20000 + RANDOM % 20000))
  "$bin/crane" registry serve --address "127.0.0.1:$port" >"$work/registry.log" 2>&1 &
  registry_pid=$!
  trap 'kill "$registry_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
  for _ in $(seq 50); do
    "$bin/crane" catalog --insecure "127.0.0.1:$port" >/dev/null 2>&1 && break
    sleep 0.1
  done
  # The stand-in base: CA certificates and a nonroot user, like distroless/static.
  mkdir -p "$work/base/etc/ssl/certs"
  cp /etc/ssl/certs/ca-certificates.crt "$work/base/etc/ssl/certs/"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$work/base/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$work/base/etc/group"
  tar --owner=0 --group=0 --numeric-owner -C "$work/base" -cf "$work/base.tar" etc
  base="127.0.0.1:$port/base/static"
  "$bin/crane" append --insecure --oci-empty-base -f "$work/base.tar" -t "$base:layer" >/dev/null
  "$bin/crane" mutate --insecure --set-platform linux/amd64 -u 65532:65532 -t "$base:nonroot" "$base:layer" >/dev/null
  rm -rf "$out/oci" "$out/images.tar"
  KO_DOCKER_REPO="127.0.0.1:$port/integrationhub" KO_DEFAULTBASEIMAGE="$base:nonroot" \
    "$bin/ko" build --insecure-registry --base-import-paths --platform linux/amd64 --sbom none \
    --push=false --tags "$version" --tarball "$out/images.tar" --oci-layout-path "$out/oci" "${packages[@]}"
  echo "images written to $out/images.tar and $out/oci" >&2
  ;;
*)
  sed -n '2,20p' "$0" >&2
  exit 2
  ;;
esac
