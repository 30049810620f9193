"""``python -m kvmprobe``: see ``kvmprobe._cli``."""
from kvmprobe._cli import run

run()
