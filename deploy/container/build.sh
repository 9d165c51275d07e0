#!/usr/bin/env bash
# Builds Butler's container image with podman.
#
#   deploy/container/build.sh [--no-cache] [--tag NAME[:TAG]]... [--jobs N] [--rebuild-base]
#
# 1. Makes the base image localhost/debian:bookworm-minbase if it is missing:
#    a Debian 12 "minbase" root file system made with mmdebstrap from the
#    Debian mirror this machine's apt is configured with, imported into podman.
# 2. Builds deploy/container/Containerfile from the repository root and tags
#    the result localhost/butler:<version> (the version of CMakeLists.txt's
#    project()), plus any --tag given.
#
# Options:
#   --no-cache       rebuild every step of the Containerfile (apt downloads included)
#   --tag NAME       also tag the image NAME (repeatable), e.g. registry.example.com/qlik/butler:0.1.0
#   --jobs N         compile jobs inside the build (default 2)
#   --rebuild-base   make the base image again even if it exists (fresh Debian packages)
#   -h, --help       print this help
#
# Environment:
#   DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR   use these instead of the mirrors in apt's sources
#
# podman runs with the vfs storage driver and chroot isolation, which need
# neither overlay mounts nor a container runtime: they work inside
# unprivileged or nested environments (a CI runner, a container) too. The
# image is written in Docker's format, because the OCI format has no
# HEALTHCHECK.
set -euo pipefail

top="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
containerfile="$top/deploy/container/Containerfile"
base_image="localhost/debian:bookworm-minbase"
suite="bookworm"

no_cache=()
extra_tags=()
jobs=2
rebuild_base=false

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }
die() { echo "build.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --no-cache) no_cache=(--no-cache) ;;
    --tag) [ $# -ge 2 ] || die "--tag needs an image name"; extra_tags+=("$2"); shift ;;
    --tag=*) extra_tags+=("${1#--tag=}") ;;
    --jobs) [ $# -ge 2 ] || die "--jobs needs a number"; jobs="$2"; shift ;;
    --jobs=*) jobs="${1#--jobs=}" ;;
    --rebuild-base) rebuild_base=true ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
  shift
done
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || die "--jobs: expected a positive integer, got \"$jobs\""

# -- tools ----------------------------------------------------------------------

need() {  # need COMMAND DEBIAN-PACKAGE
  command -v "$1" >/dev/null 2>&1 \
    || die "$1 not found: install it with 'apt-get install $2' (Debian package $2)"
}
need podman podman
# The same storage driver for every podman call: images made with one driver
# are invisible to the other.
podman=(podman --storage-driver vfs)

# -- version ----------------------------------------------------------------------

version="$(sed -n 's/^project([[:space:]]*butler[[:space:]]\{1,\}VERSION[[:space:]]\{1,\}\([0-9][0-9.]*\).*/\1/p' "$top/CMakeLists.txt")"
[ -n "$version" ] || die "no 'project(butler VERSION x.y.z' line in $top/CMakeLists.txt"
image="localhost/butler:$version"

# -- base image -------------------------------------------------------------------

# Prints the URI of the first enabled "deb" source in apt's configuration
# whose suites include $1 (one-line .list files and deb822 .sources files).
apt_mirror() {
  local want="$1" f
  {
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -r "$f" ] || continue
      awk -v want="$want" '
        $1 == "deb" {
          i = 2
          if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }  # skip [options]
          if ($(i + 1) == want) print $i
        }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -r "$f" ] || continue
      awk -v want="$want" '
        function flush() {
          if (types ~ /(^| )deb( |$)/ && enabled != "no" && (" " suites " ") ~ (" " want " ") && uris != "") {
            split(uris, u, " "); print u[1]
          }
          types = ""; suites = ""; uris = ""; enabled = ""
        }
        /^[[:space:]]*#/ { next }
        /^[[:space:]]*$/ { flush(); next }
        /^[^[:space:]]/ {
          key = tolower($1); sub(/:$/, "", key)
          val = $0; sub(/^[^:]*:[[:space:]]*/, "", val)
          if (key == "types") types = val
          else if (key == "suites") suites = val
          else if (key == "uris") uris = val
          else if (key == "enabled") enabled = tolower(val)
        }
        END { flush() }' "$f"
    done
  } | grep -E '^(https?|file)://' | head -n 1 || true
}

make_base_image() {
  need mmdebstrap mmdebstrap
  local mirror security tmp
  mirror="${DEBIAN_MIRROR:-$(apt_mirror "$suite")}"
  [ -n "$mirror" ] || die "no Debian mirror for '$suite' in /etc/apt/sources.list or /etc/apt/sources.list.d/; set DEBIAN_MIRROR"
  security="${DEBIAN_SECURITY_MIRROR:-$(apt_mirror "$suite-security")}"
  local sources=("deb $mirror $suite main" "deb $mirror $suite-updates main")
  if [ -n "$security" ]; then
    sources+=("deb $security $suite-security main")
  else
    echo "build.sh: warning: no mirror for $suite-security configured; the base image gets no security updates" >&2
  fi
  echo "build.sh: making $base_image with mmdebstrap from:"
  printf '  %s\n' "${sources[@]}"

  tmp="$(mktemp -d)"
  # shellcheck disable=SC2064  # expand $tmp now: it is local to this function
  trap "rm -rf '$tmp'" EXIT
  # minbase: the Essential and Priority: required packages plus apt (bash,
  # coreutils, dpkg, passwd, ...). The merged-usr hook lays out merged /usr
  # with symlinks, as debootstrap does, instead of installing the usrmerge
  # package, which would bring perl (about 50 MB) into every image.
  # The apt and dpkg options are kept in the image and so also apply to every
  # package installed on top of it: no package-description translations, no
  # binary package caches left behind by apt-get (about 80 MB after an
  # apt-get update), no manual pages, documentation other than the copyright
  # files, or message translations.
  local hooks=()
  if [ -d /usr/share/mmdebstrap/hooks/merged-usr ]; then
    hooks=(--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr)
  fi
  mmdebstrap --variant=minbase --components=main "${hooks[@]}" \
    --aptopt='Acquire::Languages "none"' \
    --aptopt='Dir::Cache::pkgcache ""' \
    --aptopt='Dir::Cache::srcpkgcache ""' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    "$suite" "$tmp/rootfs.tar" "${sources[@]}"
  "${podman[@]}" import \
    --change 'CMD ["/bin/bash"]' \
    --message "Debian $suite minbase (mmdebstrap)" \
    "$tmp/rootfs.tar" "$base_image"
  rm -rf "$tmp"
  trap - EXIT
}

if $rebuild_base || ! "${podman[@]}" image exists "$base_image"; then
  make_base_image
else
  echo "build.sh: using the existing $base_image (--rebuild-base makes it again)"
fi

# -- Butler's image -----------------------------------------------------------------

revision="$(git -C "$top" rev-parse HEAD 2>/dev/null || true)"
if [ -n "$revision" ] && [ -n "$(git -C "$top" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  revision="$revision-dirty"
fi
tags=(-t "$image")
for t in "${extra_tags[@]}"; do tags+=(-t "$t"); done

echo "build.sh: building $image from $top (compile jobs: $jobs)"
"${podman[@]}" build --isolation chroot --format docker --pull=never \
  "${no_cache[@]}" \
  --build-arg "BUTLER_VERSION=$version" \
  --build-arg "BUILD_JOBS=$jobs" \
  --build-arg "VCS_REF=$revision" \
  --build-arg "BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  -f "$containerfile" "${tags[@]}" "$top"

id="$("${podman[@]}" image inspect --format '{{.Id}}' "$image")"
bytes="$("${podman[@]}" image inspect --format '{{.Size}}' "$image")"
echo
echo "image: $image${extra_tags[*]:+ (also ${extra_tags[*]})}"
echo "id:    $id"
echo "size:  $((bytes / 1000000)) MB ($bytes bytes, uncompressed)"
