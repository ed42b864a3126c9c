"""``python -m basicsr.train`` and ``python -m basicsr.test`` (``torchrun ... -m basicsr.train`` too) run as
``basicsr train`` and ``basicsr test``: the same checks, the same one-line errors, and ``experiments/`` and
``results/`` under the working directory. BasicSR's own ``__main__`` block would put them beside the installed
package (``site-packages/experiments``), and its script defines its own ``load_resume_state``, which needs CUDA.

``python -m`` runs a module by asking its loader for the module's code (``runpy``). ``basicsr/__init__.py`` imports
``basicsr.train`` and ``basicsr.test`` itself, so by the time ``runpy`` asks, both are imported; their loaders are
wrapped here so that ``get_code`` (what ``runpy`` executes as ``__main__``) hands control to the command line, while
importing them (``exec_module``) stays BasicSR's own. A spawned worker re-runs the main module as ``__mp_main__``:
there it only defines BasicSR's names.
"""
import sys
import warnings

COMMANDS = {'basicsr.train': 'train', 'basicsr.test': 'test'}
MAIN = ('from {module} import *  # the names BasicSR\'s script defines, for spawned workers\n'
        'from pfdn_arch.plugin.entry import run_as_main\n'
        'run_as_main({command!r}, __name__)\n')


def take_over_main():
    for module_name, command in COMMANDS.items():
        module = sys.modules.get(module_name)
        spec = getattr(module, '__spec__', None)
        if spec is None or spec.loader is None or isinstance(spec.loader, _RunAsCommand):
            continue
        spec.loader = module.__loader__ = _RunAsCommand(spec.loader, module_name, command)
    # runpy warns that basicsr.train was imported before it ran as __main__; here that is by design
    warnings.filterwarnings('ignore', message=r"'basicsr\.(train|test)' found in sys\.modules", category=RuntimeWarning)


def run_as_main(command, name):
    if name != '__main__':
        return
    from ..cli.main import main
    sys.exit(main([command] + sys.argv[1:]))


class _RunAsCommand:
    """The module's own loader, except for the code ``runpy`` runs as ``__main__``."""

    def __init__(self, loader, module_name, command):
        self._loader, self._module_name, self._command = loader, module_name, command

    def get_code(self, fullname):
        return compile(MAIN.format(module=self._module_name, command=self._command),
                       f'<python -m {self._module_name}: pfdn_arch.plugin.entry>', 'exec')

    def __getattr__(self, name):  # exec_module, create_module, get_source, ...: BasicSR's own
        return getattr(self._loader, name)
