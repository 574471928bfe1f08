#!/usr/bin/env bash
# Bundles this machine's OpenMPI launcher (Debian's openmpi-bin 4.1, with libopenmpi3, PMIx and
# their help and config files) into .carry/mpirun, so that scripts/device/bench-nccl.sh can start
# dsk-bench-nccl under a real `mpirun` on the GPU machine, which has no MPI of its own.
#   scripts/device/pack-mpirun.sh
# .carry/mpirun/openmpi.tar.gz holds the packages' files at their absolute paths (the GPU machine,
# a throw-away VM, unpacks it over / without replacing any file that is already there);
# .carry/mpirun/lib holds the libraries those files load that are not glibc, for LD_LIBRARY_PATH.
# Only the launcher is needed: dsk-bench-nccl is built without MPI (DSK_MPI=OFF) and reads its rank
# from OpenMPI's environment. Network plugins' libraries (UCX, libfabric, verbs, PSM) are left out:
# those plugins then fail to load, which a single-host launch does not notice.
set -euo pipefail
cd "$(dirname "$0")/../.."
packages="openmpi-bin libopenmpi3 openmpi-common libpmix2"
dest=.carry/mpirun
rm -rf "$dest"
mkdir -p "$dest/lib"
# Plain files and symbolic links of the packages (directories come along with their files).
dpkg -L $packages | while read -r path; do
  if [ -L "$path" ] || [ -f "$path" ]; then echo "${path#/}"; fi
done | sort -u >"$dest/files.txt"
tar -C / -czf "$dest/openmpi.tar.gz" -T "$dest/files.txt"
leave_out='^(linux-vdso|ld-linux|libc\.|libm\.|libdl\.|librt\.|libpthread\.|libresolv\.|libutil\.|libstdc\+\+|libgcc_s|libopen-|libmpi|libpmix|liboshmem|libmca_common|libuc[mpst]|libfabric|libibverbs|librdmacm|libefa|libpsm|libinfinipath|libnl-)'
grep -E '(\.so[.0-9]*$|^usr/bin/)' "$dest/files.txt" | while read -r file; do
  [ -L "/$file" ] && continue
  { ldd "/$file" 2>/dev/null || true; } | awk '/=> \// {print $1, $3}'
done | sort -u | while read -r name path; do
  [[ $name =~ $leave_out ]] && continue
  cp -fL "$path" "$dest/lib/$name"
done
du -sh "$dest" "$dest/openmpi.tar.gz"
ls "$dest/lib"
