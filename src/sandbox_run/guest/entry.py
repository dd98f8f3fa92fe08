"""The script the guest interpreter starts with.

PyPy compiles a script from source on every run (about 12 ms for the
bootstrap on these machines) but loads an imported module from the .pyc
that scripts/setup compiled, so the bootstrap is imported, not run.
"""

import bootstrap  # type: ignore[import-not-found]  # this file's directory is sys.path[0]

bootstrap.main()
