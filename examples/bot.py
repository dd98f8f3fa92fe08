"""An untrusted script that uses the capabilities examples/grants.py grants."""
# ruff: noqa: F821, S307 -- `scores` and `board` come from the prelude; eval is the sandbox's

print("scores:", scores())
print("moves so far:", board.play("e4"))
for attempt in ("board._moves", "scores.__closure__", "scores.__globals__"):
    try:
        eval(attempt)
    except AttributeError as e:
        print(f"{attempt}: {e}")
