#!/bin/sh
# Slurm's ResumeProgram, delegated to dsk-scale (see dsk-scale(1)). In slurm.conf:
#   ResumeProgram=/usr/local/libexec/dsk/scale-resume-program.sh   (make install puts it there)
# slurmctld runs it with one argument, a hostlist; the policy's actuator.command runs once per node
# with DSK_SCALE_ACTION=resume and DSK_SCALE_NODE set. Slurm discards the output, so errors are
# appended to $DSK_SCALE_LOG.
exec dsk-scale -c "${DSK_SCALE_POLICY:-/etc/dsk/scale-slurm.yaml}" --slurm-resume "$1" \
  </dev/null >>"${DSK_SCALE_LOG:-/var/log/dsk-scale-power.log}" 2>&1
