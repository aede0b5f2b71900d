"""The FastAPI gateway (job API, indexer, dashboard). See DESIGN.md."""
