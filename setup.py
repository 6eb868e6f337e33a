"""Maps the import packages `yiju` (services/) and `yiju_infra` (infra/) onto their folders."""

from setuptools import find_packages, setup


def mapped(folder: str, name: str) -> list[str]:
    return [name] + [f"{name}.{sub}" for sub in find_packages(folder)]


setup(packages=mapped("services", "yiju") + mapped("infra", "yiju_infra"))
