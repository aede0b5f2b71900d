"""Compile the Solidity contracts and deploy them to any EVM RPC endpoint."""
