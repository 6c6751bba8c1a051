# ClaudeMatrix hook entry: `<venv python> -I -S hooks/run.py <event>` (see hooks.json).
# Tiny on purpose (a script is compiled on every run; modules come from cached bytecode):
# put the plugin's src/ first on sys.path and hand over to claudematrix.hooks. Fails open.
# It leaves through _exit once its output is flushed: interpreter teardown (module and GC
# finalisation) would cost several milliseconds more than the hook itself after a store read.
import sys

try:
    sys.path.insert(0, (__file__.rpartition("/")[0] or ".") + "/../src")
    from claudematrix.hooks import main
except BaseException:
    sys.exit(0)
code = main()
try:
    sys.stdout.flush()
    sys.stderr.flush()
except BaseException:
    code = 0
try:
    from posix import _exit
except ImportError:
    from os import _exit
_exit(code)
