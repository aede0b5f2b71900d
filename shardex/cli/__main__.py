from shardex.cli import app

app()
