from shardex_cli import app

app()
