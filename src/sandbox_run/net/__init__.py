"""The network allow-list: what a guest may reach, decided by the controller.

Pure parts: ``rules`` (allow-list entries), ``addresses`` (special address
classes), ``allowlist`` (connect-time decisions and pinned names),
``config`` (the policy's ``[network]`` section), ``sockaddr`` and ``dns``
(codecs), ``etc`` (the files the guest's resolver reads), ``audit``.
With trio: ``resolver`` (the virtual name server), ``relay`` (byte-counted
connections), and ``state`` (one guest's network).  The socket calls
themselves are ``controller/handlers/net.py``.  See docs/network.md.
"""
