"""``basicsr test``: check the yml, then BasicSR's stock ``test_pipeline`` (its flags pass through)."""
from . import add_command
from .train import add_basicsr_flags, basicsr_argv


def add_parser(sub):
    p = add_command(sub, 'test', "test with BasicSR's test_pipeline (Set5 / Urban100 tables)",
                    "Check the options file, then run BasicSR's own test_pipeline with the working directory as root; "
                    'metrics go to results/<name>/ (a Markdown table in results.md), e.g. basicsr test -opt '
                    'options/test_pfdn_x4.yml.')
    add_basicsr_flags(p)
    p.set_defaults(func=run)
    return p


def run(args):
    from .pipelines import run_pipeline
    run_pipeline(basicsr_argv(args), 'basicsr test', is_train=False)
