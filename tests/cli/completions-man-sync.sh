#!/usr/bin/env bash
# Completions and man pages against the binary: for each checked tool, the bash and the zsh
# completion offer exactly the flags that `--help` shows (its subcommands' included), the man
# page describes each of them and lists no option the tool lacks, and the completion files parse.
# A tool joins CHECKED once its files agree; DSK_SYNC_TOOLS="dsk-upload" checks only those named.
set -euo pipefail
CHECKED=${DSK_SYNC_TOOLS:-"dsk-tokenize dsk-scale dsk-train dsk-upload dsk-bench-nccl dsk-distill dsk-serve dsk-finetune"}
source_dir=${DSK_SOURCE_DIR:?}
status=0
for tool in $CHECKED; do
  [ -f "$source_dir/tools/$tool.cpp" ] || continue  # not written yet
  binary="${DSK_BUILD_DIR:?}/tools/$tool"
  [ -x "$binary" ] || { echo "FAIL: $tool is not built" >&2; status=1; continue; }
  bash -n "$source_dir/completions/bash/$tool" || { echo "FAIL: completions/bash/$tool does not parse" >&2; status=1; }
  if command -v zsh >/dev/null; then
    zsh -n "$source_dir/completions/zsh/_$tool" || { echo "FAIL: completions/zsh/_$tool does not parse" >&2; status=1; }
  fi
  python3 - "$binary" "$source_dir/completions/bash/$tool" "$source_dir/completions/zsh/_$tool" \
    "$source_dir/man/$tool.1" <<'PY' || status=1
import re, subprocess, sys

binary, bash_path, zsh_path, man_path = sys.argv[1:]
tool = binary.rsplit("/", 1)[-1]


def help_flags():
    """Every -x and --name in the OPTIONS of --help and of each (nested) subcommand's --help."""
    flags = set()

    def read(argv):
        section, subcommands = None, []
        for line in subprocess.run(argv + ["--help"], capture_output=True, text=True, check=True).stdout.splitlines():
            if re.match(r"^\S.*:$", line):
                section = line[:-1]
            elif section == "Subcommands" and re.match(r"^  \S", line):
                subcommands.append(line.split()[0])
            elif match := re.match(r"^  (-\S+)", line):
                flags.update(match.group(1).split(","))
        for subcommand in subcommands:
            read(argv + [subcommand])

    read([binary])
    return flags


def bash_flags(text):  # the words offered by compgen -W "...", and by variables it is given
    lists = re.findall(r'(?:compgen\s+-W\s+|\b\w+=)"([^"]*)"', text)
    return {word for words in lists for word in words.split() if re.fullmatch(r"--?[A-Za-z][\w-]*", word)}


def zsh_flags(text):  # _arguments specs: '--flag[...' and {-f,--flag}'[...'
    flags = set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)\[", text))
    for group in re.findall(r"\{(-[^}{\s]*)\}'\[", text):
        flags.update(group.split(","))
    return flags


def man_flags(text):
    """(flags mentioned anywhere, flags that head an entry of OPTIONS)."""
    plain = re.sub(r"\\f[BIRP]", " ", text.replace("\\-", "-"))  # \fB--config: font changes apart
    mentioned = set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", plain))
    headed, in_options, after_tp = set(), False, False
    for line in plain.splitlines():
        if line.startswith(".SH"):
            in_options = line.split(None, 1)[1:] == ["OPTIONS"]
        elif in_options and after_tp and line.startswith(".B"):
            headed.update(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", line))
        after_tp = line.startswith(".TP")
    return mentioned, headed


def report(what, missing, extra):
    ok = True
    if missing:
        print(f"FAIL: {what} lacks {' '.join(sorted(missing))} (in {tool} --help)", file=sys.stderr)
        ok = False
    if extra:
        print(f"FAIL: {what} has {' '.join(sorted(extra))}, which {tool} --help does not show", file=sys.stderr)
        ok = False
    return ok


flags = help_flags()
ok = report(bash_path, flags - bash_flags(open(bash_path).read()), bash_flags(open(bash_path).read()) - flags)
ok &= report(zsh_path, flags - zsh_flags(open(zsh_path).read()), zsh_flags(open(zsh_path).read()) - flags)
mentioned, headed = man_flags(open(man_path).read())
ok &= report(man_path, flags - mentioned, headed - flags)
if any(line.rstrip().endswith("\\\\") for line in open(zsh_path)):
    print(f"FAIL: {zsh_path}: a line ends in an escaped backslash, which ends the _arguments call", file=sys.stderr)
    ok = False
sys.exit(0 if ok else 1)
PY
done
[ "$status" = 0 ] && echo ok
exit "$status"
