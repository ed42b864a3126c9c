"""``basicsr export`` as a list of steps: each format one small object (its files, what it needs installed, how it
writes them and how what it wrote is checked), and one loop (``export``) that does the order, the requirements
before anything is written, the resume of a stopped export (``unfinished``) and the printing.

Formats, in the order they are written:

=============  =====================================  ==========================================================
format         files (stem: ``--name``, else below)   checked
=============  =====================================  ==========================================================
pth            ``pfdn_x<s>.pth`` (released layout)    loads back, and in spandrel where it is installed
safetensors    ``pfdn_x<s>.safetensors``              loads back, and in spandrel where it is installed
onnx           ``pfdn_x<s>.onnx`` (dynamic sizes)     onnxruntime against PyTorch, before it takes its name
int8           ``pfdn_x<s>_int8.xml/.bin/.onnx/.json``  the PSNR each int8 model loses, in its ``.json``
ncnn           ``<s>x-PFDN.param/.bin``               what the apps' NCNN builds can read, before writing
=============  =====================================  ==========================================================
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple

from ... import errors
from ...errors import NotInstalled, OptionsError, OutputExists, PFDNError
from ...files.locks import owned
from ...files.paths import output_dir
from .unfinished import UnfinishedExport

if TYPE_CHECKING:  # torch is imported where a format writes (the command line lists the formats without it)
    import torch

    from ...archs.spec import SRNetwork

LOCK = 'pfdn-export'  # the folder's lock (files.locks: .pfdn-export.pfdn-lock in it)
ONNX_TOLERANCE = 1e-4  # the most an ONNX export may differ from PyTorch in onnxruntime (float32 on the CPU)


@dataclass
class Job:
    """What every format is given: the deployed network and the settings of one export.

    Args:
        net: the deployed network (eval mode, on the CPU).
        out: the output folder.
        name: ``--name``: the file stem of every format, or None (each format's own default).
        opset: the ONNX opset.
        calibration: int8: a folder of LR images to calibrate on, or None (the built-in photos).
        qat: int8: the quantizers of a checkpoint of quantization-aware fine-tuning, or None.
        ncnn_fp32: NCNN: fp32 weights instead of fp16.
        note: where notes go (the command line: stderr).
    """
    net: 'SRNetwork'
    out: str
    name: Optional[str] = None
    opset: int = 17
    calibration: Optional[str] = None
    qat: Optional[dict] = None
    ncnn_fp32: bool = False
    note: Callable[[str], None] = print

    @property
    def scale(self) -> int:
        return int(self.net.upscale)

    def stem(self) -> str:
        """The file stem of the formats named after the network (``pfdn_x4``)."""
        return self.name or f'pfdn_x{self.scale}'

    def state_dict(self) -> Dict[str, 'torch.Tensor']:
        return {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}


class Format:
    """One format: ``name`` (what ``--formats`` calls it), ``what`` (for the help), ``needs`` ((module, extra) that
    must be installed), ``files`` (the paths it writes) and ``write`` (writes and checks them at ``staged``, the same
    names in the export's staging folder, from where they take their names; returns the lines to print, which name
    them by the paths they will have, ``shown``)."""
    name = ''
    what = ''
    needs: Tuple[Tuple[str, str], ...] = ()

    def missing(self) -> Optional[NotInstalled]:
        """What is not installed that writing this format needs, or None."""
        for module, extra in self.needs:
            if not errors.installed(module):
                return NotInstalled(module, f'{self.name} export (or leave {self.name} out of --formats)', extra)
        return None

    def files(self, job: Job) -> List[str]:
        raise NotImplementedError

    def write(self, job: Job, staged: List[str], shown: List[str]) -> List[str]:
        raise NotImplementedError


def _loads_in_spandrel(path: str, state_dict: Dict[str, 'torch.Tensor']) -> str:
    """The check both weight files get: what spandrel (chaiNNer's and ComfyUI's loader) makes of the state dict read
    back from the file (``path``: where it is being written; spandrel chooses its reader by the final name)."""
    if not errors.installed('spandrel'):
        return 'spandrel not installed, not checked in it'
    import spandrel

    from .spandrel_arch import register
    register()
    model = spandrel.ModelLoader().load_from_state_dict(state_dict)
    if model.architecture.id != 'PFDN':
        raise PFDNError(f'spandrel takes it for {model.architecture.id}, not PFDN; it was not written', path)
    return "loads in spandrel (chaiNNer/ComfyUI) after pfdn_arch.deploy.export.spandrel_arch.register()"


def _same_tensors(written: Dict[str, 'torch.Tensor'], wanted: Dict[str, 'torch.Tensor'], path: str,
                  ordered: bool) -> None:
    import torch

    keys = (lambda sd: list(sd)) if ordered else (lambda sd: sorted(sd))
    if keys(written) != keys(wanted) or any(not torch.equal(written[k], wanted[k]) for k in wanted):
        raise PFDNError('what was written does not read back as the network; it was not written', path)


class WeightsFile(Format):
    """A file of the deployed weights (``suffix``): written (``save``), read back (``load``) and compared with the
    network's tensors, and loaded in spandrel, before it takes its name."""
    suffix = ''
    layout = ''  # what the line says of its keys
    ordered = False  # whether the file keeps the keys' order (the released layout does; safetensors sorts them)

    def files(self, job: Job) -> List[str]:
        return [os.path.join(job.out, job.stem() + self.suffix)]

    def save(self, state_dict: Dict[str, 'torch.Tensor'], path: str, job: Job) -> None:
        raise NotImplementedError

    def load(self, path: str) -> Dict[str, 'torch.Tensor']:
        raise NotImplementedError

    def write(self, job: Job, staged: List[str], shown: List[str]) -> List[str]:
        sd = job.state_dict()
        self.save(sd, staged[0], job)
        back = self.load(staged[0])  # read back and checked before it takes its name
        _same_tensors(back, sd, shown[0], self.ordered)
        check = _loads_in_spandrel(shown[0], back)
        return [f'{shown[0]}: {len(sd)} tensors{self.layout}; {check}']


class Pth(WeightsFile):
    name, what, suffix, layout, ordered = 'pth', '.pth in the released key layout', '.pth', ', released key layout', True

    def save(self, state_dict: Dict[str, 'torch.Tensor'], path: str, job: Job) -> None:
        from . import formats
        formats.save_pth(state_dict, path)

    def load(self, path: str) -> Dict[str, 'torch.Tensor']:
        import torch
        return torch.load(path, map_location='cpu', weights_only=True)


class Safetensors(WeightsFile):
    name, what, suffix = 'safetensors', '.safetensors', '.safetensors'
    needs = (('safetensors', 'export'),)

    def save(self, state_dict: Dict[str, 'torch.Tensor'], path: str, job: Job) -> None:
        from . import formats
        formats.save_safetensors(state_dict, path, {'architecture': 'PFDN', 'scale': str(job.scale)})

    def load(self, path: str) -> Dict[str, 'torch.Tensor']:
        from safetensors.torch import load_file
        return load_file(path)


class Onnx(Format):
    name, what = 'onnx', 'ONNX, dynamic batch/height/width'
    needs = (('onnx', 'export'),)

    def files(self, job: Job) -> List[str]:
        return [os.path.join(job.out, job.stem() + '.onnx')]

    def write(self, job: Job, staged: List[str], shown: List[str]) -> List[str]:
        from . import formats

        formats.export_onnx(job.net, staged[0], job.opset)
        diff = formats.check_onnx(job.net, staged[0])  # checked before it takes its name
        if diff is not None and not diff <= ONNX_TOLERANCE:
            raise PFDNError(f'the ONNX export disagrees with PyTorch in onnxruntime (max |diff| {diff:.1e}); it was '
                            'not written', shown[0])
        check = ("onnxruntime not installed, not checked (pip install 'pfdn[export]')" if diff is None
                 else f'onnxruntime vs PyTorch max |diff| {diff:.1e} on 3 sizes')
        return [f'{shown[0]}: dynamic batch/height/width, opset {job.opset}; {check}']


class Int8(Format):
    name, what = 'int8', 'int8 (NNCF): OpenVINO IR, QDQ ONNX and a record of what they lose'
    needs = (('nncf', 'int8'), ('openvino', 'int8'), ('onnx', 'int8'))
    SUFFIXES = ('.xml', '.bin', '.onnx', '.json')

    def files(self, job: Job) -> List[str]:
        return [os.path.join(job.out, f'{job.stem()}_int8{suffix}') for suffix in self.SUFFIXES]

    def write(self, job: Job, staged: List[str], shown: List[str]) -> List[str]:
        from .int8.ptq import TARGET_LOSS, write_int8

        if job.qat is not None and job.calibration:
            job.note('note: --calibration is not used: this checkpoint holds the ranges quantization-aware '
                     'fine-tuning trained')
        record, files = write_int8(job.net, os.path.dirname(staged[0]), job.stem(), job.calibration, qat=job.qat)
        final = {os.path.basename(p): p for p in shown}
        lines = [f"{final[os.path.basename(path)]}: int8 ({kind}); {record['psnr_loss_db'][kind]:+.3f} dB against "
                 'fp32 on the check images' for kind, path in files.items()]
        worst = min(record['psnr_loss_db'].values())
        if -worst > TARGET_LOSS:
            job.note(f'note: this int8 model loses {-worst:.2f} dB (more than {TARGET_LOSS} dB) on the check images; '
                     f'{job.stem()}_int8.json records it and basicsr infer says so at every use')
        return lines


class Ncnn(Format):
    name, what = 'ncnn', 'NCNN (.param/.bin) for Upscayl, chaiNNer and other NCNN apps'
    needs = (('pnnx', 'ncnn'),)

    def files(self, job: Job) -> List[str]:
        from .ncnn import default_name

        stem = job.name or default_name(job.scale)
        return [os.path.join(job.out, stem + suffix) for suffix in ('.param', '.bin')]

    def write(self, job: Job, staged: List[str], shown: List[str]) -> List[str]:
        from .ncnn import export_ncnn

        export_ncnn(job.net, os.path.dirname(staged[0]), os.path.basename(staged[0])[:-len('.param')],
                    fp16=not job.ncnn_fp32)
        return [f"{shown[0]} (+ .bin): NCNN for Upscayl and other NCNN apps, {'fp32' if job.ncnn_fp32 else 'fp16'} "
                "weights, blobs data/output, any input size; copy both into Upscayl's models folder"]


# every format, in the order they are written
FORMATS: Dict[str, Format] = {f.name: f for f in (Pth(), Safetensors(), Onnx(), Int8(), Ncnn())}
DEFAULT_FORMATS = ('pth', 'safetensors', 'onnx')


def export(weights: str, out: str, chosen: Sequence[str], *, name: Optional[str] = None, opset: int = 17,
           calibration: Optional[str] = None, ncnn_fp32: bool = False, force: bool = False,
           say: Callable[[str], None] = print, note: Callable[[str], None] = print) -> List[str]:
    """Write the formats ``chosen`` of the checkpoint ``weights`` into ``out``, in ``FORMATS``' order (``Job`` says
    what the other arguments are). Before anything is written: every requirement, the output folder, no file that
    is not this export's (``force`` replaces them); one export at a time holds the folder. A format an earlier run of
    this same export wrote, whose files are still what it wrote, is kept (``unfinished``). Returns the files of the
    formats written or kept."""
    steps = [FORMATS[name] for name in FORMATS if name in chosen]
    for step in steps:  # before anything is loaded or written
        problem = step.missing()
        if problem is not None:
            raise problem
    if ncnn_fp32 and 'ncnn' not in chosen:
        raise OptionsError('is for the NCNN files; add ncnn to --formats', 'ncnn_fp32')
    output_dir(out)
    from ...files.checkpoints import build_from_checkpoint, qat_state

    net, _ = build_from_checkpoint(weights)
    qat = qat_state(weights)
    if qat is not None and 'int8' not in chosen:
        note('note: this checkpoint also holds int8 quantizers from quantization-aware fine-tuning; --formats int8 '
             'exports them (the files here hold its float weights)')
    job = Job((net if net.deploy else net.reparameterize()).eval(), out, name, opset, calibration, qat, ncnn_fp32,
              note)
    files = {step.name: step.files(job) for step in steps}
    if 'ncnn' in files:
        _note_upscayls_scale(files['ncnn'][0], job)
    every = [path for paths in files.values() for path in paths]
    same = [p for p in every if os.path.exists(p) and os.path.samefile(p, weights)]
    if same:
        raise OptionsError(f'{same[0]} is the --weights file itself; choose another --out or --name', 'out')
    settings = {'formats': sorted(files), 'opset': job.opset, 'calibration': job.calibration,
                'ncnn_fp32': job.ncnn_fp32, 'files': sorted(os.path.basename(p) for p in every)}
    with owned(job.out, LOCK, job.out, 'wait for that export to end, or choose another --out'):  # one at a time
        unfinished = UnfinishedExport(job.out, job.stem(), weights, settings)
        theirs = unfinished.theirs(every)
        if theirs and not force:
            raise OutputExists(theirs[0], 'exists and is not what this export wrote')
        for step in steps:
            paths = files[step.name]
            if not force and unfinished.finished(step.name, paths):
                say(f"{', '.join(paths)}: kept, written by an earlier run of this export")
                continue
            staged = unfinished.staged(paths)
            for line in step.write(job, staged, paths):
                say(line)
            unfinished.publish(step.name, staged, paths)
        unfinished.complete()
    return every


def _note_upscayls_scale(param: str, job: Job) -> None:
    from .ncnn import scale_from_name

    stem = os.path.basename(param)[:-len('.param')]
    if scale_from_name(stem) != job.scale:
        job.note(f'note: Upscayl reads the scale from the file name, and would take {stem} for '
                 f'x{scale_from_name(stem)}, not x{job.scale}: put {job.scale}x in --name')
