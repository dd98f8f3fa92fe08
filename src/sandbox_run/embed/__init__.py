"""Embedding: persistent sandboxes the host calls into, host functions the
guest calls back (capabilities), a warm pool, and a blocking facade.  The
guest's half is ``guest/session.py``; the two speak ``guest/wire.py``.
See docs/embedding.md."""
