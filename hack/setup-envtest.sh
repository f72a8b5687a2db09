#!/usr/bin/env bash
# Builds the control plane the tests and the demo run against: kube-apiserver (and kubectl)
# from k8s.io/kubernetes and etcd from go.etcd.io/etcd/server/v3, from Go modules only.
#
# The binaries are cached outside the work tree, so every clone on this machine shares them:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/roster/k8s/<version>-<os>-<arch>/
# and linked into bin/k8s. A second run finds them and does nothing.
#
# Prints the assets directory (for KUBEBUILDER_ASSETS) on stdout; progress goes to stderr.
set -euo pipefail

KUBERNETES_VERSION="${KUBERNETES_VERSION:-1.37.0}"
STAGING_VERSION="${STAGING_VERSION:-0.37.0}"
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
goos="$(go env GOOS)"
goarch="$(go env GOARCH)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/roster/k8s/${KUBERNETES_VERSION}-${goos}-${goarch}"
link="${root}/bin/k8s"
binaries=(kube-apiserver etcd kubectl)

log() { printf '[setup-envtest] %s\n' "$*" >&2; }

have_all() {
  local b
  for b in "${binaries[@]}"; do [ -x "${cache}/${b}" ] || return 1; done
}

link_into_bin() {
  mkdir -p "${root}/bin"
  if [ "$(readlink "${link}" 2>/dev/null)" != "${cache}" ]; then
    rm -rf "${link}"
    ln -s "${cache}" "${link}"
  fi
  echo "${link}"
}

# elapsed prints a progress line every 30 s while a long build runs.
with_progress() {
  local what="$1"; shift
  local start=$SECONDS
  "$@" &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 5
    if kill -0 "$pid" 2>/dev/null && (( (SECONDS - start) % 30 < 5 )); then
      log "  still building ${what} ($((SECONDS - start))s)"
    fi
  done
  wait "$pid"
  log "  built ${what} in $((SECONDS - start))s"
}

# staging_replaces turns the staging replace block of k8s.io/kubernetes' go.mod into
# replace lines that pin every staging module to its published release.
staging_replaces() {
  local gomod="$1"
  sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\1#p' "${gomod}" |
    while read -r mod; do echo "replace ${mod} => ${mod} v${STAGING_VERSION}"; done
}

build_kubernetes() {
  local work="$1/kubernetes"
  mkdir -p "${work}"
  log "resolving k8s.io/kubernetes v${KUBERNETES_VERSION}"
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@v${KUBERNETES_VERSION}" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
  [ -f "${gomod}" ] || { log "could not download k8s.io/kubernetes v${KUBERNETES_VERSION}"; exit 1; }
  {
    echo "module roster.dev/hack/kubernetes-build"
    echo
    echo "go $(go env GOVERSION | sed 's/^go\([0-9]*\.[0-9]*\).*/\1/')"
    echo
    echo "require k8s.io/kubernetes v${KUBERNETES_VERSION}"
    echo
    staging_replaces "${gomod}"
  } >"${work}/go.mod"
  local pkg ldflags=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X ${pkg}.gitVersion=v${KUBERNETES_VERSION}"
    ldflags+=" -X ${pkg}.gitMajor=${KUBERNETES_VERSION%%.*}"
    ldflags+=" -X ${pkg}.gitMinor=$(echo "${KUBERNETES_VERSION}" | cut -d. -f2)"
    ldflags+=" -X ${pkg}.gitTreeState=clean"
    ldflags+=" -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
  done
  log "downloading the modules kube-apiserver needs"
  (cd "${work}" && go mod download k8s.io/kubernetes && GOFLAGS=-mod=mod go list -deps k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl >/dev/null)
  for cmd in kube-apiserver kubectl; do
    log "building ${cmd} v${KUBERNETES_VERSION} (the first build takes about ten minutes on two cores)"
    with_progress "${cmd}" bash -c "cd '${work}' && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags '-s -w ${ldflags}' -o '${cache}/${cmd}.tmp' k8s.io/kubernetes/cmd/${cmd}"
    mv "${cache}/${cmd}.tmp" "${cache}/${cmd}"
  done
}

build_etcd() {
  local work="$1/etcd"
  mkdir -p "${work}"
  cat >"${work}/main.go" <<'GO'
// Command etcd runs the etcd server from its Go module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  cat >"${work}/go.mod" <<MOD
module roster.dev/hack/etcd-build

go $(go env GOVERSION | sed 's/^go\([0-9]*\.[0-9]*\).*/\1/')

require go.etcd.io/etcd/server/v3 v${ETCD_VERSION}
MOD
  log "building etcd v${ETCD_VERSION}"
  with_progress etcd bash -c "cd '${work}' && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags '-s -w' -o '${cache}/etcd.tmp' ."
  mv "${cache}/etcd.tmp" "${cache}/etcd"
}

if have_all; then
  log "control plane v${KUBERNETES_VERSION} found in ${cache}"
  link_into_bin
  exit 0
fi

command -v go >/dev/null || { log "go is required"; exit 1; }
mkdir -p "${cache}"
tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT
start=$SECONDS
[ -x "${cache}/etcd" ] || build_etcd "${tmp}"
[ -x "${cache}/kube-apiserver" ] && [ -x "${cache}/kubectl" ] || build_kubernetes "${tmp}"
"${cache}/kube-apiserver" --version >&2
log "control plane ready in $((SECONDS - start))s: ${cache}"
link_into_bin
