#!/bin/sh
# Slurm's SuspendProgram, delegated to dsk-scale (see dsk-scale(1)). In slurm.conf:
#   SuspendProgram=/usr/local/libexec/dsk/scale-suspend-program.sh   (make install puts it there)
# slurmctld runs it with one argument, a hostlist; the policy's actuator.command runs once per node
# with DSK_SCALE_ACTION=suspend and DSK_SCALE_NODE set. Slurm discards the output, so errors are
# appended to $DSK_SCALE_LOG.
exec dsk-scale -c "${DSK_SCALE_POLICY:-/etc/dsk/scale-slurm.yaml}" --slurm-suspend "$1" \
  </dev/null >>"${DSK_SCALE_LOG:-/var/log/dsk-scale-power.log}" 2>&1
