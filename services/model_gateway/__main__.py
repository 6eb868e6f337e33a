"""`python -m yiju.model_gateway`."""

from yiju.common.service import main
from yiju.model_gateway.app import build

main(build)
