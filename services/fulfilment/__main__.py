"""`python -m yiju.fulfilment`."""

from yiju.common.service import main
from yiju.fulfilment.app import build

main(build)
