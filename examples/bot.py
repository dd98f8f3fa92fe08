"""An untrusted script that uses the capabilities examples/grants.py grants."""

print("scores:", scores())
print("moves so far:", board.play("e4"))
for attempt in ("board._moves", "scores.__closure__", "scores.__globals__"):
    try:
        eval(attempt)
    except AttributeError as e:
        print(f"{attempt}: {e}")
