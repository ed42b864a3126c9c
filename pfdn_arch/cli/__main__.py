import sys

try:
    from .main import console
except KeyboardInterrupt:  # Ctrl-C while the interpreter was still loading the command line
    print('interrupted before it started; nothing was done', file=sys.stderr)
    sys.exit(130)

console()
