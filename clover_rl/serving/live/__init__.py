"""The live serving plane: worker processes per MIG slice (or emulated CPU slice), one FIFO
dispatcher, a KServe v2 front end, energy meters, a load generator and ``LiveBackend``.

Submodules import their heavy dependencies (torch, fastapi, transformers) themselves, so
importing this package is cheap; import from the submodules.
"""
