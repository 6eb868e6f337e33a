"""`python -m yiju.planning`."""

from yiju.common.service import main
from yiju.planning.app import build

main(build)
