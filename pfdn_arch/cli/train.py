"""``basicsr train``: check the yml, then BasicSR's stock ``train_pipeline`` (its flags pass through)."""
from . import add_command


def add_parser(sub):
    p = add_command(sub, 'train', "train with BasicSR's train_pipeline",
                    "Check the options file (files, datasets, devices), then run BasicSR's own train_pipeline with "
                    'the working directory as root (experiments/<name>/). Multi-GPU: torchrun --nproc_per_node=N -m '
                    'pfdn_arch.cli train -opt X --launcher pytorch.',
                    on_interrupt='rerun it with --auto_resume to continue from the last saved training state')
    add_basicsr_flags(p)
    p.set_defaults(func=run)
    return p


def add_basicsr_flags(p):
    """BasicSR's own command-line flags (basicsr/utils/options.py), documented here and passed through."""
    p.add_argument('-opt', required=True, metavar='OPTIONS.yml', help='the options file (e.g. options/'
                   'train_pfdn_x4.yml)')
    p.add_argument('--launcher', choices=('none', 'pytorch', 'slurm'), default='none',
                   help="distributed launcher ('pytorch' under torchrun)")
    p.add_argument('--auto_resume', action='store_true',
                   help='resume from the newest loadable training state of experiments/<name>/')
    p.add_argument('--debug', action='store_true', help="BasicSR's debug mode (a debug_ name, frequent logs)")
    p.add_argument('--local_rank', '--local-rank', type=int, default=0, help='set by the launcher')
    p.add_argument('--force_yml', nargs='+', metavar='KEY:SUB=VALUE', default=None,
                   help='override options without editing the file, e.g. train:total_iter=1000 (keys must exist)')


def basicsr_argv(args):
    """The flags again, as BasicSR's parse_options reads them from sys.argv."""
    argv = ['-opt', args.opt, '--launcher', args.launcher, '--local_rank', str(args.local_rank)]
    argv += ['--auto_resume'] if getattr(args, 'auto_resume', False) else []
    argv += ['--debug'] if args.debug else []
    return argv + (['--force_yml', *args.force_yml] if args.force_yml else [])


def run(args):
    from .pipelines import run_pipeline
    run_pipeline(basicsr_argv(args), 'basicsr train', is_train=True)
