"""Build minigan. The C++ kernels in csrc/ are optional: if they fail to compile
(no compiler, no OpenMP), the install goes on and minigan runs on NumPy/numba."""
import glob
import os
import sys

from setuptools import find_packages, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """Compile each extension if possible; warn and carry on if not."""

    def run(self):
        try:
            super().run()
        except Exception as e:  # a missing compiler raises before build_extension
            self._warn(e)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as e:
            self._warn(e, ext.name)

    @staticmethod
    def _warn(error, name='the C++ extensions'):
        sys.stderr.write(f'\nWARNING: could not build {name} ({error}).\n'
                         'minigan will run on its NumPy/numba paths.\n\n')


def cpp_extensions():
    sources = sorted(glob.glob('csrc/*.cpp'))
    if not sources or os.environ.get('MINIGAN_NO_CPP'):
        return []
    try:
        from pybind11.setup_helpers import Pybind11Extension
    except ImportError:
        return []
    openmp = [] if sys.platform == 'darwin' else ['-fopenmp']
    return [Pybind11Extension(
        'minigan._cpu', sources, cxx_std=17,
        extra_compile_args=['-O3', '-march=native',
                            *openmp],
        extra_link_args=openmp)]


setup(
    name='minigan',
    version='0.1.0',
    description='A from-scratch deep-learning engine over NumPy and CuPy, for learning and training GANs',
    long_description=open('README.md').read() if os.path.exists('README.md') else '',
    long_description_content_type='text/markdown',
    python_requires='>=3.10',
    packages=find_packages(include=['minigan', 'minigan.*']),
    package_data={'minigan': ['kernels/*.cu', 'kernels/*.cuh']},
    ext_modules=cpp_extensions(),
    cmdclass={'build_ext': OptionalBuildExt},
    install_requires=['numpy>=1.24', 'scipy>=1.10', 'pillow>=10.1', 'numba>=0.59', 'tqdm>=4.60'],
    extras_require={
        'test': ['pytest>=7', 'pytest-benchmark>=4', 'hypothesis>=6', 'torch==2.13.0'],
        'cuda': ['cupy-cuda12x>=13'],
    },
    entry_points={'console_scripts': [
        'minigan-train=minigan.train:main',
        'minigan-sample=minigan.sample:main',
    ]},
)
