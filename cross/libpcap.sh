#!/bin/sh
# Builds a static libpcap for a cross target, out of tree, from a release tarball.
# One definition shared by `make aarch64` (Debian's source package, musl) and cross/Dockerfile
# (cross's image, glibc).
#
# usage: cross/libpcap.sh TARBALL HOST CC PREFIX [KERNEL_INCLUDE]
#   TARBALL         libpcap-X.Y.Z.tar.gz or Debian's libpcap_X.Y.Z.orig.tar.gz
#   HOST            configure's --host, e.g. aarch64-linux-musl
#   CC              the cross compiler, e.g. aarch64-linux-musl-gcc
#   PREFIX          where lib/libpcap.a and VERSION go
#   KERNEL_INCLUDE  a folder with the target's linux/, asm/, asm-generic/ headers, for
#                   toolchains (musl) that have none; added with -idirafter
set -eu
tarball=$(realpath "$1") host=$2 cc=$3 prefix=$4 kernel=${5:-}
mkdir -p "$prefix"
prefix=$(realpath "$prefix")
if [ -f "$prefix/lib/libpcap.a" ] && [ -f "$prefix/VERSION" ]; then
  echo "libpcap $(cat "$prefix/VERSION") for $host already built in $prefix"
  exit 0
fi
work="$prefix.build"
rm -rf "$work"
mkdir -p "$work/src" "$work/obj"
tar -xzf "$tarball" -C "$work/src" --strip-components=1
version=$(cat "$work/src/VERSION")
cflags="-O2"
if [ -n "$kernel" ]; then
  mkdir -p "$work/kernel"
  cp -r "$kernel/linux" "$kernel/asm" "$kernel/asm-generic" "$work/kernel/"
  cflags="$cflags -idirafter $work/kernel"
fi
cd "$work/obj"
CC="$cc" CFLAGS="$cflags" ../src/configure --host="$host" --prefix="$prefix" \
  --disable-shared --disable-dbus --disable-rdma --disable-bluetooth --disable-usb \
  --disable-netmap --without-libnl >configure.log 2>&1 || { tail -20 configure.log; exit 1; }
make -j"$(nproc)" >make.log 2>&1 || { tail -20 make.log; exit 1; }
make install >install.log 2>&1
echo "$version" >"$prefix/VERSION"
rm -rf "$work"
echo "built libpcap $version for $host in $prefix"
