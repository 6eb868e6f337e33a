"""`python -m yiju.intent`."""

from yiju.common.service import main
from yiju.intent.app import build

main(build)
