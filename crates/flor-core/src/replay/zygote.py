# FlorDB's replay worker server (run as `python -c`, it must not import flordb itself).
#
# Replay tasks are short: restoring a checkpoint and running one epoch's own code can
# take less time than `import torch`. This server imports the heavy third-party modules
# the scripts import, once, then forks one child per task: every task is still its own
# process (a crash or Ctrl-C in one costs only that task), but none pays the imports.
#
# Protocol, one JSON object per line. In: {"preload": [script paths]} once, then
# {"id": N, "cwd": DIR, "argv": [script, ...], "env": {...}, "log": PATH}.
# Out: {"ready": [modules imported]}, then {"id": N, "exit": CODE} per task
# (a negative CODE is the signal that ended it).
import ast
import importlib
import importlib.util
import json
import os
import runpy
import select
import signal
import sys
import weakref


# The protocol's own stream: a copy of the original stdout. Fd 1 itself then points at
# stderr, so that whatever a preloaded module prints cannot corrupt the protocol.
PROTOCOL = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)


def send(obj):
    try:
        PROTOCOL.write(json.dumps(obj) + "\n")
        PROTOCOL.flush()
    except (BrokenPipeError, OSError):
        # `flor replay` is gone (it refused its input, or was killed): so is its server.
        stop_children()
        os._exit(0)


# Forked tasks still running: pid -> task id.
children = {}


def stop_children():
    """Ends the running tasks at once (their `flor replay` is gone, so nobody would merge
    what they write): SIGKILL, then reaps them."""
    for pid in list(children):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    while children:
        try:
            pid, _ = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        children.pop(pid, None)


def third_party_imports(path):
    try:
        with open(path) as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return []
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    here = os.path.dirname(os.path.abspath(path))
    out = []
    for name in names:
        top = name.split(".")[0]
        if top in ("flordb", "flor", "__future__", "__main__") or name in out:
            continue
        # The project's own modules are imported fresh by each task, from its version.
        if os.path.exists(os.path.join(here, top + ".py")) or os.path.isdir(os.path.join(here, top)):
            continue
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            continue
        if spec is not None:
            out.append(name)
    return out


# Module -> what it imports lazily on first use, which the server imports once.
LAZY = {"torch": "torch._dynamo"}


def preload(scripts):
    done = []
    for path in scripts:
        for name in third_party_imports(path):
            if name in done:
                continue
            try:
                importlib.import_module(name)
                done.append(name)
            except BaseException:  # noqa: BLE001 - a module that fails here is imported by the task
                pass
    # Lazy imports that every task would pay after the fork: torch's optimizers import
    # torch._dynamo when the first one is made (torch._disable_dynamo), seconds of
    # work that a training script's setup does before its loop.
    for top, lazy in LAZY.items():
        if top in sys.modules and lazy not in sys.modules:
            try:
                importlib.import_module(lazy)
                done.append(lazy)
            except BaseException:  # noqa: BLE001 - then each task imports it, as before
                pass
    return done



def run_task(task):
    """In the forked child: become the script's process, run it, exit with its code."""
    code = 1
    try:
        PROTOCOL.close()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        log = os.open(task["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        # Finalizers of the modules the server imported (torch's library registrations)
        # would run at this task's exit only to be dropped by os._exit: skip them.
        for finalizer in list(weakref.finalize._registry):
            finalizer.atexit = False
        os.chdir(task["cwd"])
        os.environ.update(task.get("env", {}))
        # flordb ends a replay process itself at exit, except here: this function does,
        # with the code it saw (python/flordb/_replay.py FORKED_TASK_ENV).
        os.environ["FLORDB_FORKED_TASK"] = "1"
        script = task["argv"][0]
        sys.argv = list(task["argv"])
        sys.path[0] = os.path.dirname(os.path.abspath(script))
        try:
            runpy.run_path(script, run_name="__main__")
            code = 0
        except SystemExit as e:
            if e.code is None:
                code = 0
            elif isinstance(e.code, int):
                code = e.code
            else:
                print(e.code, file=sys.stderr)
                code = 1
        except KeyboardInterrupt:
            code = 130
        except BaseException:  # noqa: BLE001 - reported as the interpreter would
            sys.excepthook(*sys.exc_info())
            code = 1
        # What the interpreter does at exit: atexit handlers (flordb writes its results).
        import atexit

        atexit._run_exitfuncs()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code & 0xFF if code >= 0 else 1)


def main():
    # Ctrl-C reaches the whole process group: the tasks stop, the server waits for them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    first = json.loads(sys.stdin.readline() or "{}")
    send({"ready": preload(first.get("preload", []))})
    buf = b""
    open_ = True
    while open_ or children:
        readable, _, _ = select.select([0] if open_ else [], [], [], 0.02)
        if readable:
            data = os.read(0, 65536)
            if not data:
                open_ = False
                # `flor replay` closes the pipe once its tasks are done, or dies: tasks
                # still running then have nobody to report to.
                stop_children()
                break
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if not line.strip():
                    continue
                task = json.loads(line)
                PROTOCOL.flush()
                pid = os.fork()
                if pid == 0:
                    run_task(task)
                children[pid] = task["id"]
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            send({"id": children.pop(pid), "exit": os.waitstatus_to_exitcode(status)})
    # The server ran no user code; tearing down torch's modules would take seconds.
    try:
        PROTOCOL.flush()
    except OSError:
        pass
    os._exit(0)


main()
