"""`python -m yiju.payment`."""

from yiju.common.service import main
from yiju.payment.app import build

main(build)
