"""LLM inference services: catalog (model x weight precision), physics-based profiles per MIG
slice, and an iteration-level continuous-batching simulator."""
