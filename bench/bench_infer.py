"""Every inference backend and precision available here against the plain forward of the released PFDN.

    python bench/bench_infer.py [--rounds 7] [--threads 2] [--device cpu|cuda] [--sizes 256x256,510x339] [--int8]
                                [--int8-from exported/pfdn_x4_int8.xml]

For LR 256x256 and 339x510 (510 wide), real photo crops (../shared Urban100 img_004; built-in photos without
../shared): the median ms of each backend/precision over alternating rounds (every variant once per round, so
they share the machine's load), the ratio to the plain fp32 forward (on CUDA with TF32 off, as the targets are
stated), max |diff| against it on the same image, and Set5 x4 PSNR (Y, crop 4). --int8 adds OpenVINO int8
and ONNX Runtime int8 (NNCF post-training quantization calibrated on the built-in photos; needs `pip install
'pfdn[int8]'`) with Set5 and Urban100 changes, and `--int8-from exported/pfdn_x4_int8.xml` the int8 files exported
from a quantization-aware fine-tune (options/qat_pfdn_x4.yml). The fp32 line reads `best fp32 backend on <device>:
<name> <ratio>x plain` (the ratio is the larger of the sizes'); the int8 line `int8 on <device>: <runtime> <ratio>x
plain, <ratio>x bf16, Set5 <change> dB, Urban100 <change> dB` (time ratios: below 1 is faster). The line
`default precision on <device>: <backend> <dtype> <ratio>x plain fp32, Set5 <change> dB` is what `basicsr infer`
runs with no flags (``--dtype auto``) for one image at a time.

--workloads (on by default; --no-workloads skips it) measures the work users run, on Urban100's 100 LR images (37
sizes, made from ../shared's HR with the benchmark protocol) and on Set5 + Urban100: the forward passes alone over
the folder per backend x precision pair this device runs natively (one image at a time),
`basicsr infer` on the folder per pair, with no flags (auto backend and precision) and with `--dtype fp32` (wall
time of the command, fresh output folder), the pair the cost model picks against the pair whose `basicsr infer` ran
fastest, and
`basicsr test -opt options/test_pfdn_x4.yml` with auto and with torch. Its line reads `real workloads on <device>:
infer folder <r>x torch fp32, <r>x forward; test <r>x torch` (infer's wall time with no flags over torch fp32's and
over its pair's forward time alone). It also prints the cost figures ``auto`` decides with (each runner's ``costs``
in pfdn_arch/deploy/runtime/): each pair's build time, its seconds per LR megapixel relative to torch fp32 on this
folder, and the cost model's estimate.
"""
import argparse
import os
import statistics
import sys
import time

import cv2
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..'))

import pfdn_arch  # noqa: E402,F401
from pfdn_arch.deploy.runtime.build import build_runner  # noqa: E402
from pfdn_arch.deploy.runtime.choose import BACKENDS, PRECISIONS, RUNNERS, resolve  # noqa: E402

DTYPES = PRECISIONS[1:]  # fp32, fp16, bf16
from pfdn_arch.files.checkpoints import build_from_checkpoint  # noqa: E402
from pfdn_arch.evaluation.protocol import evaluate_folder  # noqa: E402

SHARED = os.path.join(HERE, '..', '..', 'shared')


def real_input(h, w):
    """A real photo crop of h x w (Urban100 img_004 is 1024 x 681: room for 510 x 339)."""
    path = os.path.join(SHARED, 'data', 'benchmark', 'Urban100', 'HR', 'img_004.png')
    if os.path.isfile(path):
        img = cv2.imread(path)
        img = cv2.resize(img, (max(w, img.shape[1] // 2), max(h, img.shape[0] // 2)), interpolation=cv2.INTER_AREA)
    else:
        from pfdn_arch.layout.samples import sample_image
        img = cv2.resize(sample_image('retina.jpg'), (max(w, 706), max(h, 706)), interpolation=cv2.INTER_AREA)
    crop = img[:h, :w, ::-1].astype(np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))[None]


def variants(net, device, threads, int8, int8_from=None):
    """name -> runner for every backend and precision that runs natively here (no fallbacks); with ``int8_from``
    (an int8 .xml ``basicsr export --int8`` wrote, its .onnx beside it) those files as 'qat int8' rows."""
    out = {}
    for backend in BACKENDS[1:]:
        for dtype in DTYPES:
            got = resolve(backend, device, dtype, warn=lambda m: None)
            if got != (backend, torch.device(device), dtype):
                continue
            out[f'{backend} {dtype}'] = build_runner(net, backend, device, dtype, threads=threads)
    if int8:
        out.update(int8_runners(net, threads))
    if int8_from:
        stem = os.path.splitext(int8_from)[0]
        out['openvino qat int8'] = build_runner(stem + '.xml', 'openvino', threads=threads)
        out['onnxruntime qat int8'] = build_runner(stem + '.onnx', 'onnxruntime', threads=threads)
    return out


def int8_runners(net, threads):
    """The int8 models ``basicsr export --int8`` makes (pfdn_arch/deploy/export/int8/ptq.py: NNCF post-training
    quantization, calibrated on the built-in photos): OpenVINO on its IR, ONNX Runtime on its QDQ ONNX."""
    import tempfile

    import openvino as ov

    from pfdn_arch.deploy.export.int8.ptq import calibration_crops, quantize

    folder = tempfile.mkdtemp()
    crops, _ = calibration_crops(None, net.upscale)
    ov_int8, qdq = quantize(net, crops, folder)
    ov.save_model(ov_int8, os.path.join(folder, 'int8.xml'))
    return {'openvino int8': build_runner(os.path.join(folder, 'int8.xml'), 'openvino', threads=threads),
            'onnxruntime int8': build_runner(qdq, 'onnxruntime', threads=threads)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--rounds', type=int, default=7)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--device', default='cpu')
    p.add_argument('--sizes', default='256x256,510x339', help='LR sizes WxH, comma-separated')
    p.add_argument('--weights', default=os.path.join(SHARED, 'weights', 'team08_PFDN.pth'))
    p.add_argument('--set5', default=os.path.join(SHARED, 'data', 'benchmark', 'Set5', 'HR'))
    p.add_argument('--int8', action='store_true', help="also the int8 models of basicsr export --int8 (needs "
                                                       "pip install 'pfdn[int8]')")
    p.add_argument('--int8-from', help='with --int8: also the int8 files of `basicsr export --int8` from a QAT '
                                       'checkpoint (options/qat_pfdn_x4.yml): the .xml (its .onnx beside it); '
                                       'the last line is then theirs')
    p.add_argument('--urban100', default=os.path.join(SHARED, 'data', 'benchmark', 'Urban100', 'HR'))
    p.add_argument('--urban100-lr', help='an Urban100 LR X4 folder made already (where the HR set is not at hand: '
                                         'the test row then runs Set5 alone)')
    p.add_argument('--no-workloads', dest='workloads', action='store_false', help='skip the real workloads')
    p.add_argument('--work', default=os.path.join(HERE, 'out', 'infer_workloads'), help='scratch folder')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    cuda = dev.type == 'cuda'
    net, _ = build_from_checkpoint(a.weights)
    net = net.eval()
    runners = variants(net, a.device, a.threads, a.int8, a.int8_from if a.int8 else None)
    plain = runners['torch fp32']

    def run_plain(x):
        if cuda:  # the stated baseline: fp32 convolutions without TF32
            tf32, torch.backends.cudnn.allow_tf32 = torch.backends.cudnn.allow_tf32, False
            try:
                return plain(x)
            finally:
                torch.backends.cudnn.allow_tf32 = tf32
        return plain(x)

    fns = {'plain (torch fp32)': run_plain, **{k: v for k, v in runners.items() if k != 'torch fp32'}}

    def timed(fn, x):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn(x)
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    rows, t_start = [], time.time()
    for size in a.sizes.split(','):
        w, h = (int(v) for v in size.split('x'))
        x = real_input(h, w).to(dev)
        with torch.inference_mode():
            ref = run_plain(x).float().cpu()
            diffs = {}
            for k, f in fns.items():  # warm-up (compiles, per-shape models) and the difference on a real image
                f(x)
                diffs[k] = (f(x).float().cpu() - ref).abs().max().item()
            times = {k: [] for k in fns}
            for _ in range(a.rounds):
                for k, f in fns.items():
                    times[k].append(timed(f, x))
        base = statistics.median(times['plain (torch fp32)'])
        for k in fns:
            med = statistics.median(times[k])
            rows.append((f'{w}x{h}', k, med * 1e3, med / base, diffs[k]))
        print(f'{w}x{h} done ({time.time() - t_start:.0f} s)', flush=True)

    psnr, urban = {}, {}
    if os.path.isdir(a.set5):
        for k, f in fns.items():
            psnr[k] = evaluate_folder(lambda t, f=f: f(t.to(dev)).float().cpu(), a.set5)['psnr']
    if a.int8 and os.path.isdir(a.urban100):  # the int8 rows' second check set: plain fp32 against the int8 models
        for k in ['plain (torch fp32)'] + [k for k in fns if k.endswith('int8')]:
            urban[k] = evaluate_folder(lambda t, f=fns[k]: f(t.to(dev)).float().cpu(), a.urban100)['psnr']

    cpu_name = ''
    if not cuda:
        import platform
        cpu_name = next((line.split(':', 1)[1].strip() for line in open('/proc/cpuinfo') if line.startswith(
            'model name')), platform.processor()) if os.path.exists('/proc/cpuinfo') else platform.processor()
    where = torch.cuda.get_device_name(dev) if cuda else f'{cpu_name}, {a.threads} threads'
    print(f'\nreleased PFDN x4, {where}, median of {a.rounds} alternating rounds\n')
    print('| LR size | backend | ms | x plain | max abs diff vs plain | Set5 PSNR (change) |\n'
          '| --- | --- | --- | --- | --- | --- |')
    for size, k, ms, ratio, diff in rows:
        change = f"{psnr[k]:.4f} ({psnr[k] - psnr['plain (torch fp32)']:+.4f})" if k in psnr else '-'
        print(f'| {size} | {k} | {ms:.2f} | {ratio:.2f} | {diff:.1e} | {change} |')
    fp32 = {}
    for size, k, ms, ratio, diff in rows:
        if k.endswith('fp32'):
            fp32[k] = max(fp32.get(k, 0), ratio)
    best = min(fp32, key=fp32.get)
    print(f"\nbest fp32 backend on {'cuda' if cuda else 'cpu'}: {best.split()[0]} {fp32[best]:.2f}x plain")
    # what basicsr infer runs with no flags (--dtype auto, one image at a time), in the same rounds
    auto_backend, _, auto_dtype = resolve('auto', a.device, 'auto', warn=lambda m: None)
    chosen = f'{auto_backend} {auto_dtype}'
    worst = max(r for _, k, _, r, _ in rows if k == (chosen if chosen != 'torch fp32' else 'plain (torch fp32)'))
    change = psnr.get(chosen, float('nan')) - psnr.get('plain (torch fp32)', float('nan'))
    print(f"default precision on {'cuda' if cuda else 'cpu'}: {chosen} {worst:.2f}x plain fp32, Set5 {change:+.4f} dB")
    if a.int8:
        ratio = {}
        for size, k, ms, r, diff in rows:
            ratio.setdefault(k, []).append((size, ms, r))
        bf16 = next((k for k in ('openvino bf16', 'torch bf16') if k in ratio), None)
        print('\n| int8 | LR size | ms | x plain | x bf16 | Set5 change (dB) | Urban100 change (dB) |\n'
              '| --- | --- | --- | --- | --- | --- | --- |')
        worst = {}
        for k in (k for k in ratio if k.endswith('int8')):
            for (size, ms, r), (_, bms, _) in zip(ratio[k], ratio[bf16] if bf16 else ratio[k]):
                worst[k] = max(worst.get(k, (0, 0))[0], r), max(worst.get(k, (0, 0))[1], ms / bms)
                ds5 = psnr.get(k, float('nan')) - psnr.get('plain (torch fp32)', float('nan'))
                du = urban.get(k, float('nan')) - urban.get('plain (torch fp32)', float('nan'))
                print(f'| {k} | {size} | {ms:.2f} | {r:.2f} | {ms / bms:.2f} | {ds5:+.3f} | {du:+.3f} |')
        shown = [k for k in worst if 'qat' in k] or list(worst)  # the QAT files' line when they were given
        best8 = min(shown, key=lambda k: worst[k][0])
        ds5 = psnr[best8] - psnr['plain (torch fp32)']
        du = urban.get(best8, float('nan')) - urban.get('plain (torch fp32)', float('nan'))
        how = ' (QAT)' if 'qat' in best8 else ''
        print(f"\nint8 on {'cuda' if cuda else 'cpu'}: {best8.split()[0]}{how} {worst[best8][0]:.2f}x plain, "
              f'{worst[best8][1]:.2f}x bf16, Set5 {ds5:+.3f} dB, Urban100 {du:+.3f} dB')
    if a.workloads and (os.path.isdir(a.urban100) or a.urban100_lr) and os.path.isdir(a.set5):
        workloads(net, a, dev)


def run_cli(args, cwd):
    """Wall seconds of a `basicsr ...` command in a process of its own, as a user runs it."""
    import subprocess
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (os.path.join(HERE, '..'),
                                                                      os.environ.get('PYTHONPATH')))))
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, '-m', 'pfdn_arch.cli', *args], cwd=cwd, env=env, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"basicsr {' '.join(args)} failed:\n{r.stderr[-2000:]}")
    return time.perf_counter() - t0, r.stderr


def workloads(net, a, dev):
    import shutil
    import subprocess

    from pfdn_arch.deploy.runtime.choose import Workload
    from pfdn_arch.deploy.runtime.upscaler import to_network
    from pfdn_arch.files.images import list_images

    work = os.path.abspath(a.work)
    bench = os.path.join(work, 'datasets', 'benchmark')
    # absolute: prepare runs in the work folder (run.sh gives .gpu/data/... relative to the checkout)
    sets = [('Set5', os.path.abspath(a.set5))] + (
        [('Urban100', os.path.abspath(a.urban100))] if os.path.isdir(a.urban100) else [])
    for name, hr in sets:
        if not os.path.isdir(os.path.join(bench, name, 'LR_bicubic', 'X4')):
            subprocess.run([sys.executable, '-m', 'pfdn_arch.cli', 'prepare', 'benchmark', '--hr', hr, '--name', name],
                           cwd=work if os.path.isdir(work) else os.makedirs(work) or work, check=True,
                           capture_output=True)
    folder = os.path.abspath(a.urban100_lr) if a.urban100_lr else os.path.join(bench, 'Urban100', 'LR_bicubic', 'X4')
    xs = [torch.from_numpy(to_network(cv2.imread(p))[0]).to(dev) for p in list_images(folder)]
    mpx = sum(x.shape[2] * x.shape[3] for x in xs) / 1e6
    device = dev.type
    backends = [b for b in ('torch', 'openvino', 'onnxruntime', 'compile') if resolve(b, device, 'fp32',
                                                                                     warn=lambda m: None)[0] == b]
    if device == 'cpu':
        backends.remove('compile')  # a compilation per size: tens of minutes for 37 sizes on a CPU
    # every backend x precision this device runs natively: the pairs --dtype auto chooses among
    pairs = [(b, d) for b in backends for d in DTYPES if resolve(b, device, d, warn=lambda m: None)[1:] ==
             (torch.device(device), d) and not (device == 'cpu' and d == 'fp16')]
    shapes = Workload.of([x.shape[2:] for x in xs])
    auto = resolve('auto', device, 'auto', warn=lambda m: None, workload=shapes)
    auto = (auto[0], auto[2])
    forward, build = {}, {}
    for b, d in pairs:
        t0 = time.perf_counter()
        runner = build_runner(net, b, device, d, threads=a.threads)
        runner(xs[0])
        build[b, d] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for x in xs:  # the forward alone: its result left where the runtime wrote it, as infer on a CPU reads it
            runner.with_output(x, lambda out: None)
        if device == 'cuda':
            torch.cuda.synchronize()
        forward[b, d] = time.perf_counter() - t0
    infer = {}
    weights = os.path.abspath(a.weights)
    runs = {f'{b} {d}': ['--backend', b, '--dtype', d] for b, d in pairs}
    runs.update({'auto (no flags)': [], 'auto --dtype fp32': ['--dtype', 'fp32']})
    for name, flags in runs.items():
        out = os.path.join(work, 'up_' + name.replace(' ', '_').replace('-', ''))
        shutil.rmtree(out, ignore_errors=True)
        infer[name], err = run_cli(['infer', '-i', folder, '-o', out, '--weights', weights, '--device', a.device,
                                    *flags], work)
    torch_fp32 = forward['torch', 'fp32']
    print(f'\nReal workloads ({len(xs)} Urban100 LR images of {len({tuple(x.shape) for x in xs})} sizes, '
          f'{mpx:.2f} LR megapixels; auto chose {auto[0]} {auto[1]}):\n')
    print('| backend x precision | build s | forward alone s | s per LR Mpx (x torch fp32) | cost model s | '
          'basicsr infer s | x its forward |\n| --- | --- | --- | --- | --- | --- | --- |')
    for b, d in pairs:
        f = forward[b, d]
        print(f"| {b} {d} | {build[b, d]:.2f} | {f:.2f} | {f / mpx:.2f} ({f / torch_fp32:.2f}) | "
              f"{shapes.seconds(b, device, d) if d in RUNNERS[b].costs.get(device, {}) else float('nan'):.1f} | "
              f"{infer[f'{b} {d}']:.2f} | {infer[f'{b} {d}'] / f:.2f} |")
    # judged by what the user runs, `basicsr infer` on the folder (forward alone leaves out what the pairs' runtimes
    # do differently around it: throughput streams, threads that share the cores with decoding and encoding)
    fastest = min(forward, key=lambda bp: infer[' '.join(bp)])
    alone = min(forward, key=forward.get)
    print(f"\nfastest pair for basicsr infer on this folder: {' '.join(fastest)} (forward alone: {' '.join(alone)}); "
          f"auto chose {' '.join(auto)}{'' if auto == fastest else ' (not the fastest: the cost model is off here)'}")
    plain, exact = infer['auto (no flags)'], infer['auto --dtype fp32']
    print(f'infer, no flags: {plain:.2f} s, {plain / exact:.2f}x --dtype fp32 ({exact:.2f} s), '
          f'{plain / forward[auto]:.2f}x its forward alone')
    test = {}
    test_yml = os.path.join(HERE, '..', 'options', 'test_pfdn_x4.yml')
    if len(sets) == 1:  # Set5 alone
        import yaml
        opt = yaml.safe_load(open(test_yml))
        del opt['datasets']['test_2']
        test_yml = os.path.join(work, 'test_set5.yml')
        with open(test_yml, 'w') as f:
            yaml.safe_dump(opt, f)
    for b in ('auto', 'torch'):
        test[b], _ = run_cli(['test', '-opt', test_yml, '--force_yml',
                              f'path:pretrain_network_g={weights}', f'val:backend={b}', f'name=bench_{b}',
                              'val:pbar=false'], work)
    print(f"\n| basicsr test, {' + '.join(n for n, _ in sets)} | wall s | x torch |\n| --- | --- | --- |\n"
          f"| torch | {test['torch']:.2f} | 1.00 |\n| auto | {test['auto']:.2f} | {test['auto'] / test['torch']:.2f} |")
    print(f"\nreal workloads on {device}: infer folder {plain / infer['torch fp32']:.2f}x torch fp32, "
          f"{plain / forward[auto]:.2f}x forward; test {test['auto'] / test['torch']:.2f}x torch")


if __name__ == '__main__':
    main()
