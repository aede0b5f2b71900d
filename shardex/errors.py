"""The one exception hierarchy every Shardex layer raises from."""


class ShardexError(Exception):
    """Root of every error Shardex raises on purpose."""


class ConfigError(ShardexError):
    """Configuration is missing or contradictory; the message says what to set."""


class DevnetError(ShardexError):
    """A local devnet could not be started, found or stopped."""
