"""Package layout only; metadata lives in pyproject.toml.

The owner fixed the top-level folders (analysis/, fitting/, generator/, figures/, reports/).
They install as sub-packages of ``servelab`` so that ``import servelab.analysis`` never
collides with another project's ``analysis``; ``servelab/`` itself is the small home of the CLI.
"""
from setuptools import find_packages, setup

TOP_LEVEL = ("analysis", "fitting", "generator", "figures", "reports")

packages = find_packages(include=["servelab", "servelab.*"])
for top in TOP_LEVEL:
    packages += [f"servelab.{name}" for name in find_packages(include=[top, f"{top}.*"])]

setup(
    packages=packages,
    package_dir={"servelab": "servelab", **{f"servelab.{top}": top for top in TOP_LEVEL}},
    include_package_data=True,
)
