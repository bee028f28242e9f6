from temshift.cli import run

run()
