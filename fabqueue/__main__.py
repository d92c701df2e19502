from fabqueue.cli import app

app()
