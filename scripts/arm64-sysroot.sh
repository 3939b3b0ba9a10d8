#!/usr/bin/env bash
# Make an arm64 (aarch64) sysroot with Debian 12's Python 3.11 and NumPy, from Debian's arm64
# packages, WITHOUT installing them: `apt-get install python3:arm64` would remove the host's
# Python. The packages are downloaded (apt-get download) and unpacked (dpkg -x) into a folder:
#   bash scripts/arm64-sysroot.sh [DIR]     # DIR: default $PYNAS_ARM64_SYSROOT or build/arm64-sysroot
# It serves two purposes: its usr/include/python3.11 for cross-compiling the extension
# (cmake/aarch64-linux-gnu.cmake), and running that Python under user-mode emulation:
#   qemu-aarch64-static -L DIR DIR/usr/bin/python3.11 -c 'import numpy'
# Idempotent: a finished sysroot records its package list and is reused while the list is the
# same (a rerun takes no time). Needs root the first time (dpkg --add-architecture arm64 and
# apt-get update), which only adds arm64 to apt's package lists; nothing arm64 gets installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SYSROOT=${1:-${PYNAS_ARM64_SYSROOT:-build/arm64-sysroot}}
MULTIARCH=aarch64-linux-gnu

# Python 3.11 and its runtime dependencies (apt-cache depends python3.11 libpython3.11-stdlib ...),
# NumPy with the reference BLAS/LAPACK it links to, and the C/C++ runtimes; the headers come from
# libpython3.11-dev (its libpython3.11 is not needed: extension modules do not link to it).
PACKAGES=(
  python3.11 python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libpython3.11-dev
  python3-numpy libblas3 liblapack3 libgfortran5
  libc6 libgcc-s1 libstdc++6 libexpat1 zlib1g libssl3 libffi8 libbz2-1.0 liblzma5 libsqlite3-0
  libcrypt1 libuuid1 libncursesw6 libtinfo6 libreadline8 libdb5.3
  libnsl2 libtirpc3 libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libcom-err2 libkeyutils1
)
STAMP_FILE=.pynas-sysroot
stamp="pynas arm64 sysroot v1: ${PACKAGES[*]}"

if [[ -f "$SYSROOT/$STAMP_FILE" && "$(cat "$SYSROOT/$STAMP_FILE")" == "$stamp" ]]; then
  echo "arm64-sysroot: $SYSROOT is up to date"
  exit 0
fi

APT=(apt-get -q -o DPkg::Lock::Timeout=600)
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "arm64-sysroot: dpkg --add-architecture arm64"
  dpkg --add-architecture arm64
  "${APT[@]}" update
elif ! apt-cache show libc6:arm64 >/dev/null 2>&1; then
  "${APT[@]}" update
fi

partial="$SYSROOT.partial"
rm -rf "$partial"
mkdir -p "$partial/debs" "$partial/root"
echo "arm64-sysroot: downloading ${#PACKAGES[@]} packages"
# apt-get download writes into the cwd; as root it would first try to drop to the _apt user,
# which cannot write there (a warning only): keep root.
download() {
  (cd "$partial/debs" && "${APT[@]}" -o APT::Sandbox::User=root download "${PACKAGES[@]/%/:arm64}" >/dev/null)
}
if ! download; then
  echo "arm64-sysroot: download failed; apt-get update (package lists out of date?) and retry"
  "${APT[@]}" update
  download
fi
n_debs=$(find "$partial/debs" -name '*.deb' | wc -l)
if [[ "$n_debs" -ne ${#PACKAGES[@]} ]]; then
  echo "arm64-sysroot: expected ${#PACKAGES[@]} .deb files, got $n_debs" >&2
  exit 1
fi
for deb in "$partial"/debs/*.deb; do
  dpkg -x "$deb" "$partial/root"
done
root="$partial/root"

# What the maintainer scripts would have done, by hand:
# - libblas3/liblapack3 register libblas.so.3/liblapack.so.3 with update-alternatives;
ln -sfn blas/libblas.so.3 "$root/usr/lib/$MULTIARCH/libblas.so.3"
ln -sfn lapack/liblapack.so.3 "$root/usr/lib/$MULTIARCH/liblapack.so.3"
# - absolute symlinks (e.g. sitecustomize.py -> /etc/python3.11/...) would point into the build
#   machine's tree, not the sysroot's: make them relative.
while IFS= read -r -d '' link; do
  target=$(readlink "$link")
  rel=$(realpath -m -s --relative-to="$(dirname "$link")" "$root$target")
  ln -sfn "$rel" "$link"
done < <(find "$root" -type l -lname '/*' -print0)
# - under `qemu-aarch64-static -L SYSROOT` a path the sysroot lacks is looked up on the build
#   machine: an empty /usr/local/lib/python3.11/dist-packages keeps the host's (and its .pth
#   files) out of the emulated Python's sys.path.
mkdir -p "$root/usr/local/lib/python3.11/dist-packages"
# Not needed: documentation, and the static libpython.
rm -rf "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/lintian" "$root/usr/lib/$MULTIARCH"/libpython3.11*.a "$root"/usr/lib/python3.11/config-3.11-*/libpython3.11*.a

# Every shared library that an ELF file of the sysroot needs must be in it.
missing=$(
  cd "$root"
  find . -type f \( -name '*.so' -o -name '*.so.*' -o -path './usr/bin/*' \) -print0 |
    while IFS= read -r -d '' f; do
      [[ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" == '177ELF' ]] || continue
      for lib in $(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        [[ -e "lib/$MULTIARCH/$lib" || -e "usr/lib/$MULTIARCH/$lib" || -e "$(dirname "$f")/$lib" ]] ||
          echo "  $f needs $lib"
      done
    done
)
if [[ -n "$missing" ]]; then
  echo "arm64-sysroot: missing shared libraries (add their packages to PACKAGES):" >&2
  echo "$missing" >&2
  exit 1
fi
for f in usr/bin/python3.11 "lib/ld-linux-aarch64.so.1" usr/include/python3.11/Python.h \
         "usr/include/$MULTIARCH/python3.11/pyconfig.h" usr/lib/python3/dist-packages/numpy/__init__.py; do
  [[ -e "$root/$f" ]] || { echo "arm64-sysroot: $f missing" >&2; exit 1; }
done

echo "$stamp" >"$root/$STAMP_FILE"
rm -rf "$SYSROOT"
mv "$root" "$SYSROOT"
rm -rf "$partial"
echo "arm64-sysroot: $SYSROOT ready ($(du -sh "$SYSROOT" | cut -f1))"
