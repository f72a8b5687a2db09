#!/usr/bin/env bash
# Installs the programs the tests start as real peers, from Debian's packages, when the
# machine lacks them: Node.js and npm (the SCIMMY interop app), OpenLDAP's slapd and
# client tools (the LDAP directory tests), Samba's Active Directory domain controller
# and its schema files (the Active Directory tests), and Prometheus with its promtool (the
# alert and dashboard tests, and the dashboard make bench draws).
set -euo pipefail

declare -A package_for=(
  [node]=nodejs
  [npm]=npm
  [/usr/sbin/slapd]=slapd
  [ldapsearch]=ldap-utils
  [/usr/sbin/samba]=samba
  [/usr/share/doc/samba-ad-dc]=samba-ad-dc
  [samba-tool]=samba-common-bin
  [/usr/share/samba/setup/ad-schema]=samba-ad-provision
  [promtool]=prometheus
  [prometheus]=prometheus
)

missing=()
for cmd in "${!package_for[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || [ -e "$cmd" ] || missing+=("${package_for[$cmd]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
echo "[install-test-tools] installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
