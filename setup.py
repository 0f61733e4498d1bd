"""Build hook: ship the top-level ``kernels/*.cu`` inside the wheel as ``gradforge/_kernels``.

The sources live once, at the top of the repository. A source checkout (or an editable
install) finds them there; a built wheel carries a copy made here. The lookup rule is in
``gradforge/backend/kernels.py``.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithKernels(build_py):
    def run(self):
        super().run()
        src = Path(__file__).parent / "kernels"
        dst = Path(self.build_lib) / "gradforge" / "_kernels"
        dst.mkdir(parents=True, exist_ok=True)
        for cu in sorted(src.glob("*.cu")):
            shutil.copy2(cu, dst / cu.name)


setup(cmdclass={"build_py": BuildPyWithKernels})
