#!/usr/bin/python3
"""README's commands, run as a user would type them, so README cannot drift from the code.

    readme_commands_test.py run  --source DIR --build DIR [--timeout S] [--list]
    readme_commands_test.py docs --source DIR --weftrun PATH

`run` takes every fenced ```sh block of README.md and runs it with bash (-e, -o pipefail) from
a scratch copy of the repository (its top-level entries linked; build/ holding links to the
programs of the build under test, and nothing of its CMake state), so the commands find
build/... as in a checkout and the files they write (run.json, ...) land in the scratch
directory. A block is skipped when it says why:

    # needs: REQUIREMENT (a comment)   run only where it is met: non-root (as root: run as
                                        nobody with setpriv), torchrun, python3-torch, gpu;
                                        anything else (cluster, ...) never
    # not run by the README test: <reason>          too long, or the suite itself

Long runs are shortened, never otherwise changed: `--steps N` becomes `--steps 2`, message
sizes above 1 MiB are dropped from `--sizes`, and a fixed MASTER_PORT becomes a free one (other
jobs may hold 29500). Each block has a timeout and runs in a session of its own, killed at the
end, so nothing it started outlives it. `--list` prints what would run, shortened, and exits.

`docs` checks README's links (each relative link names a file inside the repository) and its
environment table (every variable `weftrun --help-env` prints, with its default, and no other).
"""

import argparse
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
NEEDS = re.compile(r"^\s*#\s*needs:\s*(.+?)\s*$", re.M)
NOT_RUN = re.compile(r"^\s*#\s*not run by the README test:\s*(.+?)\s*$", re.M)
SIZE = re.compile(r"^(\d+)([KMG]?)$")


def sh_blocks(readme_text):
    """(line number, text) of every ```sh block, its indentation removed."""
    blocks, lines, i = [], readme_text.split("\n"), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, lang, start = m.group(1), m.group(2), i + 1
        i += 1
        body = []
        while i < len(lines) and not FENCE.match(lines[i]):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        i += 1  # the closing fence
        if lang == "sh":
            blocks.append((start, "\n".join(body)))
    return blocks


def as_non_root():
    """The command prefix that runs a block as a user other than root: none when not root,
    setpriv to nobody as root; None when there is no way."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return None
    if not shutil.which("setpriv"):
        return None
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def unmet(need):
    """Why `need` (the text after "# needs:") is not met here, or None when it is."""
    key = need.split()[0].rstrip(",")
    if key == "non-root":
        return None if as_non_root() is not None else "runs as root, and no setpriv or nobody"
    if key == "torchrun":
        if not shutil.which("torchrun"):
            return "no torchrun on PATH"
        # Debian bookworm's torchrun (PyTorch 1.13 on Python 3.11) fails before starting any
        # worker (its redirect flags no longer parse): a block for it cannot run here.
        ok = subprocess.run(["torchrun", "--standalone", "--nproc_per_node", "1", "--no_python",
                             "true"], capture_output=True, timeout=120).returncode == 0
        return None if ok else "torchrun on PATH cannot start a worker (PyTorch 1.13 on Python 3.11)"
    if key == "python3-torch":
        ok = subprocess.run(["/usr/bin/python3", "-c", "import torch"],
                            capture_output=True).returncode == 0
        return None if ok else "no torch for /usr/bin/python3"
    if key == "gpu":
        ok = shutil.which("nvidia-smi") and subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True).returncode == 0
        return None if ok else "no GPU visible"
    return "not checked by this test"


def size_bytes(token):
    m = SIZE.match(token)
    if not m:
        return None
    return int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2)]


def shorten_sizes(m):
    sizes = m.group(1).split(",")
    kept = [s for s in sizes if size_bytes(s) is not None and size_bytes(s) <= 1 << 20]
    return "--sizes " + ",".join(kept or ["1M"])


def free_port():
    # MASTER_PORT and MASTER_PORT + 1 (weft's store) must both be free.
    while True:
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port


def shorten(block):
    """The block as the test runs it, and the list of what was changed."""
    changes = []

    def sub(pattern, repl, what, text):
        new, n = re.subn(pattern, repl, text)
        if n and new != text:
            changes.append(what)
        return new

    text = sub(r"--steps \d+", "--steps 2", "--steps 2", block)
    text = sub(r"--sizes (\S+)", shorten_sizes, "sizes up to 1M", text)
    if "MASTER_PORT=29500" in text:
        text = sub(r"MASTER_PORT=29500", "MASTER_PORT=%d" % free_port(), "a free MASTER_PORT",
                   text)
    return text, changes


def link_programs(build, into):
    """`into` gets a link to each program of `build` (build/launcher/weftrun, ...), and nothing
    else: a block that configured or built there (cmake, make) would find no cache to rewrite in
    the build under test."""
    for top in sorted(os.listdir(build)):
        path = os.path.join(build, top)
        entries = [top] if os.path.isfile(path) else [] if top == "CMakeFiles" else [
            os.path.join(top, name) for name in sorted(os.listdir(path))]
        for rel in entries:
            full = os.path.join(build, rel)
            if os.path.isfile(full) and os.access(full, os.X_OK):
                os.makedirs(os.path.dirname(os.path.join(into, rel)), exist_ok=True)
                os.symlink(os.path.abspath(full), os.path.join(into, rel))


def scratch_copy(source, build):
    root = tempfile.mkdtemp(prefix="weft-readme-")
    for name in os.listdir(source):
        if name.startswith("build") or name == ".git":
            continue
        os.symlink(os.path.join(source, name), os.path.join(root, name))
    link_programs(build, os.path.join(root, "build"))
    # README's "training your own text" names my.txt: README's own text stands in for it.
    with open(os.path.join(root, "my.txt"), "w") as out:
        for doc in ("README.md", "docs/architecture.md"):
            with open(os.path.join(source, doc)) as f:
                out.write(f.read())
    # Blocks that need a user other than root may run as nobody: they must reach the scratch
    # copy, and Open MPI's session directory.
    os.chmod(root, 0o755)
    os.mkdir(os.path.join(root, "ompi-session"))
    os.chmod(os.path.join(root, "ompi-session"), 0o1777)
    return root


def run_block(text, cwd, timeout, prefix):
    env = dict(os.environ)
    if prefix:
        env["HOME"] = os.path.join(cwd, "ompi-session")
    # Open MPI's session directory of its own: concurrent mpiruns in one /tmp race (see
    # tests/multiproc/mpi_job.cc).
    env["OMPI_MCA_orte_tmpdir_base"] = os.path.join(cwd, "ompi-session")
    proc = subprocess.Popen(prefix + ["bash", "-e", "-o", "pipefail", "-c", text], cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        rc = None
    # Whatever the block left behind in its session (a background rank) goes too.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return rc, out


def command_run(args):
    with open(os.path.join(args.source, "README.md")) as f:
        blocks = sh_blocks(f.read())
    if not blocks:
        print("README.md has no ```sh block: nothing to check")
        return 1
    plan = []
    for line, block in blocks:
        needs, not_run = NEEDS.search(block), NOT_RUN.search(block)
        why_not = unmet(needs.group(1)) if needs else None
        if why_not:
            plan.append((line, block, None, "needs %s: %s" % (needs.group(1), why_not), []))
        elif not_run:
            plan.append((line, block, None, not_run.group(1), []))
        else:
            text, changes = shorten(block)
            prefix = as_non_root() if needs and needs.group(1).startswith("non-root") else []
            if prefix:
                changes.append("as nobody")
            plan.append((line, text, changes, None, prefix))

    root = None if args.list else scratch_copy(args.source, args.build)
    failed, ran = [], 0
    try:
        for line, text, changes, skip, prefix in plan:
            if skip:
                first = next((l for l in text.strip().split("\n") if not l.startswith("#")), "")
                print("SKIP README.md:%d (%s): %s" % (line, skip, first))
                continue
            note = " (shortened: %s)" % ", ".join(changes) if changes else ""
            print("RUN  README.md:%d%s:\n%s" % (line, note, "\n".join(
                "    " + l for l in text.strip().split("\n"))))
            if args.list:
                continue
            if prefix and subprocess.run(prefix + ["test", "-x", "build/launcher/weftrun"],
                                         cwd=root).returncode != 0:
                print("  SKIP: nobody cannot reach the build's programs from here")
                continue
            ran += 1
            start = time.monotonic()
            rc, out = run_block(text, root, args.timeout, prefix)
            took = time.monotonic() - start
            if rc == 0:
                print("  ok in %.1f s" % took)
                continue
            print(out.rstrip())
            why = "timed out after %d s" % args.timeout if rc is None else "exited %d" % rc
            print("  FAILED: README.md:%d %s" % (line, why))
            failed.append(line)
    finally:
        if root:
            shutil.rmtree(root, ignore_errors=True)
    if args.list:
        return 0
    print("%d blocks run, %d skipped, %d failed" % (ran, len(plan) - ran, len(failed)))
    if failed:
        print("README commands that fail as written: lines " + ", ".join(map(str, failed)))
        return 1
    return 0


def command_docs(args):
    with open(os.path.join(args.source, "README.md")) as f:
        readme = f.read()
    problems = []
    source = os.path.realpath(args.source)
    for target in re.findall(r"\]\(([^)\s]+)\)", readme):
        if re.match(r"[a-z]+://|#|mailto:", target):
            continue
        path = os.path.realpath(os.path.join(source, target.split("#")[0]))
        if not path.startswith(source + os.sep) or not os.path.exists(path):
            problems.append("link (%s) names no file inside the repository: a user who clones "
                            "it does not have it" % target)

    help_env = subprocess.run([args.weftrun, "--help-env"], capture_output=True, text=True,
                              check=True).stdout
    declared, columns = {}, None
    for row in help_env.split("\n"):
        if re.match(r"\s+NAME\s+DEFAULT\s+MEANING", row):
            columns = (row.index("DEFAULT"), row.index("MEANING"))
        m = re.match(r"  (WEFT_\w+) ", row)
        if m and columns:
            declared[m.group(1)] = row[columns[0]:columns[1]].strip()
    table = dict(re.findall(r"^\| `(WEFT_\w+)` \| ([^|]*?) \|", readme, re.M))
    for name, default in declared.items():
        if name not in table:
            problems.append("%s (runtime/env.cc) is missing from README's environment table"
                            % name)
        elif table[name] != ("`%s`" % default if default else "—"):
            problems.append("README gives %s the default %s; weftrun --help-env says '%s'"
                            % (name, table[name], default))
    for name in table:
        if name not in declared:
            problems.append("README's environment table lists %s, which runtime/env.cc does "
                            "not declare" % name)
    for p in problems:
        print("README.md: " + p)
    if not declared:
        print("weftrun --help-env printed no WEFT_ variable")
        return 1
    print("%d variables checked, %d problems" % (len(declared), len(problems)))
    return 1 if problems else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run README's ```sh blocks")
    run.add_argument("--source", required=True)
    run.add_argument("--build", required=True)
    run.add_argument("--timeout", type=int, default=240, help="seconds per block")
    run.add_argument("--list", action="store_true", help="print the plan only")
    docs = sub.add_parser("docs", help="check README's links and environment table")
    docs.add_argument("--source", required=True)
    docs.add_argument("--weftrun", required=True)
    args = parser.parse_args()
    return command_run(args) if args.command == "run" else command_docs(args)


if __name__ == "__main__":
    sys.exit(main())
