"""Build step for the one native part: the launcher executable.

The launcher is a small C program (src/sandbox_run/controller/launcher.c),
not a Python extension.  It is compiled with the system C compiler next to the
package's modules, for regular and editable installs alike.
"""

import os
import subprocess
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

LAUNCHER_SRC = "src/sandbox_run/controller/launcher.c"
LAUNCHER_NAME = "sandbox-run-launcher"
LAUNCHER_EXT = "sandbox_run.controller.launcher"


class BuildLauncher(build_ext):
    """Treat the launcher 'extension' as an executable: same place, plain name."""

    def get_ext_filename(self, fullname: str) -> str:
        if fullname == LAUNCHER_EXT:
            return os.path.join("sandbox_run", "controller", LAUNCHER_NAME)
        return str(super().get_ext_filename(fullname))

    def build_extension(self, ext: Extension) -> None:
        if ext.name != LAUNCHER_EXT:
            super().build_extension(ext)
            return
        if self.inplace:
            out = os.path.join(os.path.dirname(LAUNCHER_SRC), LAUNCHER_NAME)
        else:
            out = os.path.join(self.build_lib, self.get_ext_filename(LAUNCHER_EXT))
        os.makedirs(os.path.dirname(out), exist_ok=True)
        cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
        cmd = [cc.split()[0], "-O2", "-Wall", "-Wextra", "-Werror", "-o", out, LAUNCHER_SRC]
        # Static when a static libc is installed: it starts before every
        # guest, and skipping the dynamic loader saves a fraction of a ms.
        print(" ".join([*cmd, "-static"]))
        if subprocess.run([*cmd, "-static"]).returncode != 0:
            print(" ".join(cmd))
            subprocess.run(cmd, check=True)


setup(
    ext_modules=[Extension(LAUNCHER_EXT, sources=[LAUNCHER_SRC])],
    cmdclass={"build_ext": BuildLauncher},
)
