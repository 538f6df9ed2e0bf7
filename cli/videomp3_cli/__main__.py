from videomp3_cli.main import run

run()
