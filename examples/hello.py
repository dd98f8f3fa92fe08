"""A first sandboxed script: it runs, computes, and finds the host out of reach."""

import json
import os
import platform

print("Hello from the sandbox!", platform.python_implementation(), platform.python_version())
print("working directory:", os.getcwd(), "->", sorted(os.listdir(".")))
print("the filesystem root holds:", sorted(os.listdir("/")))
with open("/tmp/notes.json", "w") as f:
    json.dump({"squares": [n * n for n in range(6)]}, f)
with open("/tmp/notes.json") as f:
    print("wrote and read /tmp:", json.load(f))
try:
    with open("/etc/passwd") as f:
        f.read()
except OSError as e:
    print("host files are out of reach:", type(e).__name__)
