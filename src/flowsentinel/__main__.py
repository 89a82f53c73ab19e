from flowsentinel.cli.main import run

run()
