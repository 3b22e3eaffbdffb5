"""Build minigan. The C++ kernels in csrc/ are optional: if they fail to compile
(no compiler, no OpenMP), the install goes on and minigan runs on NumPy/numba.

The CUDA kernels (kernels/*.cu) ship as sources in the package minigan.kernels, which CuPy
compiles at run time. With MINIGAN_BUILD_CUDA=1 and nvcc at hand, they are also compiled
here into the extension minigan._cuda (csrc/cuda_module.cu); off by default, so that CPU
installs stay fast, and like the C++ kernels a failed build only warns."""
import glob
import os
import shutil
import subprocess
import sys
import sysconfig

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

# the GPUs minigan._cuda is compiled for (CUDA 13's oldest, Turing, to Hopper), plus PTX that
# newer GPUs compile when they load it
CUDA_ARCHS = ['-gencode=arch=compute_75,code=sm_75', '-gencode=arch=compute_80,code=sm_80',
              '-gencode=arch=compute_86,code=sm_86', '-gencode=arch=compute_89,code=sm_89',
              '-gencode=arch=compute_90,code=sm_90', '-gencode=arch=compute_90,code=compute_90']


class CudaExtension(Extension):
    """An extension whose sources nvcc compiles and links (OptionalBuildExt knows what to do).
    optional: when its build failed, setuptools has no module to copy and skips it quietly."""

    def __init__(self, name, sources, nvcc):
        super().__init__(name, sources, optional=True)
        self.nvcc = nvcc


class OptionalBuildExt(build_ext):
    """Compile each extension if possible; warn and carry on if not."""

    def run(self):
        try:
            super().run()
        except Exception as e:  # a missing compiler raises before build_extension
            self._warn(e)

    def build_extension(self, ext):
        try:
            if isinstance(ext, CudaExtension):
                self._build_cuda(ext)
            else:
                super().build_extension(ext)
        except Exception as e:
            self._warn(e, ext.name)

    def _build_cuda(self, ext):
        """nvcc compiles each source, then links the objects and the CUDA runtime (statically) into the module."""
        import pybind11
        target = self.get_ext_fullpath(ext.name)
        os.makedirs(self.build_temp, exist_ok=True)
        os.makedirs(os.path.dirname(target) or '.', exist_ok=True)
        objects = []
        for src in ext.sources:
            obj = os.path.join(self.build_temp, os.path.basename(src) + '.o')
            subprocess.run([ext.nvcc, '-c', src, '-o', obj, '-O3', '-std=c++17', '-Ikernels',
                            '-I' + pybind11.get_include(), '-I' + sysconfig.get_paths()['include'],
                            '-Xcompiler', '-fPIC,-fvisibility=hidden', *CUDA_ARCHS], check=True)
            objects.append(obj)
        subprocess.run([ext.nvcc, '-shared', *objects, '-o', target], check=True)

    @staticmethod
    def _warn(error, name='the C++ extensions'):
        fallback = ('the CUDA kernels will be compiled at run time by CuPy (NVRTC) instead'
                    if name == 'minigan._cuda' else 'minigan will run on its NumPy/numba paths')
        sys.stderr.write(f'\nWARNING: could not build {name} ({error}).\n{fallback}.\n\n')


def cpp_extensions():
    sources = sorted(glob.glob('csrc/*.cpp'))
    if not sources or os.environ.get('MINIGAN_NO_CPP'):
        return []
    try:
        from pybind11.setup_helpers import ParallelCompile, Pybind11Extension
    except ImportError:
        return []
    ParallelCompile('NPY_NUM_BUILD_JOBS', default=0).install()  # one compiler per core (0: all of them)
    openmp = [] if sys.platform == 'darwin' else ['-fopenmp']
    return [Pybind11Extension(
        'minigan._cpu', sources, cxx_std=17,
        extra_compile_args=['-O3', '-march=native',
                            *openmp],
        extra_link_args=openmp)]


def find_nvcc():
    """nvcc on the PATH, else in $CUDA_HOME/bin, else /usr/local/cuda/bin; None if none is there."""
    on_path = shutil.which('nvcc')
    if on_path:
        return on_path
    for home in (os.environ.get('CUDA_HOME'), os.environ.get('CUDA_PATH'), '/usr/local/cuda'):
        if home and os.path.isfile(os.path.join(home, 'bin', 'nvcc')):
            return os.path.join(home, 'bin', 'nvcc')
    return None


def cuda_extensions():
    """minigan._cuda, only when asked for with MINIGAN_BUILD_CUDA=1 and nvcc is found."""
    if os.environ.get('MINIGAN_BUILD_CUDA') != '1':
        return []
    nvcc = find_nvcc()
    if nvcc is None:
        sys.stderr.write('\nWARNING: MINIGAN_BUILD_CUDA=1 but nvcc was not found (PATH, CUDA_HOME, '
                         '/usr/local/cuda): not building minigan._cuda; CuPy will compile the CUDA '
                         'kernels at run time instead.\n\n')
        return []
    return [CudaExtension('minigan._cuda', ['csrc/cuda_module.cu'], nvcc)]


setup(
    name='minigan',
    version='0.1.0',
    description='A from-scratch deep-learning engine over NumPy and CuPy, for learning and training GANs',
    long_description=open('README.md').read() if os.path.exists('README.md') else '',
    long_description_content_type='text/markdown',
    python_requires='>=3.10',
    packages=find_packages(include=['minigan', 'minigan.*']) + ['minigan.kernels'],
    package_dir={'minigan.kernels': 'kernels'},          # the top-level kernels/ folder, installed inside minigan
    package_data={'minigan.kernels': ['*.cu', '*.cuh']},
    ext_modules=cpp_extensions() + cuda_extensions(),
    cmdclass={'build_ext': OptionalBuildExt},
    install_requires=['numpy>=1.24', 'scipy>=1.10', 'pillow>=10.1', 'numba>=0.59', 'tqdm>=4.60'],
    extras_require={
        'test': ['pytest>=7', 'pytest-benchmark>=4', 'hypothesis>=6', 'torch==2.13.0'],
        # CuPy for the GPU, with the CUDA libraries it loads (NVRTC compiles minigan's kernels) as
        # wheels ([ctk]), so that a driver is all the machine needs: cuda13 for a CUDA 13 driver
        # (580 or newer; nvidia-smi says "CUDA Version: 13.x"), cuda12 for a CUDA 12 driver. `cuda`
        # is cuda12, which a CUDA 13 driver runs too. None of them pulls in PyTorch: the GPU scripts
        # in bench/ use whatever torch is installed (the `test` extra's pin is for CPU-only CI).
        'cuda12': ['cupy-cuda12x[ctk]>=14'],
        'cuda13': ['cupy-cuda13x[ctk]>=14'],
        'cuda': ['cupy-cuda12x[ctk]>=14'],
        'mpi': ['mpi4py>=4', 'mpich>=4'],         # mpiexec -n N python -m minigan.train --distributed
    },
    entry_points={'console_scripts': [
        'minigan-train=minigan.train:main',
        'minigan-sample=minigan.sample:main',
    ]},
)
