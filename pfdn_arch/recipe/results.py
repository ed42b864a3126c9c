"""What a BasicSR run measured, recorded for any model: the validation history of a training run
(``experiments/<name>/validation.json``, what the schedule's PSNR plot is drawn from), the metrics table of a
test run (``results/<name>/results.md``), and with ``val.save_comparison: true`` captioned HR | bicubic | SR crops
of every validation image (``visualization/<dataset>/``).

BasicSR's pipelines build the model themselves and keep each validation's averaged metrics in
``model.metric_results``; ``recording()`` wraps the model that ``build_model`` returns for the length of one pipeline
run so that each ``validation()`` is written down after it returns. Models that keep no ``metric_results`` of plain
numbers (e.g. BasicSR's video models, which keep them per clip) record nothing, and the command says so instead of
pointing at a table that is not there.
"""
import json
import os
from contextlib import contextmanager

import basicsr.test
import basicsr.train

from ..files.atomic import write_text
from ..files.experiment import Experiment, read_history
from ..files.images import write_image
from .protocol import to_image
from .report import comparison_strip

TABLE = 'results.md'


class Recorder:
    """Where one run's measurements go; ``written`` lists the files it wrote."""

    def __init__(self, opt):
        self.opt = opt
        self.written = []

    def record(self, model, dataloader, current_iter):
        metrics = getattr(model, 'metric_results', None)
        if not isinstance(metrics, dict) or not metrics or self.opt.get('rank', 0) != 0:
            return
        try:
            values = {k: float(v) for k, v in metrics.items()}
        except (TypeError, ValueError):
            return  # per-clip tensors or other structures: no single row to write
        dataset = dataloader.dataset.opt.get('name', 'val')
        if self.opt.get('is_train'):
            total = self.opt['train']['total_iter']
            self._append_history(dict({'iter': min(int(current_iter), total), 'dataset': dataset}, **values))
        else:
            self._append_row(dataset, values)

    def _append_history(self, entry):
        path = Experiment.at(self.opt['path']['experiments_root']).history_file
        history = read_history(path)
        history.append(entry)
        write_text(path, json.dumps(history, indent=1))
        self._wrote(path)

    def _append_row(self, dataset, values):
        """This dataset's metrics as a row of ``results.md`` beside BasicSR's test log (rewritten whole, atomically)."""
        path = os.path.join(self.opt['path']['log'], TABLE)
        names = list(values)
        if os.path.exists(path):
            with open(path) as f:
                text = f.read()
        else:
            text = (f"# {self.opt['name']} (x{self.opt.get('scale', '?')})\n\n| dataset | "
                    + ' | '.join(m.upper() for m in names) + ' |\n|' + ' --- |' * (len(names) + 1) + '\n')
        text += f'| {dataset} | ' + ' | '.join(f'{values[m]:.4f}' for m in names) + ' |\n'
        write_text(path, text)
        self._wrote(path)

    def save_comparison(self, model, dataset, lq_path):
        """HR | bicubic | SR crops of the image the model just ran (``val.save_comparison: true``)."""
        if not (self.opt.get('val') or {}).get('save_comparison') or self.opt.get('rank', 0) != 0:
            return
        if getattr(model, 'gt', None) is None or not lq_path:
            return

        name = os.path.splitext(os.path.basename(lq_path))[0]
        strip = comparison_strip(to_image(model.gt), to_image(model.lq), to_image(model.output), self.opt['scale'],
                                 name=os.path.basename(lq_path))
        folder = os.path.join(self.opt['path']['visualization'], dataset)
        os.makedirs(folder, exist_ok=True)
        write_image(os.path.join(folder, f'{name}_HR_bicubic_PFDN.png'), strip)

    def _wrote(self, path):
        if path not in self.written:
            self.written.append(path)


@contextmanager
def recording(is_train):
    """While the block runs, every model BasicSR's train (or test) pipeline builds records its validations.
    Yields a list that receives the run's Recorder."""
    module = basicsr.train if is_train else basicsr.test
    build_model = module.build_model
    recorders = []

    def build_recording_model(opt):
        model = build_model(opt)
        recorder = Recorder(opt)
        recorders.append(recorder)
        validation, feed_data, test = model.validation, model.feed_data, model.test
        seen = {'dataset': 'val', 'lq_path': None}

        def recorded_validation(dataloader, current_iter, *args, **kwargs):
            seen['dataset'] = dataloader.dataset.opt.get('name', 'val')
            if opt.get('is_train') and isinstance(current_iter, int):
                # BasicSR's final validation passes one past the last iteration (its loop counter): say the last
                current_iter = min(current_iter, opt['train']['total_iter'])
            out = validation(dataloader, current_iter, *args, **kwargs)
            recorder.record(model, dataloader, current_iter)
            return out

        def fed(data, *args, **kwargs):
            paths = data.get('lq_path') if isinstance(data, dict) else None
            seen['lq_path'] = paths[0] if isinstance(paths, (list, tuple)) and paths else paths
            return feed_data(data, *args, **kwargs)

        def tested(*args, **kwargs):  # BasicSR's models call test() for validation images only
            out = test(*args, **kwargs)
            recorder.save_comparison(model, seen['dataset'], seen['lq_path'])
            return out

        model.validation, model.feed_data, model.test = recorded_validation, fed, tested
        return model

    module.build_model = build_recording_model
    try:
        yield recorders
    finally:
        module.build_model = build_model
