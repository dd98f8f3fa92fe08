"""Code that runs inside the guest interpreter (PyPy 3.9).

Nothing in this package may import controller code: it is mounted read-only
into the sandbox and executed by the untrusted-side interpreter.
"""
