"""The worker agent (watches the chain, claims and computes tasks). See DESIGN.md."""
