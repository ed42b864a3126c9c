import os

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

# The deployment side (the network, its conversion, inference, export, the runtimes, the spandrel loader) needs these
# alone; training on BasicSR adds the `train` extra. basicsr is not a core requirement: its 1.4.2 sdist builds only
# without build isolation (it declares torch as a build requirement, so pip would fetch a second torch), which a
# chaiNNer/ComfyUI user or a deployment image should not need. See the README's install lines.
# pillow-heif: HEIC/HEIF, the format of phones' photos (Pillow reads AVIF itself; OpenCV reads neither)
CORE = ['torch>=2.0', 'numpy', 'opencv-python', 'pillow', 'pillow-heif', 'pyyaml', 'tqdm']
# setuptools < 81: the TensorBoard basicsr 1.4.2 installs (tb-nightly, whose newest build still imports
# pkg_resources) starts only with a setuptools that has pkg_resources, which 81 removed
TRAIN = ['basicsr==1.4.2', 'torchvision', 'lmdb', 'scikit-image', 'setuptools<81']
EXPORT = ['safetensors', 'onnx', 'onnxruntime', 'spandrel']
# the inference backends beyond PyTorch (pfdn_arch/deploy/runtime/), which bench/bench_infer.py measured fastest on a
# CPU, and python-isal: ISA-L's deflate, the PNG encoder of results (pfdn_arch/files/png_writer.py says why)
FAST = ['onnx', 'onnxruntime', 'openvino', 'isal']
# int8 export (NNCF post-training quantization) for OpenVINO and QDQ ONNX
INT8 = ['nncf', 'onnx', 'onnxruntime', 'openvino']
# NCNN (Upscayl and other Vulkan apps): pnnx converts, the ncnn wheel runs the files on the CPU or Vulkan
NCNN = ['pnnx', 'ncnn']
VIDEO = ['av>=18']  # PyAV, FFmpeg's libraries in its wheels: videos in basicsr infer (18: the colour APIs used)

# The start-up hook (pfdn_arch/plugin): site-packages/pfdn-basicsr-hook.pth, whose line Python's `site` runs when an
# interpreter starts, so that BasicSR's own entry points (python -m basicsr.train, a project's train.py, BasicSR's
# scripts) find PFDN registered and basicsr 1.4.2 working. PFDN_BASICSR_HOOK=0 turns it off. Sorted after
# setuptools' __editable__ .pth files, so an editable install is importable by the time it runs.
HOOK_PTH = 'pfdn-basicsr-hook.pth'
HOOK_LINE = "import os; os.environ.get('PFDN_BASICSR_HOOK', '1') == '0' or __import__('pfdn_arch')\n"


class BuildPyWithHook(build_py):
    """build_py that also writes the start-up hook into the wheel's root (site-packages): into build_lib for a wheel,
    into the editable wheel's root for `pip install -e` (setuptools ignores build_lib files outside packages there).
    pip uninstall removes it with the rest."""

    def run(self):
        super().run()
        root = (self.get_finalized_command('install').install_lib if getattr(self, 'editable_mode', False)
                else self.build_lib)
        os.makedirs(root, exist_ok=True)
        with open(os.path.join(root, HOOK_PTH), 'w') as f:
            f.write(HOOK_LINE)

    def get_outputs(self, include_bytecode=1):
        return super().get_outputs(include_bytecode) + [os.path.join(self.build_lib, HOOK_PTH)]


setup(
    name='pfdn',
    version='0.1.0',
    description='PFDN (NTIRE 2023 Efficient SR winner) for BasicSR: training form, reparameterization, NCC loss',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    # options/ ships inside the package as pfdn_arch/options/ (the commands' defaults, found the same way in an
    # editable and in a normal install: pfdn_arch/layout/locations.py)
    packages=find_packages(include=['pfdn_arch', 'pfdn_arch.*']) + ['pfdn_arch.options'],
    package_dir={'pfdn_arch.options': 'options'},
    package_data={'pfdn_arch.options': ['*.yml'], 'pfdn_arch.comfyui_node': ['pyproject.toml'],
                  'pfdn_arch.deploy.export.spandrel_pfdn.__arch': ['LICENSE']},
    python_requires='>=3.9',
    install_requires=CORE,
    # train: BasicSR and what its data needs; export: .safetensors, ONNX checked with onnxruntime, and loading in
    # spandrel (chaiNNer/ComfyUI's loader); fast: the CPU runtimes; int8: quantized export; video: films in basicsr
    # infer; ncnn: NCNN export and running; test: all of it
    extras_require={'train': TRAIN, 'export': EXPORT, 'fast': FAST, 'int8': INT8, 'video': VIDEO,
                    'ncnn': NCNN,
                    # pytest-xdist: the tests run on every core (README: -n auto); syrupy, beautifulsoup4 and the
                    # pinned ruff and pyright: spandrel's own tests and linters run on the PFDN patch
                    # (contrib/spandrel/; the versions its requirements-dev.txt pins)
                    'test': ['pytest', 'pytest-xdist', 'import-linter', 'mypy', 'syrupy==5.1.0', 'beautifulsoup4',
                             'ruff==0.5.0', 'pyright==1.1.342']
                    + sorted(set(TRAIN + EXPORT + FAST + INT8 + VIDEO + NCNN))},
    entry_points={'console_scripts': ['basicsr=pfdn_arch.console:console', 'pfdn=pfdn_arch.console:console']},
    cmdclass={'build_py': BuildPyWithHook},
)
