#!/usr/bin/env bash
# The CPU kernels compile without a diagnostic, GCC's notes included (-Wpsabi on matmul.cpp's
# vector arguments was one): each file of kernels/cpu is compiled again to /dev/null with the
# exact command of the build (compile_commands.json), and must print nothing.
set -euo pipefail
commands="${DSK_BUILD_DIR:?}/compile_commands.json"
[ -f "$commands" ] || { echo "no $commands (CMAKE_EXPORT_COMPILE_COMMANDS is off)"; exit 77; }
python3 - "$commands" "${DSK_SOURCE_DIR:?}/kernels/cpu/" <<'PY'
import json, shlex, subprocess, sys

commands, folder = sys.argv[1:]
checked, failed = 0, 0
for entry in json.load(open(commands)):
    if not entry["file"].startswith(folder) or not entry["file"].endswith(".cpp"):
        continue
    argv = shlex.split(entry["command"])
    argv[argv.index("-o") + 1] = "/dev/null"
    result = subprocess.run(argv, cwd=entry["directory"], capture_output=True, text=True)
    checked += 1
    if result.returncode != 0 or result.stderr:
        failed += 1
        print(f"FAIL: {entry['file']}:\n{result.stderr}", file=sys.stderr)
if checked == 0:
    sys.exit(f"FAIL: no file of {folder} in {commands}")
print(f"build warnings: {checked} files, {failed} with diagnostics")
sys.exit(1 if failed else 0)
PY
