from setuptools import find_packages, setup

EXPORT = ['safetensors', 'onnx', 'onnxruntime', 'spandrel']
# the inference backends beyond PyTorch (pfdn_arch/backends.py); bench/bench_infer.py measured them fastest on a CPU
FAST = ['onnx', 'onnxruntime', 'openvino']

setup(
    name='pfdn',
    version='0.1.0',
    description='PFDN (NTIRE 2023 Efficient SR winner) for BasicSR: training form, reparameterization, NCC loss',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    # options/ ships inside the package as pfdn_arch/options/ (the commands' defaults, found the same way in an
    # editable and in a normal install: pfdn_arch/cli/shipped.py)
    packages=find_packages(include=['pfdn_arch', 'pfdn_arch.*']) + ['pfdn_arch.options'],
    package_dir={'pfdn_arch.options': 'options'},
    package_data={'pfdn_arch.options': ['*.yml']},
    python_requires='>=3.9',
    # torch/torchvision are installed first and basicsr without build isolation (see README): basicsr's sdist
    # declares torch as a build requirement and would otherwise pull a second torch into its build environment.
    install_requires=['basicsr==1.4.2', 'torch>=2.0', 'torchvision', 'opencv-python', 'lmdb', 'pyyaml',
                      'scikit-image', 'numpy', 'tqdm', 'setuptools'],
    # export: .safetensors, ONNX checked with onnxruntime, and loading in spandrel (chaiNNer/ComfyUI's loader)
    extras_require={'export': EXPORT, 'fast': FAST, 'test': ['pytest'] + sorted(set(EXPORT + FAST))},
    entry_points={'console_scripts': ['basicsr=pfdn_arch.cli.main:main', 'pfdn=pfdn_arch.cli.main:main']},
)
