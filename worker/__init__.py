"""The worker agent (watches the chain, is drawn for tasks, computes them). See docs/protocol.md."""
